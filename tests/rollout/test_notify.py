"""Notifications: which events an `up` produces, and delivery to a local receiver that fails on demand."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError
from urllib3.exceptions import LocationParseError

from rollout.core.record import ExperimentRecord
from rollout.notify import Event, Webhook, deliver, events
from testbed.webhooks import SlowDripReceiver, WebhookReceiver
from tests.rollout.factories import seed_experiment


def rec(stage: str = "Running", iteration: int = 1, history: list[dict[str, Any]] | None = None,
        promoted: str | None = None, messages: tuple[str, ...] = ("Iteration 1: winner iris-v2",),
        weights: dict[str, int] | None = None, name: str = "iris-ab", started: float = 0.0) -> ExperimentRecord:
    return ExperimentRecord.from_outputs({
        "spec": seed_experiment(name=name), "stage": stage, "iteration": iteration, "promoted": promoted,
        "winner": None, "weights": weights or {"iris-v1": 90, "iris-v2": 10}, "startedAt": started,
        "lastIterationAt": 1000.0 + iteration, "messages": list(messages), "history": history or []})


def held_key() -> str:
    return Event("held", "no data", rec()).key


def stem(key: str) -> str:
    """The key without the reason's digest."""
    return key.rsplit("/", 1)[0]


def kinds(found: list[Event]) -> list[str]:
    return [e.kind for e in found]


def test_a_new_experiment_is_announced() -> None:
    assert kinds(events(None, rec(iteration=0, messages=("Started; first iteration after 10s",)))) == ["started"]


def test_a_new_experiment_with_a_leftover_control_is_announced_with_the_control_not_applied() -> None:
    ignored = {"time": 5.0, "reason": "Control promote iris-v2 not applied: it was set before this experiment started",
               "control": {"action": "promote", "summary": "promote iris-v2"}}
    found = events(None, rec(iteration=0, history=[ignored]))
    assert kinds(found) == ["started", "control"] and "not applied" in found[1].reason


def test_a_renamed_experiment_is_a_new_one() -> None:
    old = rec(history=[{"time": 1.0}], started=10.0)
    renamed = rec(iteration=0, history=[], name="iris-ab-2", started=20.0)
    assert kinds(events(old, renamed)) == ["started"]
    restarted = rec(iteration=0, history=[], started=20.0)  # same name, replaced: a new start
    assert kinds(events(old, restarted)) == ["started"]


def test_an_unreadable_stored_record_is_told_as_failed_not_started() -> None:
    message = "Failed: stored experiment state: weights: must be a mapping; all traffic back to iris-v1. ..."
    abandoned = rec(stage="Failed", iteration=0, messages=(message,),
                    history=[{"time": 30.0, "held": True, "reason": message}], started=30.0)
    assert kinds(events(rec(started=10.0), abandoned)) == ["held", "failed"]


def test_one_decision_has_one_key_and_the_key_tells_decisions_apart() -> None:
    old = rec(history=[{"time": 1.0}], started=0.5)
    pause = {"time": 2.0, "reason": "Paused by control", "control": {"action": "pause", "summary": "pause"}}
    resume = {"time": 3.0, "reason": "Resumed by control", "control": {"action": "resume", "summary": "resume"}}
    paused = rec(stage="Paused", history=[{"time": 1.0}, pause], started=0.5)
    resumed = rec(history=[{"time": 1.0}, pause, resume], started=0.5)
    first, again = events(old, paused), events(old, paused)
    assert [e.key for e in first] == [e.key for e in again]
    assert [stem(e.key) for e in first] == ["iris-ab/500/1/control/2000"]
    assert [stem(e.key) for e in events(paused, resumed)] == ["iris-ab/500/1/control/3000"]  # same iteration, kind
    # Two decisions in the same millisecond (two `up`s, two controls) still have two keys.
    again_paused = rec(stage="Paused", history=[{"time": 1.0}, pause, {**pause, "reason": "Paused (again) by control"}],
                       started=0.5)
    assert len({e.key for e in [*first, *events(paused, again_paused)]}) == 2


