from __future__ import annotations

import pytest

from server.core.eligibility import (
    ELIGIBILITY_RULE,
    TransactionType,
    check_takes_conversation,
    takes_conversation,
)
from server.errors import ConversationNotAllowed


TAKES = {
    "invoice": True,
    "bill": True,
    "customer_payment": True,
    "vendor_check": True,
    "credit_card_charge": True,
    "credit_card_credit": True,
    "sales_receipt": False,
    "expense": False,
    "billable_expense": False,
    "delayed_charge": False,
    "credit_memo": False,
    "paycheck": False,
    "payroll": False,
}


def test_every_type_is_classified() -> None:
    assert {t.value for t in TransactionType} == set(TAKES)


@pytest.mark.parametrize(("kind", "expected"), sorted(TAKES.items()))
def test_takes_conversation_follows_the_rule(kind: str, expected: bool) -> None:
    assert takes_conversation(TransactionType(kind)) is expected


@pytest.mark.parametrize("kind", sorted(k for k, v in TAKES.items() if not v))
def test_refusal_names_the_type_and_quotes_the_rule(kind: str) -> None:
    with pytest.raises(ConversationNotAllowed) as caught:
        check_takes_conversation(TransactionType(kind))
    assert caught.value.code == "conversation_not_allowed"
    assert caught.value.message.startswith(TransactionType(kind).label)
    assert caught.value.message.endswith(ELIGIBILITY_RULE)
