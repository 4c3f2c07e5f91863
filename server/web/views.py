"""How domain objects look in JSON, the same over HTTP and WebSocket."""

from __future__ import annotations

from typing import Any

from server.core.companies import Badges, CompanyView
from server.core.eligibility import TransactionType, takes_conversation
from server.store.companies import Member
from server.store.messages import Message
from server.store.reads import UnreadMessage
from server.store.transactions import TransactionSummary


__all__ = [
    "badges_json",
    "company_json",
    "member_json",
    "message_json",
    "transaction_json",
    "unread_message_json",
]


def message_json(message: Message) -> dict[str, Any]:
    author = None
    if message.author_id is not None:
        author = {
            "id": message.author_id,
            "name": message.author_name,
            "role": message.author_role,
        }
    return {
        "id": message.id,
        "company_id": message.company_id,
        "transaction_id": message.transaction_id,
        "conversation_id": message.conversation_id,
        "seq": message.seq,
        "company_seq": message.company_seq,
        "kind": message.kind,
        "author": author,
        "recipients": [
            {"id": r.id, "name": r.display_name} for r in message.recipients
        ],
        "body": message.body,
        "created_at": message.created_at,
    }


def transaction_json(summary: TransactionSummary) -> dict[str, Any]:
    txn = summary.transaction
    kind = TransactionType(txn.fields.type)
    conversation = None
    if summary.conversation_id is not None:
        conversation = {
            "id": summary.conversation_id,
            "last_seq": summary.last_seq,
            "last_read_seq": summary.last_read_seq,
            "unread": summary.unread,
            "last_message_at": summary.last_message_at,
        }
    return {
        "id": txn.id,
        "company_id": txn.company_id,
        "external_id": txn.external_id,
        "type": kind.value,
        "type_label": kind.label,
        "doc_number": txn.fields.doc_number,
        "date": txn.fields.txn_date,
        "counterparty": txn.fields.counterparty,
        "memo": txn.fields.memo,
        "amount": txn.fields.amount,
        "currency": txn.fields.currency,
        "takes_conversation": takes_conversation(kind),
        "conversation": conversation,
    }


def company_json(company: CompanyView) -> dict[str, Any]:
    return {
        "id": company.id,
        "name": company.name,
        "role": company.role,
        "unread": company.unread,
    }


def member_json(member: Member) -> dict[str, Any]:
    # Names and opaque ids only: emails stay out of what other members see.
    return {
        "id": member.user_id,
        "name": member.display_name,
        "role": "bot" if member.kind == "bot" else member.role,
    }


def badges_json(badges: Badges) -> dict[str, Any]:
    return {
        "total": badges.total,
        "companies": [
            {"company_id": cid, "unread": n}
            for cid, n in sorted(badges.by_company.items(), key=lambda kv: str(kv[0]))
        ],
    }


def unread_message_json(message: UnreadMessage) -> dict[str, Any]:
    kind = TransactionType(message.transaction_type)
    return {
        "id": message.message_id,
        "company_id": message.company_id,
        "company_name": message.company_name,
        "transaction_id": message.transaction_id,
        "transaction_type": kind.value,
        "transaction_label": f"{kind.label} {message.doc_number}".strip(),
        "seq": message.seq,
        "author_name": message.author_name,
        "body": message.body,
        "created_at": message.created_at,
    }
