"""The URLs and addresses a notification email carries, all on PUBLIC_URL.

Deep links name the company, the transaction and the message:
``PUBLIC_URL/companies/{company}/transactions/{transaction}?message={id}``.
The browser pages own that path; a reader who is signed out is taken
through sign-in and back to it.
"""

from __future__ import annotations

import dataclasses
import uuid
from urllib.parse import urlsplit

from server.core.mail_tokens import reply_token, unsubscribe_token


__all__ = ["MailLinks"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MailLinks:
    """Builds every link and address of the emails for one server.

    Raises:
        ValueError: ``public_url`` is not an http(s) URL with a host.

    """

    # The server as users reach it, without a trailing "/".
    public_url: str
    # Signs the unsubscribe links and reply addresses.
    secret_key: str
    # Domain of the reply addresses; None when reply by email is off.
    reply_domain: str | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.public_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"public_url must be an http(s) URL, got {self.public_url!r}"
            )

    @property
    def host(self) -> str:
        """PUBLIC_URL's host name, which Message-IDs end with."""
        host = urlsplit(self.public_url).hostname
        assert host is not None
        return host

    def transaction_url(self, company_id: uuid.UUID, transaction_id: uuid.UUID) -> str:
        return f"{self.public_url}/companies/{company_id}/transactions/{transaction_id}"

    def message_url(
        self,
        company_id: uuid.UUID,
        transaction_id: uuid.UUID,
        message_id: uuid.UUID,
    ) -> str:
        """The deep link to one message in its transaction's conversation."""
        base = self.transaction_url(company_id, transaction_id)
        return f"{base}?message={message_id}"

    @property
    def settings_url(self) -> str:
        return f"{self.public_url}/settings"

    def unsubscribe_url(self, user_id: uuid.UUID) -> str:
        """The one-click unsubscribe link (RFC 8058) of one person."""
        token = unsubscribe_token(self.secret_key, user_id)
        return f"{self.public_url}/unsubscribe/{token}"

    def message_id(self, batch_id: uuid.UUID) -> str:
        """The Message-ID of the email made from one batch."""
        return f"<{batch_id}@{self.host}>"

    def reply_address(
        self, user_id: uuid.UUID, transaction_id: uuid.UUID
    ) -> str | None:
        """Where ``user_id`` replies on a transaction; None when replies are off."""
        if self.reply_domain is None:
            return None
        token = reply_token(self.secret_key, user_id, transaction_id)
        return f"reply+{token}@{self.reply_domain}"
