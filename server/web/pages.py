"""The browser's pages: HTML shells that the scripts in ``static/`` fill.

Each page is a small Jinja2 template (autoescaped) holding the layout and
no user data; the page's script loads the data from the JSON API and puts
every piece of user text on the page as text, never as markup. So there
is one way to read data, through the API's access checks, and one place
that escapes it. The exceptions are the sign-in return path, which is
checked here with :func:`~server.core.redirects.safe_next` and handed to
the script as an escaped attribute, and the local mailbox, which has no
API and is rendered here.

A page visited without a session answers 303 to ``/sign-in`` with the
page's path and query as ``next``; the fragment stays with the browser,
which carries it across the redirect, and the sign-in script keeps it.
"""

from __future__ import annotations

import re
import uuid
from email.message import EmailMessage
from email.utils import parseaddr
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from server.core import transactions
from server.core.eligibility import ELIGIBILITY_RULE
from server.core.principal import Principal
from server.core.redirects import safe_next
from server.errors import NotFound, Unauthenticated
from server.mail.sender_mailbox import MailboxSender
from server.settings import Settings
from server.store import users
from server.web._http import services_of, settings_of
from server.web.auth import SESSION_COOKIE, authenticate


__all__ = ["STATIC_DIR", "content_security_policy", "page_routes"]

#: The browser client: scripts, the style sheet, icons. It sits beside the
#: ``server`` package in the repository, so it is served from a checkout
#: or an editable install.
STATIC_DIR = Path(__file__).resolve().parents[2] / "static"

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

#: What a page may not see: the same sentence for a company or transaction
#: that does not exist and one the reader may not see, so neither leaks.
NO_ACCESS = "You don't have access to this transaction, or it does not exist."

# Mails listed on the mailbox page; the folder keeps at most 1000.
_MAILBOX_PAGE_MAILS = 200
# Mails read from disk to find a person's own; the mailbox keeps 1,000.
_MAILBOX_SCAN_MAILS = 1000


def content_security_policy(settings: Settings) -> str:
    """The policy every page carries: nothing inline, nothing from elsewhere.

    ``connect-src`` names the WebSocket origin of ``PUBLIC_URL`` as well as
    ``'self'``: browsers before CSP Level 3 do not count ``ws:`` as self.
    """
    parts = urlsplit(settings.public_url)
    ws_scheme = "wss" if parts.scheme == "https" else "ws"
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src 'self' {ws_scheme}://{parts.netloc}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


# The HTML part of a stored mail is shown in a sandboxed frame with a policy
# of its own: no scripts, no requests, inline styles only (mail HTML is all
# inline styles), and links open in the top window on a click.
_MAIL_HTML_POLICY = "; ".join(
    [
        "sandbox allow-top-navigation-by-user-activation",
        "default-src 'none'",
        "style-src 'unsafe-inline'",
        "img-src data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'self'",
    ]
)


def _render(
    request: Request,
    template: str,
    *,
    status_code: int = 200,
    **context: Any,
) -> Response:
    html = _TEMPLATES.get_template(template).render(**context)
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={
            "content-security-policy": content_security_policy(settings_of(request)),
            "cross-origin-opener-policy": "same-origin",
        },
    )


async def _principal(request: Request) -> Principal | None:
    """Who is signed in, or None: a missing or ended session alike."""
    has_credentials = (
        SESSION_COOKIE in request.cookies or "authorization" in request.headers
    )
    if not has_credentials:
        return None
    try:
        return await authenticate(request)
    except Unauthenticated:
        return None


def _to_sign_in(request: Request) -> Response:
    """303 to sign-in, carrying this page's path and query as sent."""
    target: bytes = request.scope.get("raw_path") or request.url.path.encode()
    query: bytes = request.scope.get("query_string", b"")
    if query:
        target += b"?" + query
    return RedirectResponse("/sign-in?next=" + quote(target, safe=""), status_code=303)


