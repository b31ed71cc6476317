"""The in-process event bus: typed, synchronous, in order, and robust to a failing subscriber."""

from __future__ import annotations

import logging

import pytest

from backend.events import EVENT_TYPES, CredentialAdded, EventBus, LogLineWritten, SsoRotated


def test_subscribers_get_their_type_only_in_subscription_order() -> None:
    bus = EventBus()
    seen: list[tuple[str, object]] = []
    bus.subscribe(SsoRotated, lambda e: seen.append(("first", e)))
    bus.subscribe(SsoRotated, lambda e: seen.append(("second", e)))
    bus.subscribe(CredentialAdded, lambda e: seen.append(("credential", e)))
    event = SsoRotated("c1")
    bus.publish(event)
    assert seen == [("first", event), ("second", event)]


def test_a_failing_subscriber_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    seen: list[SsoRotated] = []

    def broken(event: SsoRotated) -> None:
        raise RuntimeError("subscriber bug")

    bus.subscribe(SsoRotated, broken)
    bus.subscribe(SsoRotated, seen.append)
    with caplog.at_level(logging.ERROR, logger="backend.events"):
        bus.publish(SsoRotated("c1"))  # does not raise: the change is already committed
    assert seen == [SsoRotated("c1")]
    assert "SsoRotated" in caplog.text and "subscriber bug" in caplog.text


def test_publishing_without_subscribers_is_a_no_op() -> None:
    EventBus().publish(SsoRotated("c1"))


def test_events_are_values_that_keep_secrets_out_of_their_repr() -> None:
    added = CredentialAdded("c1", "user", b"s3cret", True, True, True)
    line = LogLineWritten("c1", 1, "t", "cachier", "m", "app-x", "https://u:pw@drain.example/x")
    assert "s3cret" not in repr(added) and "pw@" not in repr(line)
    with pytest.raises(AttributeError):
        added.write = False  # type: ignore[misc]
    assert len(set(EVENT_TYPES)) == len(EVENT_TYPES) == 12  # KeyTrackingRequested too
