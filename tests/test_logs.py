"""Log output never carries credentials, even ones a client put in a URL."""

from __future__ import annotations

import logging

import pytest

from server.logs import RedactSecrets, redact


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
