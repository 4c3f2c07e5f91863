"""Signed tokens in emails: unsubscribe links and reply addresses."""

from __future__ import annotations

import uuid

import pytest

from server.core.mail_tokens import (
    reply_token,
    transaction_of_reply_token,
    unsubscribe_token,
    user_of_unsubscribe_token,
)
from server.mail.links import MailLinks


KEY = "test-secret"
CARL = uuid.UUID("00000000-0000-4000-8000-00000000ca71")
CORA = uuid.UUID("00000000-0000-4000-8000-00000000c02a")
TXN = uuid.UUID("3f2c9a4e-8b1d-4c6e-9a7f-0d5e1b2c3a4f")


def test_unsubscribe_token_names_its_user() -> None:
    token = unsubscribe_token(KEY, CARL)
    assert token.startswith(CARL.hex + ".")
    assert len(token) == 55
    assert user_of_unsubscribe_token(KEY, token) == CARL


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not-a-token",
        unsubscribe_token("other-key", CARL),
        unsubscribe_token(KEY, CARL)[:-1],
        unsubscribe_token(KEY, CARL) + "A",
        unsubscribe_token(KEY, CARL).upper(),
        f"{CARL.hex}.{unsubscribe_token(KEY, CORA).split('.')[1]}",
        unsubscribe_token(KEY, CARL) + "\n",
    ],
)
def test_unsubscribe_token_refuses_anything_else(token: str) -> None:
    assert user_of_unsubscribe_token(KEY, token) is None


def test_reply_token_fits_the_local_part_and_is_lowercase_base32() -> None:
    token = reply_token(KEY, CARL, TXN)
    assert len(token) == 45
    assert set(token) <= set("abcdefghijklmnopqrstuvwxyz234567")
    address = MailLinks(
        public_url="https://app.example.test",
        secret_key=KEY,
        reply_domain="reply.example.test",
    ).reply_address(CARL, TXN)
    assert address == f"reply+{token}@reply.example.test"
    assert address is not None
    # RFC 5321 section 4.5.3.1.1: 64 octets at most before the "@".
    assert len(address.split("@")[0]) <= 64


def test_reply_token_gives_the_transaction_to_its_user_only() -> None:
    token = reply_token(KEY, CARL, TXN)
    assert transaction_of_reply_token(KEY, token, CARL) == TXN
    # Mail systems that fold the local part to upper case change nothing.
    assert transaction_of_reply_token(KEY, token.upper(), CARL) == TXN
    assert transaction_of_reply_token(KEY, token, CORA) is None
    assert transaction_of_reply_token("other-key", token, CARL) is None


@pytest.mark.parametrize(
    "token",
    ["", "a" * 45, "1" * 45, reply_token(KEY, CARL, TXN)[:-1], "Ü" * 45],
)
def test_reply_token_refuses_malformed_tokens(token: str) -> None:
    assert transaction_of_reply_token(KEY, token, CARL) is None


def test_tokens_of_one_purpose_never_pass_for_the_other() -> None:
    # Same key, same ids: the purpose label makes the MACs differ.
    unsubscribe_mac = unsubscribe_token(KEY, CARL).split(".")[1]
    assert unsubscribe_mac not in reply_token(KEY, CARL, TXN)


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="secret_key"):
        unsubscribe_token("", CARL)


def test_links_are_on_the_public_url_and_message_ids_on_its_host() -> None:
    links = MailLinks(public_url="https://app.example.test:8443", secret_key=KEY)
    batch = uuid.UUID(int=7)
    assert links.message_id(batch) == f"<{batch}@app.example.test>"
    assert links.message_url(CARL, TXN, CORA) == (
        f"https://app.example.test:8443/companies/{CARL}/transactions/{TXN}"
        f"?message={CORA}"
    )
    assert links.settings_url == "https://app.example.test:8443/settings"
    assert links.unsubscribe_url(CARL) == (
        f"https://app.example.test:8443/unsubscribe/{unsubscribe_token(KEY, CARL)}"
    )
    assert links.reply_address(CARL, TXN) is None
