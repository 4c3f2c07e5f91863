"""Typed settings read from the environment, each with an embedded default.

Every variable is listed with its default in the README's configuration
table; this module is the one place that reads them.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit


__all__ = ["Settings", "SettingsError", "local_url"]


class SettingsError(ValueError):
    """An environment variable holds a value Tickmark cannot use."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"{name} must be positive, got {value}")
    return value


# A plain ASCII address, the only kind the mail composer accepts.
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=^_`{|}~-]+@[A-Za-z0-9.-]+")
_DOMAIN = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")


def _bounded_int(
    env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int
) -> int:
    value = _int(env, name, default, minimum=minimum)
    if value > maximum:
        raise SettingsError(f"{name} must be at most {maximum}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "false").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("", "0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """What a Tickmark process needs to know about its surroundings."""

    # PostgreSQL URL; None starts the embedded server under data_dir.
    database_url: str | None = None
    # Redis URL; None uses the in-process broker (one server process only).
    redis_url: str | None = None
    # SMTP URL (smtp://, smtp+starttls://, smtps://); None keeps mail on disk.
    smtp_url: str | None = None
    # The address users reach the server at; deep links are built from it.
    # Unset in the environment, it follows HOST and PORT (see local_url).
    public_url: str = "http://127.0.0.1:8000"
    # Signs values that leave the server (unsubscribe links, Message-IDs).
    secret_key: str = ""
    # Where embedded PostgreSQL, the local mailbox and the generated key live.
    data_dir: Path = Path(".tickmark")
    host: str = "127.0.0.1"
    port: int = 8000
    # Browser origins allowed to use the session cookie over /ws and the API.
    allowed_origins: tuple[str, ...] = ()
    log_level: str = "INFO"
    # "text" for people at a terminal, "json" for log collectors.
    log_format: str = "text"

    # Connections kept open to PostgreSQL by one process.
    db_pool_size: int = 10
    # Upper bound on one SQL statement; asyncpg has none by default.
    db_command_timeout_secs: float = 10.0

    # Browser sessions end after this long without use.
    session_idle_secs: int = 14 * 24 * 3600
    # Bearer tokens from a password sign-in end after this long.
    sign_in_token_secs: int = 30 * 24 * 3600
    # Sign-in failures allowed per account and per address in one window.
    sign_in_failures_per_account: int = 10
    sign_in_failures_per_account_total: int = 100
    sign_in_failures_per_address: int = 50
    sign_in_window_secs: int = 15 * 60

    # Upper bound on an HTTP request body; larger requests get 413.
    max_request_bytes: int = 64 * 1024
    # Upper bound on a batch upsert of transactions.
    max_import_request_bytes: int = 4 * 1024 * 1024

    # Largest WebSocket frame a client may send (uvicorn's own default is
    # 16 MiB); the largest message body, JSON-escaped, fits well inside.
    ws_max_frame_bytes: int = 64 * 1024
    ws_max_subscriptions: int = 200
    # Per server process: a reconnect storm past it waits its turn (503).
    ws_max_connections: int = 20_000
    # Per user, per server process.
    ws_max_connections_per_user: int = 20
    ws_frames_per_sec: int = 20
    # Frames queued for one client before it is closed as too slow.
    ws_send_queue_frames: int = 1024
    # Most messages replayed on subscribe; beyond, the client pages HTTP.
    ws_replay_limit: int = 500
    ws_auth_timeout_secs: float = 10.0
    # Protocol pings find dead peers; 20 s stays under the 30-60 s idle
    # limits of common proxies and NATs.
    ws_ping_interval_secs: float = 20.0
    ws_ping_timeout_secs: float = 20.0
    # permessage-deflate, each message compressed on its own (see
    # server.live.wire): off by default, as a message frame (about 700
    # bytes, mostly ids) shrinks only by about a third.
    ws_compression: bool = False
    # A connection counts as attentive this long after a sign of activity.
    presence_active_secs: float = 60.0
    # Bearer token a metrics scraper sends to GET /metrics; None allows
    # only scrapers on this machine (loopback).
    metrics_token: str | None = None
    # Let webhooks reach private and loopback addresses, and plain http:
    # for receivers inside the operator's own network. Off: public https only.
    webhook_allow_private: bool = False
    # How often open connections' credentials are re-read for expiry.
    ws_credential_check_secs: float = 30.0
    # How long shutdown waits for connections and requests to finish.
    shutdown_grace_secs: float = 10.0

    # How long an unread message waits before it is mailed, for people who
    # have not chosen their own delay (Zulip's default of two minutes).
    email_delay_secs: int = 120
    # Most notification emails one person gets in an hour.
    email_max_per_hour: int = 12
    # The From address of notifications; "" means tickmark@<PUBLIC_URL host>.
    mail_from: str = ""
    # How often the mail worker looks for due messages.
    mail_poll_secs: float = 2.0
    # Backoff after a failed send: the first wait, doubling up to the last.
    mail_retry_base_secs: float = 30.0
    mail_retry_max_secs: float = 1800.0
    # Domain whose mail reaches `tickmark reply-server`; None: no reply by
    # email, and notifications carry no Reply-To.
    reply_domain: str | None = None
    # Where `tickmark reply-server` listens for SMTP.
    reply_smtp_host: str = "127.0.0.1"
    reply_smtp_port: int = 2525

    @property
    def public_origin(self) -> str:
        return _origin(self.public_url)

    @property
    def mail_from_address(self) -> str:
        """The From address of notification emails."""
        host = urlsplit(self.public_url).hostname or "localhost"
        return self.mail_from or f"tickmark@{host}"

    @property
    def secure_cookies(self) -> bool:
        return urlsplit(self.public_url).scheme == "https"

    @property
    def origins(self) -> frozenset[str]:
        """Origins a cookie-authenticated request may come from."""
        return frozenset((self.public_origin, *self.allowed_origins))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from environment variables.

        Raises:
            SettingsError: a variable is set to a value that cannot be used.

        """
        env = os.environ if env is None else env
        host = env.get("HOST") or cls.host
        port = _int(env, "PORT", cls.port, minimum=0)
        public_url = env.get("PUBLIC_URL") or local_url(host, port)
        scheme = urlsplit(public_url).scheme
        if scheme not in ("http", "https") or not urlsplit(public_url).netloc:
            raise SettingsError(
                f"PUBLIC_URL must be an http(s) URL, got {public_url!r}"
            )
        origins = tuple(
            _origin(o.strip())
            for o in env.get("ALLOWED_ORIGINS", "").split(",")
            if o.strip()
        )
        log_format = env.get("LOG_FORMAT", "text")
        if log_format not in ("text", "json"):
            raise SettingsError(f"LOG_FORMAT must be text or json, got {log_format!r}")
        data_dir = Path(env.get("TICKMARK_DATA_DIR") or ".tickmark")
        mail_from = env.get("MAIL_FROM", "")
        if mail_from and not _ADDRESS.fullmatch(mail_from):
            raise SettingsError(
                f"MAIL_FROM must be a plain ASCII email address, got {mail_from!r}"
            )
        reply_domain = env.get("REPLY_DOMAIN") or None
        if reply_domain is not None and not _DOMAIN.fullmatch(reply_domain):
            raise SettingsError(
                f"REPLY_DOMAIN must be a domain name, got {reply_domain!r}"
            )
        retry_base_secs = _float(env, "MAIL_RETRY_BASE_SECS", cls.mail_retry_base_secs)
        retry_max_secs = _float(env, "MAIL_RETRY_MAX_SECS", cls.mail_retry_max_secs)
        if retry_max_secs < retry_base_secs:
            raise SettingsError(
                "MAIL_RETRY_MAX_SECS must be at least MAIL_RETRY_BASE_SECS"
            )
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            redis_url=env.get("REDIS_URL") or None,
            smtp_url=env.get("SMTP_URL") or None,
            public_url=public_url.rstrip("/"),
            secret_key=env.get("SECRET_KEY") or _local_secret(data_dir),
            data_dir=data_dir,
            host=host,
            port=port,
            allowed_origins=origins,
            log_level=(env.get("LOG_LEVEL") or cls.log_level).upper(),
            log_format=log_format,
            db_pool_size=_int(env, "DB_POOL_SIZE", cls.db_pool_size, minimum=2),
            db_command_timeout_secs=_float(
                env, "DB_COMMAND_TIMEOUT_SECS", cls.db_command_timeout_secs
            ),
            session_idle_secs=_int(
                env, "SESSION_IDLE_SECS", cls.session_idle_secs, minimum=60
            ),
            sign_in_failures_per_account=_int(
                env,
                "SIGN_IN_FAILURES_PER_ACCOUNT",
                cls.sign_in_failures_per_account,
                minimum=1,
            ),
            sign_in_failures_per_account_total=_int(
                env,
                "SIGN_IN_FAILURES_PER_ACCOUNT_TOTAL",
                cls.sign_in_failures_per_account_total,
                minimum=1,
            ),
            sign_in_failures_per_address=_int(
                env,
                "SIGN_IN_FAILURES_PER_ADDRESS",
                cls.sign_in_failures_per_address,
                minimum=1,
            ),
            max_request_bytes=_int(
                env, "MAX_REQUEST_BYTES", cls.max_request_bytes, minimum=1024
            ),
            # Below 64 KiB, a largest body escaped as JSON might not fit.
            ws_max_frame_bytes=_int(
                env, "WS_MAX_FRAME_BYTES", cls.ws_max_frame_bytes, minimum=64 * 1024
            ),
            ws_auth_timeout_secs=_float(
                env, "WS_AUTH_TIMEOUT_SECS", cls.ws_auth_timeout_secs
            ),
            ws_credential_check_secs=_float(
                env, "WS_CREDENTIAL_CHECK_SECS", cls.ws_credential_check_secs
            ),
            shutdown_grace_secs=_float(
                env, "SHUTDOWN_GRACE_SECS", cls.shutdown_grace_secs
            ),
            ws_max_subscriptions=_int(
                env, "WS_MAX_SUBSCRIPTIONS", cls.ws_max_subscriptions, minimum=1
            ),
            ws_max_connections=_int(
                env, "WS_MAX_CONNECTIONS", cls.ws_max_connections, minimum=1
            ),
            ws_max_connections_per_user=_int(
                env,
                "WS_MAX_CONNECTIONS_PER_USER",
                cls.ws_max_connections_per_user,
                minimum=1,
            ),
            ws_frames_per_sec=_int(
                env, "WS_FRAMES_PER_SEC", cls.ws_frames_per_sec, minimum=1
            ),
            ws_send_queue_frames=_int(
                env, "WS_SEND_QUEUE_FRAMES", cls.ws_send_queue_frames, minimum=16
            ),
            ws_replay_limit=_int(
                env, "WS_REPLAY_LIMIT", cls.ws_replay_limit, minimum=1
            ),
            ws_ping_interval_secs=_float(
                env, "WS_PING_INTERVAL_SECS", cls.ws_ping_interval_secs
            ),
            ws_ping_timeout_secs=_float(
                env, "WS_PING_TIMEOUT_SECS", cls.ws_ping_timeout_secs
            ),
            ws_compression=_bool(env, "WS_COMPRESSION"),
            webhook_allow_private=_bool(env, "WEBHOOK_ALLOW_PRIVATE"),
            metrics_token=env.get("METRICS_TOKEN") or None,
            presence_active_secs=_float(
                env, "PRESENCE_ACTIVE_SECS", cls.presence_active_secs
            ),
            email_delay_secs=_bounded_int(
                env, "EMAIL_DELAY_SECS", cls.email_delay_secs, 0, 3600
            ),
            email_max_per_hour=_int(
                env, "EMAIL_MAX_PER_HOUR", cls.email_max_per_hour, minimum=1
            ),
            mail_from=mail_from,
            mail_poll_secs=_float(env, "MAIL_POLL_SECS", cls.mail_poll_secs),
            mail_retry_base_secs=retry_base_secs,
            mail_retry_max_secs=retry_max_secs,
            reply_domain=reply_domain,
            reply_smtp_host=env.get("REPLY_SMTP_HOST") or cls.reply_smtp_host,
            reply_smtp_port=_bounded_int(
                env, "REPLY_SMTP_PORT", cls.reply_smtp_port, 0, 65535
            ),
        )


def local_url(host: str, port: int) -> str:
    """Where a browser on this machine reaches a server listening there.

    The default PUBLIC_URL, so that changing PORT (or ``--port``) alone is
    enough to run on another port.
    """
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 (naming it, not binding it)
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _local_secret(data_dir: Path) -> str:
    """Return a random key kept in the data folder, made on first use.

    Good enough for one machine; several processes behind a load balancer
    must share SECRET_KEY instead, since each host would make its own.
    """
    path = data_dir / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process made it between our read and our write.
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key
