"""Webhooks: each new message of a company POSTed, signed, to its receivers.

Deliveries are queued in PostgreSQL with the message (a trigger does it),
sent by the worker process (``tickmark worker``) with retries and backoff,
and logged where the company's accountants can read them.
"""
