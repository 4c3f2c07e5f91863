"""Posting a reply that came by email into its transaction's conversation.

A notification about one transaction carries a Reply-To of
``reply+<token>@<reply domain>``, where the token holds the transaction
and a MAC of (recipient, transaction). A reply is taken only when its
From address belongs to a person for whom that MAC checks out, so a
forwarded email answered by a colleague is refused, and a token cannot be
made up. It is then posted as that person, through the same path as any
post: their membership and the transaction's type are checked as usual.

Known limitation: the From address is believed as written. A forger who
knows both a person's address and one of their reply tokens could post as
them; the MTA in front of the reply server should reject mail that fails
DMARC, which takes that away.
"""

from __future__ import annotations

import hashlib
import logging
import uuid

from server.core import conversations
from server.core.conversations import PostResult
from server.core.mail_tokens import transaction_of_reply_token
from server.core.principal import Principal, Scope
from server.core.services import Services
from server.errors import Forbidden, NotFound
from server.store import email_replies, transactions, users


__all__ = ["REPLY_REFUSED", "idempotency_key_of", "post_reply"]

logger = logging.getLogger(__name__)

#: The code of the error for a sender the address is not theirs.
REPLY_REFUSED = "reply_refused"

# Stands for "no credential": the signed address is what authorizes.
_NO_CREDENTIAL = uuid.UUID(int=0)


def idempotency_key_of(source_id: str) -> str:
    """The idempotency key of the post made from one email.

    Args:
        source_id: the email's Message-ID, or when it has none, a digest of
            its bytes; a mail delivered twice makes one post.

    """
    return "email:" + hashlib.sha256(source_id.encode("utf-8")).hexdigest()[:48]


async def post_reply(
    services: Services,
    *,
    secret_key: str,
    sender: str,
    token: str,
    body: str,
    source_id: str,
) -> PostResult:
    """Post ``body`` as the person ``sender`` is, on the token's transaction.

    The reply is addressed to whoever last wrote to the sender there.

    Args:
        sender: the email's From address.
        token: the part of the reply address after "reply+".
        source_id: the email's Message-ID (see :func:`idempotency_key_of`).

    Raises:
        Forbidden: code ``reply_refused``: the sender is no person of
            ours, or the token was not made for them.
        NotFound: the transaction is gone, is no longer the sender's, or
            nobody wrote to the sender there.
        InvalidInput: the body cannot be a message (empty, too long).

    """
    async with services.db.connection() as conn:
        user = await users.by_email(conn, sender)
        transaction_id = None
        if user is not None and user.kind == "person":
            transaction_id = transaction_of_reply_token(secret_key, token, user.id)
        if user is None or transaction_id is None:
            # One answer for an unknown sender and a wrong token, so the
            # reply address tells nothing about who has an account.
            raise Forbidden(
                "This reply address does not take mail from this sender.",
                code=REPLY_REFUSED,
            )
        company_id = await transactions.company_of(conn, transaction_id)
        addressee = await email_replies.addressee_of_reply(
            conn, transaction_id, user.id
        )
    if company_id is None or addressee is None:
        raise NotFound()

    principal = Principal(
        user_id=user.id,
        display_name=user.display_name,
        user_kind=user.kind,
        credential_id=_NO_CREDENTIAL,
        credential_kind="email",
        scopes=frozenset({Scope.READ, Scope.POST}),
        company_ids=None,
    )
    result = await conversations.post_message(
        services,
        principal,
        company_id,
        transaction_id,
        body=body,
        recipient_ids=[addressee],
        idempotency_key=idempotency_key_of(source_id),
    )
    logger.info(
        "reply by email posted",
        extra={
            "user_id": str(user.id),
            "message_id": str(result.message.id),
            "new": result.created,
        },
    )
    return result
