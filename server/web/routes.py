"""Every URL the server answers, in one table."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route, WebSocketRoute

from server.web import (
    api,
    api_tokens,
    api_webhooks,
    auth,
    health,
    user_settings,
    ws,
)
from server.web.pages import page_routes


__all__ = ["routes"]

_COMPANY = "/api/companies/{company_id:uuid}"
_TRANSACTION = _COMPANY + "/transactions/{transaction_id:uuid}"
_WEBHOOK = _COMPANY + "/webhooks/{webhook_id:uuid}"

routes: list[BaseRoute] = [
    Route("/healthz", health.healthz, methods=["GET"]),
    Route("/readyz", health.readyz, methods=["GET"]),
    Route("/metrics", health.metrics, methods=["GET"]),
    Route("/api/auth/sign-in", auth.sign_in, methods=["POST"]),
    Route("/api/auth/token", auth.sign_in_for_token, methods=["POST"]),
    Route("/api/auth/sign-out", auth.sign_out, methods=["POST"]),
    Route("/api/me", auth.me, methods=["GET"]),
    Route("/api/me/badges", api.my_badges, methods=["GET"]),
    Route("/api/me/waiting", api.waiting_messages, methods=["GET"]),
    Route("/api/me/settings", user_settings.get_settings, methods=["GET"]),
    Route("/api/me/settings", user_settings.put_settings, methods=["PUT"]),
    Route("/unsubscribe/{token}", user_settings.unsubscribe_page, methods=["GET"]),
    Route("/unsubscribe/{token}", user_settings.unsubscribe, methods=["POST"]),
    Route("/api/tokens", api_tokens.list_tokens, methods=["GET"]),
    Route("/api/tokens", api_tokens.create_token, methods=["POST"]),
    Route("/api/tokens/{token_id:uuid}", api_tokens.revoke_token, methods=["DELETE"]),
    Route("/api/bots", api_tokens.list_bots, methods=["GET"]),
    Route("/api/companies", api.list_companies, methods=["GET"]),
    Route(_COMPANY + "/members", api.list_members, methods=["GET"]),
    Route(_COMPANY + "/bots", api_tokens.list_company_bots, methods=["GET"]),
    Route(_COMPANY + "/bots", api_tokens.create_bot, methods=["POST"]),
    Route(_COMPANY + "/bots/{bot_id:uuid}", api_tokens.remove_bot, methods=["DELETE"]),
    Route(_COMPANY + "/webhooks", api_webhooks.list_webhooks, methods=["GET"]),
    Route(_COMPANY + "/webhooks", api_webhooks.create_webhook, methods=["POST"]),
    Route(_WEBHOOK, api_webhooks.delete_webhook, methods=["DELETE"]),
    Route(_WEBHOOK + "/deliveries", api_webhooks.list_deliveries, methods=["GET"]),
    Route(_COMPANY + "/messages", api.list_company_messages, methods=["GET"]),
    Route(_COMPANY + "/transactions", api.list_transactions, methods=["GET"]),
    Route(_COMPANY + "/transactions", api.upsert_transactions, methods=["POST"]),
    Route(_TRANSACTION, api.get_transaction, methods=["GET"]),
    Route(_TRANSACTION + "/messages", api.list_messages, methods=["GET"]),
    Route(_TRANSACTION + "/messages", api.post_message, methods=["POST"]),
    Route(_TRANSACTION + "/read", api.mark_read, methods=["POST"]),
    WebSocketRoute("/ws", ws.websocket_endpoint),
    *page_routes,
]
