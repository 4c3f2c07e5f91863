"""Routes for a person's settings, and the one-click unsubscribe link.

``/unsubscribe/{token}`` follows RFC 8058: a mail program POSTs
"List-Unsubscribe=One-Click" to it with no cookies and no sign-in, and the
signed token alone says whose email to turn off. A GET only shows a page
with a button that makes the same POST, since link scanners and previews
fetch URLs from emails on their own (RFC 8058 section 3.2).
"""

from __future__ import annotations

import html
from typing import Annotated, Any

import pydantic
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from server.core import user_settings
from server.core.mail_tokens import user_of_unsubscribe_token
from server.core.notifications import MAX_DELAY_SECS
from server.errors import NotFound
from server.store.user_settings import UserSettings
from server.web._http import JSON, read_model, services_of, settings_of
from server.web.auth import authenticate


__all__ = ["get_settings", "put_settings", "unsubscribe", "unsubscribe_page"]

# These pages load nothing and run nothing; the form posts back here.
_PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"


class SettingsChange(pydantic.BaseModel):
    """PUT /api/me/settings: the settings to change; the rest stay."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    email_notifications: bool = True
    email_delay_secs: Annotated[int, pydantic.Field(ge=0, le=MAX_DELAY_SECS)] | None = (
        None
    )
    time_zone: (
        Annotated[str, pydantic.StringConstraints(min_length=1, max_length=64)] | None
    ) = None
    clock_24h: bool = False


def _settings_json(request: Request, found: UserSettings) -> dict[str, Any]:
    return {
        "email_notifications": found.email_notifications,
        "email_delay_secs": found.email_delay_secs,
        "default_email_delay_secs": (
            services_of(request).notifications.default_delay_secs
        ),
        "time_zone": found.time_zone,
        "clock_24h": found.clock_24h,
    }


async def get_settings(request: Request) -> Response:
    """GET /api/me/settings"""
    principal = await authenticate(request)
    found = await user_settings.my_settings(services_of(request).db, principal)
    return JSON({"settings": _settings_json(request, found)})


async def put_settings(request: Request) -> Response:
    """PUT /api/me/settings: change the settings the body names."""
    principal = await authenticate(request)
    body = await read_model(request, SettingsChange, max_bytes=4096)
    changed = await user_settings.change_settings(
        services_of(request).db, principal, body.model_dump(exclude_unset=True)
    )
    return JSON({"settings": _settings_json(request, changed)})


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title></head>"
        '<body style="font-family:Helvetica,Arial,sans-serif;max-width:32em;'
        'margin:3em auto;padding:0 1em;">'
        f"<h1>{html.escape(title)}</h1>{body}</body></html>\n",
        status_code=status_code,
        headers={"content-security-policy": _PAGE_CSP},
    )


def _not_found() -> HTMLResponse:
    return _page(
        "This link does not work",
        "<p>It may have been copied only in part. The link at the foot of "
        "any email from Tickmark leads to your settings.</p>",
        status_code=404,
    )


async def unsubscribe_page(request: Request) -> Response:
    """GET /unsubscribe/{token}: ask before turning email off."""
    token: str = request.path_params["token"]
    if user_of_unsubscribe_token(settings_of(request).secret_key, token) is None:
        return _not_found()
    return _page(
        "Stop emails from Tickmark?",
        "<p>You will no longer get an email when messages wait for you. You "
        "can turn emails back on in your settings.</p>"
        '<form method="post">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Stop emails</button></form>',
    )


async def unsubscribe(request: Request) -> Response:
    """POST /unsubscribe/{token}: turn email off (RFC 8058 one-click).

    The body is not read: the signed token is the whole request.
    """
    token: str = request.path_params["token"]
    try:
        await user_settings.unsubscribe(
            services_of(request).db, settings_of(request).secret_key, token
        )
    except NotFound:
        return _not_found()
    settings_url = html.escape(settings_of(request).public_url + "/settings")
    return _page(
        "Emails are off",
        "<p>Tickmark will not email you about waiting messages any more. "
        f'To turn emails back on, open <a href="{settings_url}">your '
        "settings</a>.</p>",
    )
