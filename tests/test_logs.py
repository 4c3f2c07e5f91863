"""Log output never carries credentials, even ones a client put in a URL,
and a client's malformed input is not logged as our error."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from server.logs import ClientFaults, RedactSecrets, configure_logging, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/ws?token=tmk_abcdefghijkl", "/ws?token=[redacted]"),
        ("/x?a=1&access_token=s3cret&b=2", "/x?a=1&access_token=[redacted]&b=2"),
        ("/x?Password=hunter2", "/x?Password=[redacted]"),
        ("Bearer tmk_abcdefghijklmnop in text", "Bearer tmk_[redacted] in text"),
        ("/api/companies?type=bill", "/api/companies?type=bill"),
    ],
)
def test_credentials_are_redacted(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_access_log_records_are_redacted() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/ws?token=tmk_leakedsecret1", "1.1", 101),
        None,
    )
    assert RedactSecrets().filter(record) is True
    assert record.getMessage() == (
        '127.0.0.1:5000 - "GET /ws?token=[redacted] HTTP/1.1" 101'
    )


@pytest.fixture
def configured() -> Iterator[None]:
    """configure_logging for one test; the loggers as they were after it."""
    root = logging.getLogger()
    errors = logging.getLogger("uvicorn.error")
    access = logging.getLogger("uvicorn.access")
    saved = (root.handlers[:], root.level, errors.filters[:], access.filters[:])
    try:
        yield
    finally:
        root.handlers[:], level, errors.filters[:], access.filters[:] = saved
        root.setLevel(level)


@pytest.mark.usefixtures("configured")
def test_a_client_s_invalid_utf8_is_info_without_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "text")
    assert any(
        isinstance(f, ClientFaults) for f in logging.getLogger("uvicorn.error").filters
    )
    try:
        b"\xff".decode()
    except UnicodeDecodeError:
        logging.getLogger("uvicorn.error").exception(
            "Invalid UTF-8 sequence received from client."
        )
        logging.getLogger("uvicorn.error").exception("Something else broke.")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == (
        "INFO    uvicorn.error: Invalid UTF-8 sequence received from client."
    )
    assert lines[1] == "ERROR   uvicorn.error: Something else broke."
    assert lines[2] == "Traceback (most recent call last):"