def _app_page(
    request: Request,
    principal: Principal,
    template: str,
    *,
    status_code: int = 200,
    **context: Any,
) -> Response:
    """An app page: the header with the badge, then the page's own part."""
    return _render(
        request,
        template,
        status_code=status_code,
        me_name=principal.display_name,
        mailbox=settings_of(request).smtp_url is None,
        **context,
    )


# --- pages -----------------------------------------------------------------------


async def sign_in_page(request: Request) -> Response:
    """GET /sign-in?next=PATH"""
    return _render(
        request,
        "sign_in.html",
        title="Sign in",
        script="sign-in",
        next=safe_next(request.query_params.get("next")),
    )


async def home_page(request: Request) -> Response:
    """GET /: the reader's companies and the selected one's transactions."""
    principal = await _principal(request)
    if principal is None:
        return _to_sign_in(request)
    return _app_page(request, principal, "home.html", title="Home", script="home")


async def messages_page(request: Request) -> Response:
    """GET /messages: the messages waiting for the reader."""
    principal = await _principal(request)
    if principal is None:
        return _to_sign_in(request)
    return _app_page(
        request, principal, "messages.html", title="Conversations", script="messages"
    )


def _uuid(value: str) -> uuid.UUID | None:
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return None
    # Only the canonical spelling, as the API's own paths take it.
    return parsed if str(parsed) == value else None


async def transaction_page(request: Request) -> Response:
    """GET /companies/{company_id}/transactions/{transaction_id}[?message=ID]

    The access check runs here as well as in the API, so a transaction the
    reader may not see answers 404 with a page that says so, instead of a
    shell that finds out later.
    """
    principal = await _principal(request)
    if principal is None:
        return _to_sign_in(request)
    company_id = _uuid(request.path_params["company_id"])
    transaction_id = _uuid(request.path_params["transaction_id"])
    try:
        if company_id is None or transaction_id is None:
            raise NotFound()
        await transactions.get_transaction(
            services_of(request), principal, company_id, transaction_id
        )
    except NotFound:
        return _app_page(
            request,
            principal,
            "no_access.html",
            status_code=404,
            title="No access",
            script="shell-only",
            message=NO_ACCESS,
        )
    return _app_page(
        request,
        principal,
        "transaction.html",
        title="Transaction",
        script="transaction",
        company_id=company_id,
        transaction_id=transaction_id,
        rule=ELIGIBILITY_RULE,
    )


async def settings_page(request: Request) -> Response:
    """GET /settings: email settings, when the API for them is there."""
    principal = await _principal(request)
    if principal is None:
        return _to_sign_in(request)
    return _app_page(
        request, principal, "settings.html", title="Settings", script="settings"
    )


# --- the local mailbox -----------------------------------------------------------


def _mailbox(request: Request) -> MailboxSender | None:
    """The on-disk mailbox; None when mail goes out over SMTP."""
    settings = settings_of(request)
    if settings.smtp_url is not None:
        return None
    return MailboxSender(settings.data_dir / "mailbox")


def _not_found(request: Request, principal: Principal) -> Response:
    return _app_page(
        request,
        principal,
        "not_found.html",
        status_code=404,
        title="Not found",
        script="shell-only",
    )


async def mailbox_page(request: Request) -> Response:
    """GET /mailbox: the mails kept on disk, newest first."""
    principal = await _principal(request)
    if principal is None:
        return _to_sign_in(request)
    mailbox = _mailbox(request)
    if mailbox is None:
        return _not_found(request, principal)
    mine = await _email_of(request, principal)
    # The mailbox holds everyone's mail; each person sees only their own.
    mails = [
        m
        for m in await mailbox.list_mails(_MAILBOX_SCAN_MAILS)
        if _addressed_to(m.to, mine)
    ][:_MAILBOX_PAGE_MAILS]
    return _app_page(
        request,
        principal,
        "mailbox.html",
        title="Local mailbox",
        script="shell-only",
        mails=mails,
    )


