"""The subscription state machine: order, duplicates, gaps, resyncs."""

from __future__ import annotations

import uuid

import pytest

from server.core.channels import Channel
from server.live.subscription import State, Subscription, Verdict


def _state(subscription: Subscription) -> State:
    # A call, so that the checker does not narrow the attribute between steps.
    return subscription.state


def _live(position: int = 0) -> Subscription:
    subscription = Subscription(Channel.transaction(uuid.uuid4()), uuid.uuid4())
    subscription.caught_up(position)
    assert _state(subscription) is State.LIVE
    return subscription


def test_news_in_order_is_delivered() -> None:
    subscription = _live(3)
    assert subscription.offer(4, "m4") is Verdict.DELIVER
    assert subscription.offer(5, "m5") is Verdict.DELIVER
    assert subscription.position == 5


def test_news_already_delivered_is_a_duplicate() -> None:
    subscription = _live(3)
    assert subscription.offer(3, "m3") is Verdict.DUPLICATE
    assert subscription.offer(1, "m1") is Verdict.DUPLICATE
    assert subscription.position == 3


def test_news_past_a_gap_is_held_until_the_gap_is_read() -> None:
    subscription = _live(3)
    assert subscription.offer(6, "m6") is Verdict.GAP
    assert _state(subscription) is State.FILLING
    assert subscription.offer(7, "m7") is Verdict.HOLD
    # The gap is read from the database: 4 and 5.
    assert subscription.delivered(4) is True
    assert subscription.delivered(5) is True
    due, again = subscription.caught_up(subscription.position)
    assert (due, again) == (["m6", "m7"], False)
    assert _state(subscription) is State.LIVE
    assert subscription.position == 7


def test_a_read_that_stops_short_of_held_news_asks_for_another() -> None:
    subscription = _live(3)
    subscription.offer(9, "m9")
    due, again = subscription.caught_up(5)
    assert (due, again) == ([], True)
    assert _state(subscription) is State.FILLING


def test_news_during_the_initial_recovery_is_held_then_released_in_order() -> None:
    subscription = Subscription(Channel.company(uuid.uuid4()), uuid.uuid4())
    assert subscription.offer(12, "m12") is Verdict.HOLD
    assert subscription.offer(11, "m11") is Verdict.HOLD
    assert subscription.offer(9, "m9") is Verdict.HOLD
    due, again = subscription.caught_up(10)
    assert (due, again) == (["m11", "m12"], False)


def test_signals_pass_only_while_live() -> None:
    subscription = Subscription(Channel.transaction(uuid.uuid4()), uuid.uuid4())
    assert subscription.offer(None, "typing") is Verdict.DUPLICATE
    subscription.caught_up(0)
    assert subscription.offer(None, "typing") is Verdict.DELIVER


def test_a_resync_while_live_starts_a_read() -> None:
    subscription = _live(3)
    assert subscription.begin_resync() is True
    assert _state(subscription) is State.FILLING
    assert subscription.offer(4, "m4") is Verdict.HOLD


def test_a_resync_during_a_read_asks_for_one_more() -> None:
    subscription = _live(3)
    subscription.offer(6, "m6")
    assert subscription.begin_resync() is False
    subscription.delivered(4)
    subscription.delivered(5)
    due, again = subscription.caught_up(5)
    assert (due, again) == (["m6"], True)
    due, again = subscription.caught_up(6)
    assert (due, again) == ([], False)


def test_held_news_is_bounded() -> None:
    subscription = Subscription(
        Channel.transaction(uuid.uuid4()), uuid.uuid4(), max_held=3
    )
    for position in range(1, 11):
        subscription.offer(position, f"m{position}")
    # The oldest were dropped; they are read again from the database.
    due, again = subscription.caught_up(7)
    assert (due, again) == (["m8", "m9", "m10"], False)


def test_max_held_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_held"):
        Subscription(Channel.transaction(uuid.uuid4()), None, max_held=0)


def test_giving_up_on_a_gap_goes_live_from_the_newest_held_news() -> None:
    subscription = _live(3)
    subscription.offer(9, "m9")
    subscription.offer(10, "m10")
    assert subscription.reset() == 10
    assert _state(subscription) is State.LIVE
    assert subscription.offer(11, "m11") is Verdict.DELIVER
