"""Who is asking, and what their credential lets them do."""

from __future__ import annotations

import dataclasses
import enum
import uuid


__all__ = ["Principal", "Scope"]


class Scope(enum.StrEnum):
    """What a credential may be used for."""

    READ = "read"
    POST = "post"
    SUBSCRIBE = "subscribe"
    WRITE_TRANSACTIONS = "write_transactions"


#: A browser session or a password sign-in may do all a person does; only
#: tokens made for the purpose write transactions.
PERSON_SCOPES = frozenset({Scope.READ, Scope.POST, Scope.SUBSCRIBE})


@dataclasses.dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: a user acting through one credential."""

    user_id: uuid.UUID
    display_name: str
    # 'person' or 'bot'.
    user_kind: str
    credential_id: uuid.UUID
    # 'session' (cookie), 'token' (bearer) or 'email' (a reply by email,
    # authorized by its signed address; credential_id is then all zeros).
    credential_kind: str
    scopes: frozenset[str]
    # Companies the credential is limited to; None means all of the user's.
    company_ids: frozenset[uuid.UUID] | None

    def may(self, scope: Scope) -> bool:
        return scope in self.scopes

    def reaches(self, company_id: uuid.UUID) -> bool:
        """Tell whether the credential is allowed near this company at all.

        Membership is checked separately; this only applies the limit a
        token was created with.
        """
        return self.company_ids is None or company_id in self.company_ids