def test_the_payload_says_what_was_decided_and_what_was_applied() -> None:
    event = Event("promoted", "iris-v2 promoted", rec(stage="Completed", promoted="iris-v2",
                                                      weights={"iris-v1": 0, "iris-v2": 100}), at=2.0)
    generic = event.payload("generic", {"weights": {"iris-v2": 100}})
    assert stem(generic["key"]) == "iris-ab/0/1/promoted/2000" and generic["key"] == event.key
    assert generic["decided"] == {"stage": "Completed", "weights": {"iris-v1": 0, "iris-v2": 100},
                                  "winner": None, "promoted": "iris-v2"}
    assert generic["applied"] == {"weights": {"iris-v2": 100}}
    assert event.payload("generic")["applied"] == {"weights": None}  # nothing known to be applied: said so
    assert event.payload("slack", {"weights": {"iris-v2": 100}})["text"].endswith("; applied: iris-v2 100%)")


def test_an_ordinary_iteration_is_not_news() -> None:
    old = rec(history=[{"time": 1.0, "held": False}])
    new = rec(iteration=2, history=[{"time": 1.0, "held": False}, {"time": 2.0, "held": False}])
    assert events(old, new) == []
    assert events(new, new) == []  # an `up` inside the interval: nothing happened


def test_a_hold_names_its_reason() -> None:
    old = rec(history=[{"time": 1.0, "held": False}])
    held = {"time": 2.0, "held": True, "reason": "Held weights (1/4 before rollback): mean-latency for baseline"}
    found = events(old, rec(history=[{"time": 1.0, "held": False}, held]))
    assert kinds(found) == ["held"]
    assert found[0].reason.startswith("Held weights (1/4")


def test_rollback_then_promotion_of_the_baseline() -> None:
    old = rec(history=[{"time": 1.0}])
    new = rec(stage="Failed", iteration=2, history=[{"time": 1.0}, {"time": 2.0, "held": False}],
              messages=("Rolled back to iris-v1: iris-v2 broke error-rate <= 0.01",),
              weights={"iris-v1": 100, "iris-v2": 0})
    found = events(old, new)
    assert kinds(found) == ["rolled-back"]
    assert "iris-v2 broke error-rate" in found[0].reason


def test_completion_and_promotion() -> None:
    old = rec(iteration=9, history=[{"time": 1.0}])
    new = rec(stage="Completed", iteration=10, promoted="iris-v2", history=[{"time": 1.0}, {"time": 2.0}],
              messages=("Completed after 10 iterations; promoted iris-v2 (winner iris-v2)",))
    assert kinds(events(old, new)) == ["completed", "promoted"]


def test_failed_for_lack_of_data_is_not_called_a_rollback() -> None:
    new = rec(stage="Failed", history=[{"time": 2.0, "held": True, "reason": "Failed after 4 ..."}],
              messages=("Failed after 4 iterations in a row without usable data; ...",))
    assert kinds(events(rec(), new)) == ["held", "failed"]


def test_payload_formats() -> None:
    event = Event("promoted", "iris-v2 promoted", rec(stage="Completed", promoted="iris-v2",
                                                      weights={"iris-v1": 0, "iris-v2": 100}))
    generic = event.payload("generic")
    assert generic["event"] == "promoted" and generic["experiment"] == "iris-ab"
    assert generic["weights"] == {"iris-v1": 0, "iris-v2": 100} and generic["promoted"] == "iris-v2"
    assert event.payload("slack") == {
        "text": "[iris-ab] promoted: iris-v2 promoted (stage Completed, iteration 1, iris-v1 0%, iris-v2 100%)"}


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


@pytest.fixture
def fresh(receiver: WebhookReceiver) -> WebhookReceiver:
    receiver.reset()
    return receiver


def test_each_event_reaches_each_webhook_once(fresh: WebhookReceiver) -> None:
    found = [Event("completed", "done", rec(stage="Completed")), Event("promoted", "iris-v2 promoted", rec())]
    results = deliver(found, [Webhook(fresh.url, "generic"), Webhook(fresh.url, "slack")])
    assert [(r["event"], r["hook"], r["ok"], r.get("status")) for r in results] == [
        ("completed", 0, True, 200), ("completed", 1, True, 200),
        ("promoted", 0, True, 200), ("promoted", 1, True, 200)]
    assert [m.get("event", m.get("text", "")[:20]) for m in fresh.received] == [
        "completed", "[iris-ab] completed:", "promoted", "[iris-ab] promoted: "]


def test_a_failing_receiver_is_recorded_once_without_raising(fresh: WebhookReceiver) -> None:
    fresh.status = 503
    results = deliver([Event("held", "no data", rec())], [Webhook(fresh.url)])
    assert results == [{"event": "held", "key": held_key(), "hook": 0, "ok": False, "status": 503,
                        "error": "HTTP 503"}]
    assert len(fresh.received) == 1  # one attempt, no retry


