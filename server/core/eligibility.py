"""Which transactions take a conversation.

Only posting transactions do: the ones an accountant reconciles against a
counterparty and may need to ask about. Cash sales and non-posting or
payroll entries do not. The rule is the product's, and a refused post
quotes it, so a person reading the error learns the rule rather than a
code.
"""

from __future__ import annotations

import enum

from server.errors import ConversationNotAllowed


__all__ = [
    "ELIGIBILITY_RULE",
    "TransactionType",
    "check_takes_conversation",
    "takes_conversation",
]


class TransactionType(enum.StrEnum):
    """The kinds of transaction Tickmark knows, as stored and sent in JSON."""

    INVOICE = "invoice"
    BILL = "bill"
    CUSTOMER_PAYMENT = "customer_payment"
    VENDOR_CHECK = "vendor_check"
    CREDIT_CARD_CHARGE = "credit_card_charge"
    CREDIT_CARD_CREDIT = "credit_card_credit"
    SALES_RECEIPT = "sales_receipt"
    EXPENSE = "expense"
    BILLABLE_EXPENSE = "billable_expense"
    DELAYED_CHARGE = "delayed_charge"
    CREDIT_MEMO = "credit_memo"
    PAYCHECK = "paycheck"
    PAYROLL = "payroll"

    @property
    def label(self) -> str:
        """The name a person reads, as in "Invoice 1042"."""
        return _LABELS[self]


_LABELS = {
    TransactionType.INVOICE: "Invoice",
    TransactionType.BILL: "Bill",
    TransactionType.CUSTOMER_PAYMENT: "Payment",
    TransactionType.VENDOR_CHECK: "Check",
    TransactionType.CREDIT_CARD_CHARGE: "Credit card charge",
    TransactionType.CREDIT_CARD_CREDIT: "Credit card credit",
    TransactionType.SALES_RECEIPT: "Sales receipt",
    TransactionType.EXPENSE: "Expense",
    TransactionType.BILLABLE_EXPENSE: "Billable expense",
    TransactionType.DELAYED_CHARGE: "Delayed charge",
    TransactionType.CREDIT_MEMO: "Credit memo",
    TransactionType.PAYCHECK: "Paycheck",
    TransactionType.PAYROLL: "Payroll",
}

_TAKES_CONVERSATION = frozenset(
    {
        TransactionType.INVOICE,
        TransactionType.BILL,
        TransactionType.CUSTOMER_PAYMENT,
        TransactionType.VENDOR_CHECK,
        TransactionType.CREDIT_CARD_CHARGE,
        TransactionType.CREDIT_CARD_CREDIT,
    }
)

ELIGIBILITY_RULE = (
    "Only posting transactions take conversations: invoices, bills, payments "
    "received from customers, checks to vendors, credit card charges and "
    "credit card credits. Sales receipts, expenses, billable expenses, "
    "delayed charges, credit memos, paychecks and payroll do not."
)


def takes_conversation(kind: TransactionType) -> bool:
    """Tell whether a transaction of this type may have a conversation."""
    return kind in _TAKES_CONVERSATION


def check_takes_conversation(kind: TransactionType) -> None:
    """Refuse a conversation on a transaction type that takes none.

    Raises:
        ConversationNotAllowed: names the type and quotes the rule.

    """
    if not takes_conversation(kind):
        raise ConversationNotAllowed(
            f"{kind.label} transactions cannot have a conversation. {ELIGIBILITY_RULE}",
            field="transaction",
        )
