"""An experiment's whole life, as a user lives it: sequences of `pulumi up` at random times, controls (every
action, repeated, stale), config edits (rename, a limit changed, the interval changed), Prometheus answers
(normal, empty, failing) and `up`s killed before their checkpoint, driven through the provider's own
create / diff / update in process (hypothesis' RuleBasedStateMachine; Prometheus replaced by a scripted
snapshot, the clock by the machine's). After every step:

- nothing is promoted except by this experiment's own control or by the algorithm's decision;
- weights are whole numbers that sum to 100 over the experiment's versions;
- an `up` adds at most one iteration, and a killed `up` adds none (only checkpointed state counts);
- history is append-only within an experiment;
- stored state never crashes diff or update;
- notifications (the Notifier, run after the experiment when the routing applied it; its `up` can fail
  before it, or be killed after sending): every event claims a state the engine checkpointed, one key
  always carries the same message, and a key arrives twice only after an `up` killed after sending.

`SELDON_ROLLOUT_LIFECYCLE_EXAMPLES` sets how many sequences run (the suite runs a bounded number; the
closing note of issue 17 gives the long run's figures).
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from rollout.core.outcomes import Failed, NoData, Outcome, Snapshot
from rollout.metrics.scrape import Cadence
from rollout.notifier import NotifierProvider
from rollout.notify import Event
from rollout.provider import ExperimentProvider
from tests.rollout.factories import healthy, seed_experiment, snapshot

V1, V2 = "iris-v1", "iris-v2"
PROMETHEUS = {"url": "http://127.0.0.1:9", "timeoutSeconds": 5}
EXAMPLES = int(os.environ.get("SELDON_ROLLOUT_LIFECYCLE_EXAMPLES", "40"))
STEPS: Counter[str] = Counter()
"""What the runs did (steps, ups, stages reached), for the long run's report."""


class _Client:
    """Stands in for PrometheusClient in create's preflight (the snapshot is scripted separately)."""

    def __init__(self, *_: Any, **__: Any) -> None:
        pass

    def __enter__(self) -> _Client:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def preflight(self) -> str:
        return "3.0.0"


def answers(mode: str) -> Snapshot:
    if mode in ("empty", "failing"):
        missing: dict[str, Outcome] = {m: NoData("empty result") if mode == "empty" else Failed("HTTP 503")
                                       for m in healthy(1)}
        return snapshot(**{V1: missing, V2: missing})
    if mode == "candidate-breaks":
        return snapshot(**{V1: healthy(10.0), V2: healthy(20.0, error_rate=0.5)})
    return snapshot(**{V1: healthy(10.0), V2: healthy(20.0 if mode == "candidate-better" else 5.0)})


class Lifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.provider = ExperimentProvider()
        self.clock = 1_000_000.0
        self.names = 0
        self.interval = 10
        self.limit = 0.01
        self.mode = "candidate-better"
        self.control: dict[str, Any] = {}
        self.control_set_at: float | None = None
        self.olds: dict[str, Any] | None = None
        """The checkpointed outputs: what the next `up` reads."""
        self.started_at: float | None = None
        self.notifier = NotifierProvider()
        self.notifier_olds: dict[str, Any] | None = None
        self.routing_fails = False
        self.checkpointed: list[dict[str, Any]] = []
        """Every record the engine checkpointed (what a notification may claim)."""
        self.received: dict[str, dict[str, Any]] = {}
        """Key -> the message received with it."""
        self.repeats_allowed = 0

    # -- the inputs the program would compute --------------------------------------------------------
    def news(self) -> dict[str, Any]:
        objectives = [{"metric": "mean-latency", "upperLimit": 2000},
                      {"metric": "95th-percentile-tail-latency", "upperLimit": 5000},
                      {"metric": "error-rate", "upperLimit": str(self.limit)}]  # the seed's, the last one edited
        experiment = seed_experiment(name=f"exp-{self.names}", intervalSeconds=self.interval, iterationsPerLoop=6,
                                     objectives=objectives)
        return {"experiment": experiment, "prometheus": PROMETHEUS, "control": dict(self.control)}

    def up(self, killed: bool) -> None:
        news = self.news()
        before = self.olds
        with mock.patch("rollout.provider.time.time", lambda: self.clock), \
                mock.patch("rollout.provider.PrometheusClient", _Client), \
                mock.patch("rollout.provider.check_cadence", lambda *_: Cadence(None, "not checked")), \
                mock.patch("rollout.provider.collect_snapshot", lambda *_a, **_k: answers(self.mode)):
            if before is None:
                outs = self.provider.create(news).outs
                fresh = True
            else:
                diff = self.provider.diff("e", before, news)
                if not diff.changes:
                    return
                fresh = bool(diff.replaces)
                outs = (self.provider.create(news) if fresh else self.provider.update("e", before, news)).outs
        assert outs is not None
        self.check_step(before, outs, fresh)
        STEPS["ups killed" if killed else "ups"] += 1
        if outs.get("promoted") and not (before or {}).get("promoted") and not fresh:
            STEPS["promotions"] += 1
        if not killed:
            self.olds = outs
            self.checkpointed.append(outs)
            if fresh:
                self.started_at = outs["startedAt"]
            if not self.routing_fails:
                self.notify(killed_after_sending=False)

    def notify(self, killed_after_sending: bool) -> None:
        """The Notifier's step of the same `up`, as Pulumi runs it: after the routing applied the decision."""
        assert self.olds is not None
        props = {"record": self.olds, "applied": {"weights": self.olds["weights"]}, "webhooks": [{"url": "x"}]}
        sent: list[tuple[str, dict[str, Any]]] = []

        def deliver(found: list[Event], _hooks: Any, applied: Any = None) -> list[dict[str, Any]]:
            sent.extend((e.key, e.payload("generic", applied)) for e in found)
            return [{"event": e.kind, "key": e.key, "hook": 0, "ok": True} for e in found]

        with mock.patch("rollout.notifier.deliver", deliver):
            if self.notifier_olds is None:
                outs = self.notifier.create(props).outs
            elif self.notifier.diff("n", self.notifier_olds, props).changes:
                outs = self.notifier.update("n", self.notifier_olds, props).outs
            else:
                outs = self.notifier_olds
        claims = [{k: r.get(k) for k in ("stage", "weights", "winner", "promoted")} for r in self.checkpointed]
        for key, message in sent:
            assert message["decided"] in claims, (key, message["decided"])
            if key in self.received:
                assert message == self.received[key], key  # one key, one message
                assert self.repeats_allowed > 0, f"{key} told twice"
                self.repeats_allowed -= 1
            self.received[key] = message
        STEPS["notifications"] += len(sent)
        if killed_after_sending:
            self.repeats_allowed += len(sent)  # the next `up` sends them again, with the same keys
        else:
            self.notifier_olds = outs

    def check_step(self, before: dict[str, Any] | None, after: dict[str, Any], fresh: bool) -> None:
        weights = {k: v for k, v in after["weights"].items()}
        assert set(weights) == {V1, V2} and all(float(w).is_integer() and w >= 0 for w in weights.values())
        assert sum(weights.values()) == 100
        if fresh or before is None:
            assert after["iteration"] == 0 and not after.get("promoted")
            if self.control:  # whatever the stack file holds, a new experiment starts clean
                assert after["stage"] == "Running", after["messages"]
            return
        assert after["iteration"] - before["iteration"] in (0, 1)
        old_history, new_history = before.get("history") or [], after.get("history") or []
        # Append-only: the new history is the old one (its oldest entries trimmed at historyLimit) plus at
        # most two new entries (a control, then an iteration).
        assert any(0 <= len(new_history) - added <= len(old_history)
                   and new_history[:len(new_history) - added] == old_history[len(old_history) - len(new_history) + added:]
                   for added in (0, 1, 2)), (old_history[-3:], new_history[-3:])
        if after.get("promoted") and not before.get("promoted"):
            entry = new_history[-1]
            by_control = (entry.get("control") or {}).get("action") == "promote"
            if by_control:  # this experiment's own control, set while it ran
                assert self.control_set_at is not None and self.started_at is not None
                assert self.control_set_at >= self.started_at
                assert after["promoted"] == self.control.get("version")
            else:  # the algorithm's decision: the budget is spent
                assert after["stage"] == "Completed" and after["iteration"] == 6

    # -- rules ------------------------------------------------------------------------------------------
    @initialize()
    def create(self) -> None:
        self.up(killed=False)

    @rule(seconds=st.sampled_from([0.0, 3.0, 10.0, 11.0, 25.0, 300.0]))
    def pulumi_up(self, seconds: float) -> None:
        self.clock += seconds
        self.up(killed=False)

    @rule(seconds=st.sampled_from([0.0, 11.0]))
    def up_killed_before_its_checkpoint(self, seconds: float) -> None:
        self.clock += seconds
        self.up(killed=True)

    @rule(action=st.sampled_from(["pause", "resume", "abort", "promote"]),
          version=st.sampled_from([V1, V2, "iris-v9"]), reason=st.sampled_from(["", "r1", "r2"]))
    def set_control(self, action: str, version: str, reason: str) -> None:
        self.control = {"action": action, "reason": reason, **({"version": version} if action == "promote" else {})}
        self.control_set_at = self.clock

    @rule(fails=st.booleans())
    def routing_update_fails(self, fails: bool) -> None:
        """The VirtualService's update fails (or works again): Pulumi then skips the Notifier."""
        self.routing_fails = fails

    @rule()
    def notifier_killed_after_sending(self) -> None:
        if self.olds is not None and not self.routing_fails:
            self.notify(killed_after_sending=True)

    @rule()
    def clear_control(self) -> None:
        self.control, self.control_set_at = {}, None

    @rule()
    def rename_the_experiment(self) -> None:
        self.names += 1

    @rule(limit=st.sampled_from([0.01, 0.02]), interval=st.sampled_from([10, 20]))
    def edit_the_config(self, limit: float, interval: int) -> None:
        self.limit, self.interval = limit, interval

    @rule(mode=st.sampled_from(["candidate-better", "candidate-worse", "candidate-breaks", "empty", "failing"]))
    def prometheus_answers(self, mode: str) -> None:
        self.mode = mode

    @invariant()
    def the_stored_state_reads_back(self) -> None:
        STEPS["steps"] += 1
        if self.olds is not None:
            self.provider.diff("e", self.olds, self.news())  # never raises


Lifecycle.TestCase.settings = settings(max_examples=EXAMPLES, stateful_step_count=30, deadline=None,
                                       suppress_health_check=[HealthCheck.too_slow])
test_the_lifecycle_keeps_its_invariants = Lifecycle.TestCase


def teardown_module() -> None:
    """What the sequences did, for the long run's figures (seen with `pytest -s`)."""
    print(f"\nlifecycle: {dict(sorted(STEPS.items()))}")
