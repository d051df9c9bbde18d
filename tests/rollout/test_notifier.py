"""The Notifier resource: decisions told once they stand, each with its key, to a real local receiver."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from rollout.notifier import NotifierProvider
from testbed.webhooks import WebhookReceiver
from tests.rollout.factories import seed_experiment

APPLIED = {"weights": {"iris-v1": 95, "iris-v2": 5}}


def record(iteration: int = 0, history: list[dict[str, Any]] | None = None, stage: str = "Running",
           name: str = "iris-ab", started: float = 100.0, promoted: str | None = None,
           weights: dict[str, int] | None = None) -> dict[str, Any]:
    return {"name": name, "spec": seed_experiment(name=name), "stage": stage, "startedAt": started,
            "lastIterationAt": started + 10 * iteration, "iteration": iteration,
            "weights": weights or {"iris-v1": 100 - 5 * iteration, "iris-v2": 5 * iteration}, "winner": None,
            "promoted": promoted, "history": history or [], "messages": [f"Iteration {iteration}"],
            "evidence": {"big": "not told"}}


def stem(key: str) -> str:
    """The key without the reason's digest."""
    return key.rsplit("/", 1)[0]


def held(at: float) -> dict[str, Any]:
    return {"time": at, "held": True, "reason": f"Held: no data at {at:g}"}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


def created(notifier: NotifierProvider, given: dict[str, Any]) -> dict[str, Any]:
    outs = notifier.create(given).outs
    assert outs is not None
    return outs


def updated(notifier: NotifierProvider, olds: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    outs = notifier.update("n", olds, given).outs
    assert outs is not None
    return outs


def props(receiver: WebhookReceiver, rec: dict[str, Any], applied: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"record": rec, "applied": applied or APPLIED, "webhooks": [{"url": receiver.url, "format": "generic"}]}


def test_a_new_experiment_is_told_once_and_an_unchanged_one_is_not_updated(receiver: WebhookReceiver) -> None:
    notifier = NotifierProvider()
    outs = created(notifier, props(receiver, record()))
    assert [m["event"] for m in receiver.received] == ["started"]
    assert [stem(k) for k in outs["sent"]] == ["iris-ab/100000/0/started/100000"] and "evidence" not in outs["told"]
    assert notifier.diff("n", outs, props(receiver, record())).changes is False


def test_an_experiment_under_way_when_notifications_are_set_is_not_announced_again(
        receiver: WebhookReceiver) -> None:
    outs = created(NotifierProvider(), props(receiver, record(iteration=4)))
    assert receiver.received == [] and outs["deliveries"] == []


def test_each_decision_is_told_with_what_was_applied(receiver: WebhookReceiver) -> None:
    notifier = NotifierProvider()
    outs = created(notifier, props(receiver, record()))
    after = record(iteration=0, history=[held(110.0)])
    assert notifier.diff("n", outs, props(receiver, after)).changes is True
    outs = updated(notifier, outs, props(receiver, after))
    message = receiver.received[-1]
    assert message["event"] == "held" and stem(message["key"]) == "iris-ab/100000/0/held/110000"
    assert message["applied"] == {"weights": APPLIED["weights"]} and message["decided"]["stage"] == "Running"
    assert [stem(k) for k in outs["sent"]] == ["iris-ab/100000/0/started/100000", "iris-ab/100000/0/held/110000"]


def test_an_up_killed_after_sending_sends_the_same_keys_again(receiver: WebhookReceiver) -> None:
    notifier = NotifierProvider()
    checkpointed = created(notifier, props(receiver, record()))
    after = record(iteration=1, history=[held(110.0), held(120.0)])
    updated(notifier, checkpointed, props(receiver, after))  # sent, then killed: its outputs are lost
    updated(notifier, checkpointed, props(receiver, after))  # the next `up` tells again
    keys = [m["key"] for m in receiver.received[1:]]
    assert keys[:2] == keys[2:] and [stem(k) for k in keys[:2]] == ["iris-ab/100000/1/held/110000",
                                                                    "iris-ab/100000/1/held/120000"]
    assert len(set(keys)) == 2  # a receiver that drops a key it saw gets each decision once


def test_ups_whose_routing_failed_are_told_at_the_next_up_that_applies_them(receiver: WebhookReceiver) -> None:
    """When the VirtualService's update fails, Pulumi skips the Notifier: the next `up` tells both decisions."""
    notifier = NotifierProvider()
    outs = created(notifier, props(receiver, record()))
    pause = {"time": 110.0, "reason": "Paused by control", "control": {"action": "pause", "summary": "pause"}}
    resume = {"time": 120.0, "reason": "Resumed by control", "control": {"action": "resume", "summary": "resume"}}
    notifier.update("n", outs, props(receiver, record(history=[pause, resume])))
    assert [(m["event"], m["reason"]) for m in receiver.received[1:]] == [
        ("control", "pause: Paused by control"), ("control", "resume: Resumed by control")]


def test_a_renamed_experiment_is_announced_and_its_keys_start_afresh(receiver: WebhookReceiver) -> None:
    notifier = NotifierProvider()
    outs = created(notifier, props(receiver, record()))
    outs = updated(notifier, outs, props(receiver, record(name="iris-ab-2", started=200.0)))
    assert [m["event"] for m in receiver.received] == ["started", "started"]
    assert [stem(k) for k in outs["sent"]] == ["iris-ab-2/200000/0/started/200000"]


def test_a_failed_delivery_is_recorded_not_retried_and_never_raised(receiver: WebhookReceiver) -> None:
    receiver.status = 503
    notifier = NotifierProvider()
    outs = created(notifier, props(receiver, record()))
    assert [(d["event"], d["ok"], d.get("error")) for d in outs["deliveries"]] == [("started", False, "HTTP 503")]
    assert [stem(k) for k in outs["sent"]] == []
    receiver.status = 200
    outs = updated(notifier, outs, props(receiver, record(history=[held(110.0)])))
    assert [m["event"] for m in receiver.received] == ["started", "held"]


def test_unknown_inputs_in_a_preview_are_a_change_and_send_nothing(receiver: WebhookReceiver) -> None:
    from pulumi.runtime import rpc

    notifier = NotifierProvider()
    outs = created(notifier, props(receiver, record()))
    assert notifier.diff("n", outs, {**props(receiver, record()), "record": rpc.UNKNOWN}).changes is True
    assert len(receiver.received) == 1


def test_a_stored_state_of_any_shape_never_raises(receiver: WebhookReceiver) -> None:
    notifier = NotifierProvider()
    for olds in ({}, {"told": "garbage", "sent": "x"}, {"told": {"history": 3}, "sent": [1, None]}):
        notifier.diff("n", olds, props(receiver, record()))
        outs = updated(notifier, olds, props(receiver, record(history=[held(110.0)])))
        assert outs["told"]["iteration"] == 0