def test_a_slow_receiver_times_out_quickly(fresh: WebhookReceiver) -> None:
    fresh.delay = 1.0
    started = time.monotonic()
    results = deliver([Event("held", "no data", rec())], [Webhook(fresh.url)], timeout=0.2)
    assert results[0]["ok"] is False and results[0]["error"] == "no answer within 0.2s"
    assert time.monotonic() - started < 1.0


def test_an_unreachable_receiver_never_shows_its_url() -> None:
    secret_url = "http://user:hunter2@127.0.0.1:9/hook?token=hunter2"
    results = deliver([Event("held", "no data", rec())], [Webhook(secret_url)], timeout=0.5)
    assert results[0]["ok"] is False
    assert "hunter2" not in json.dumps(results) and "127.0.0.1" not in json.dumps(results)


def test_nothing_to_send_sends_nothing(fresh: WebhookReceiver) -> None:
    assert deliver([], [Webhook(fresh.url)]) == []
    assert fresh.received == []


def test_a_control_is_one_event_and_its_promotion_another() -> None:
    old = rec(history=[{"time": 1.0}])
    entry = {"time": 2.0, "reason": "Promoted iris-v2 by control",
             "control": {"action": "promote", "version": "iris-v2", "summary": "promote iris-v2 (approved)"}}
    new = rec(stage="Completed", promoted="iris-v2", history=[{"time": 1.0}, entry])
    found = events(old, new)
    assert kinds(found) == ["control", "promoted"]
    assert found[0].reason == "promote iris-v2 (approved): Promoted iris-v2 by control"


def test_an_ignored_control_in_the_same_up_as_an_iteration_is_told_too() -> None:
    ignored = {"time": 2.0, "reason": "Control resume not applied: the experiment is Running, not Paused",
               "control": {"action": "resume", "summary": "resume"}}
    held = {"time": 2.0, "held": True, "reason": "Held: request-count for iris-v1: no data"}
    found = events(rec(history=[{"time": 1.0}]), rec(history=[{"time": 1.0}, ignored, held]))
    assert kinds(found) == ["control", "held"]
    assert found[0].reason.startswith("resume: Control resume not applied")


def test_a_freeze_is_one_event() -> None:
    frozen = {"time": 2.0, "held": True, "frozen": True, "reason": "Frozen: iris-v2 broke error-rate <= 0.01; ..."}
    found = events(rec(history=[{"time": 1.0}]), rec(stage="Paused", history=[{"time": 1.0}, frozen]))
    assert kinds(found) == ["frozen"] and found[0].reason.startswith("Frozen: iris-v2 broke")


def test_a_slow_drip_receiver_is_cut_off_at_the_deadline() -> None:
    """One byte every 0.5 s passes any per-read timeout; the delivery's deadline covers all of it."""
    with SlowDripReceiver(interval=0.5) as drip:
        started = time.monotonic()
        results = deliver([Event("held", "no data", rec())], [Webhook(drip.url)], timeout=1.0)
        took = time.monotonic() - started
    assert drip.posts == 1
    assert results == [{"event": "held", "key": held_key(), "hook": 0, "ok": False,
                        "error": "no answer within 1s"}]
    assert took < 1.5


@pytest.mark.parametrize("url", ["https://hooks..example.com/T000/B000/sekrit", "https://hooks.example.com:99999/sekrit",
                                 "http://[::1/sekrit", "ftp://hooks.example.com/sekrit",
                                 "https://" + "h" * 64 + ".example.com/sekrit", "hooks.example.com/sekrit"])
def test_a_url_the_client_cannot_use_is_refused_at_config_time_without_quoting_it(url: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Webhook(url)
    text = str(refused.value.errors()[0]["msg"])
    assert "not shown: it is secret" in text
    assert "sekrit" not in text and "example" not in text and "hhhh" not in text and "::1" not in text


class Exploding:
    """A session whose post raises what urllib3 raises for a host it cannot encode (it quotes the host)."""

    def post(self, url: str, **_: Any) -> None:
        raise LocationParseError(f"'{url}', label empty or too long")


def test_any_exception_in_a_delivery_is_a_failed_delivery_never_raised() -> None:
    hook = Webhook("https://hooks.example.com/T000/B000/sekrit")
    results = deliver([Event("held", "no data", rec())], [hook], session=Exploding())  # type: ignore[arg-type]
    assert results == [{"event": "held", "key": held_key(), "hook": 0, "ok": False,
                        "error": "not delivered (LocationParseError)"}]
