"""Log output: readable lines at a terminal, JSON lines for collectors.

Levels mean the same everywhere (see docs/operations.md): ERROR is our bug
or a crashed handler, WARNING a degraded service, INFO a lifecycle event,
DEBUG per-message detail.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
from typing import Any


__all__ = ["ClientFaults", "RedactSecrets", "configure_logging", "redact"]

# Attributes every LogRecord has; anything else came in through ``extra``.
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName", "color_message"}
)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = f"{record.levelname:<7} {record.name}: {record.getMessage()}"
        extras = _extras(record)
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in sorted(extras.items()))
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


# Our secrets never belong in a URL, but a client may put one there anyway
# (``/ws?token=...``), and access logs keep URLs.
_SECRET_PARAM = re.compile(
    r"([?&](?:token|access_token|password|secret|key)=)[^&\s\"]*", re.IGNORECASE
)
_TOKEN = re.compile(r"tmk_[A-Za-z0-9_-]{8,}")


def redact(text: str) -> str:
    """The text with credentials in it replaced by ``[redacted]``."""
    text = _SECRET_PARAM.sub(r"\1[redacted]", text)
    return _TOKEN.sub("tmk_[redacted]", text)


class RedactSecrets(logging.Filter):
    """Redacts credentials from the arguments of access log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


class ClientFaults(logging.Filter):
    """Logs a client's malformed input as INFO, without a traceback.

    Uvicorn logs a text frame that is not UTF-8 as an error with its
    traceback, and closes the socket with 1007. The fault is the client's,
    and anyone may send such frames, one connection after another: at
    ERROR they would bury our own errors.
    """

    _MESSAGES = frozenset({"Invalid UTF-8 sequence received from client."})

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg in self._MESSAGES:
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info = None
            record.exc_text = None
        return True


def configure_logging(level: str, fmt: str) -> None:
    """Send every logger's records to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # pgserver logs every step of its start at INFO; only its warnings matter.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactSecrets) for f in access.filters):
        access.addFilter(RedactSecrets())
    errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, ClientFaults) for f in errors.filters):
        errors.addFilter(ClientFaults())