async def _email_of(request: Request, principal: Principal) -> str:
    async with services_of(request).db.connection() as conn:
        user = await users.by_id(conn, principal.user_id)
    return "" if user is None else user.email


def _addressed_to(header: str, email: str) -> bool:
    """Whether a To header names exactly this address (case aside)."""
    _, address = parseaddr(header)
    return bool(email) and address.lower() == email.lower()


class _LinkFinder(HTMLParser):
    """Collects the ``href`` of every ``<a>`` in a document."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            for name, value in attrs:
                if name == "href" and value:
                    self.links.append(value)


def _own_links(html: str, public_url: str) -> list[str]:
    """Links in a mail that point at this server, each once, in order.

    Only these are offered as links on the page; anything else in a mail
    stays inside its sandboxed frame.
    """
    finder = _LinkFinder()
    finder.feed(html)
    prefix = public_url.rstrip("/") + "/"
    return list(dict.fromkeys(u for u in finder.links if u.startswith(prefix)))


def _part(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_subtype() != subtype:
        return None
    content = part.get_content()
    return content if isinstance(content, str) else None


async def mail_page(request: Request) -> Response:
    """GET /mailbox/{mail_id}: one mail, its text part and its HTML part."""
    principal = await _principal(request)
    if principal is None:
        return _to_sign_in(request)
    mailbox = _mailbox(request)
    mail_id = request.path_params["mail_id"]
    message = None if mailbox is None else await mailbox.read_mail(mail_id)
    if message is None or not _addressed_to(
        str(message["To"] or ""), await _email_of(request, principal)
    ):
        return _not_found(request, principal)
    html = _part(message, "html")
    return _app_page(
        request,
        principal,
        "mail.html",
        title=str(message["Subject"] or "Mail"),
        script="shell-only",
        mail_id=mail_id,
        subject=str(message["Subject"] or ""),
        sender=str(message["From"] or ""),
        to=str(message["To"] or ""),
        date=str(message["Date"] or ""),
        text=_part(message, "plain"),
        has_html=html is not None,
        links=[] if html is None else _own_links(html, settings_of(request).public_url),
    )


_HEAD = re.compile(r"<head\b[^>]*>", re.IGNORECASE)


async def mail_html(request: Request) -> Response:
    """GET /mailbox/{mail_id}/html: a mail's HTML part, for a sandboxed frame."""
    principal = await _principal(request)
    mailbox = _mailbox(request)
    message = None
    if principal is not None and mailbox is not None:
        message = await mailbox.read_mail(request.path_params["mail_id"])
        if message is not None and not _addressed_to(
            str(message["To"] or ""), await _email_of(request, principal)
        ):
            message = None
    html = None if message is None else _part(message, "html")
    if html is None:
        return Response("Not found.", status_code=404, media_type="text/plain")
    # Links open in the window around the frame: the pages they lead to may
    # not be framed, so followed inside the frame they would show nothing.
    base = '<base target="_top">'
    found = _HEAD.search(html)
    if found is None:
        html = base + html
    else:
        html = html[: found.end()] + base + html[found.end() :]
    return HTMLResponse(
        html,
        headers={
            # frame-ancestors lets our own mail page frame this one; where
            # it is present, browsers ignore the X-Frame-Options: DENY that
            # every answer carries (CSP Level 2, section 7.7.1).
            "content-security-policy": _MAIL_HTML_POLICY,
        },
    )


page_routes: list[BaseRoute] = [
    Route("/", home_page, methods=["GET"]),
    Route("/sign-in", sign_in_page, methods=["GET"]),
    Route("/messages", messages_page, methods=["GET"]),
    Route(
        "/companies/{company_id}/transactions/{transaction_id}",
        transaction_page,
        methods=["GET"],
    ),
    Route("/settings", settings_page, methods=["GET"]),
    Route("/mailbox", mailbox_page, methods=["GET"]),
    Route("/mailbox/{mail_id}", mail_page, methods=["GET"]),
    Route("/mailbox/{mail_id}/html", mail_html, methods=["GET"]),
    Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
]
