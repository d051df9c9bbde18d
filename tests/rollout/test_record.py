"""The experiment record's history as an audit: what was asked of Prometheus for each value, the retries,
the weights written; and its size for the seed, from real queries against the test Prometheus."""

from __future__ import annotations

import json
from dataclasses import replace

import requests

from rollout.core.audit import shared_query
from rollout.core.outcomes import Observed, Snapshot
from rollout.core.state import COMPLETED
from rollout.core.templating import render
from rollout.engine import iterate, start
from rollout.metrics.collect import collect_snapshot
from rollout.provider import record_outputs
from testbed.prometheus import SessionPrometheus
from tests.rollout.factories import healthy, seed_experiment, seed_spec, snapshot

V1, V2 = "iris-v1", "iris-v2"
RECORD_BUDGET = 32 * 1024
"""Bytes of the seed's whole record (compact JSON) after its ten iterations."""


def seed_run(prometheus: SessionPrometheus, algorithm: str) -> tuple[dict[str, object], list[Snapshot]]:
    """The seed's ten iterations on real answers (the test Prometheus's baseline and candidate data)."""
    experiment = seed_experiment(algorithm=algorithm)
    experiment["versions"][1]["variables"]["ns"] = "ns-candidate"
    spec = seed_spec(algorithm=algorithm)
    started = prometheus.query_time - 1200.0
    state, snapshots = start(spec, started), []
    with requests.Session() as session:
        client = prometheus.client(session)
        for i in range(10):
            now = prometheus.query_time - 100.0 + 10 * i
            snapshots.append(collect_snapshot(spec, client, started, now))
            state = iterate(spec, snapshots[-1], state, now)
    assert state.stage == COMPLETED, state.messages
    return record_outputs(experiment, {"url": prometheus.url, "timeoutSeconds": 10}, spec, state), snapshots


def test_each_entry_keeps_the_query_behind_every_value_and_the_record_stays_small(
        prometheus: SessionPrometheus) -> None:
    for algorithm in ("iter8-v2", "sequential"):
        spec = seed_spec(algorithm=algorithm)  # under sequential, with the p95's slow count
        record, snapshots = seed_run(prometheus, algorithm)
        history = record["history"]
        assert isinstance(history, list) and len(history) == 10
        for entry, snap in zip(history, snapshots, strict=True):
            assert "evidence" not in entry  # the algorithm's state lives in the record's `evidence` only
            # The metrics the decision read (error-count is no input of the seed's decision; the p95's slow count
            # under sequential is in the record's last `values`, left out of the entries for the record's size).
            slow = {t.slow_count for t in spec.sequential.quantile_tests}
            assert set(entry["queries"]) == set(entry["values"]) == {m.name for m in spec.metrics} - {"error-count",
                                                                                                       *slow}
            for (metric, version), outcome in snap.items():
                if metric == "error-count" or metric in slow:
                    continue
                shared = entry["queries"][metric]
                assert isinstance(shared, str)  # one string for all versions: `${ns}` etc. per version
                assert render(shared, spec.versions[[v.name for v in spec.versions].index(version)].variable_map()) \
                    == outcome.query, (metric, version)
                assert entry["values"][metric][version] == (outcome.value if isinstance(outcome, Observed) else None)
        size = len(json.dumps(record, separators=(",", ":")))
        assert size < RECORD_BUDGET, f"{algorithm}: the seed's record is {size} bytes"


def test_a_query_that_the_shared_form_does_not_give_back_is_kept_per_version() -> None:
    spec = seed_spec()
    variables = {v.name: v.variable_map() for v in spec.versions}

    def shared(metric: str) -> str:
        return shared_query(spec.metric(metric).query, ["ns", "predictor", "sid"], 10)

    data = {(m, v): replace(o, query="some other query" if (m, v) == ("mean-latency", V2)
                            else render(shared(m), variables[v]))
            for (m, v), o in snapshot(**{V1: healthy(7), V2: healthy(10)}).items()}
    entry = iterate(spec, data, start(spec, 0.0), 10.0).history[-1]
    assert entry["queries"]["error-rate"] == shared("error-rate")
    assert entry["queries"]["mean-latency"] == {V1: render(shared("mean-latency"), variables[V1]),
                                                V2: "some other query"}


def test_retries_are_counted_per_value_and_absent_when_there_were_none() -> None:
    spec = seed_spec()
    clean = snapshot(**{V1: healthy(7), V2: healthy(10)})
    assert "retries" not in iterate(spec, clean, start(spec, 0.0), 10.0).history[-1]
    retried = {k: replace(o, retries=2) if k[0] == "error-rate" else o for k, o in clean.items()}
    entry = iterate(spec, retried, start(spec, 0.0), 10.0).history[-1]
    assert entry["retries"] == {"error-rate": {V1: 2, V2: 2}}


def test_unmet_objectives_are_listed_only_for_the_versions_that_missed_them() -> None:
    spec = seed_spec(objectives=[{"metric": "mean-latency", "upperLimit": 2000, "rollbackOnFailure": False}])
    entry = iterate(spec, snapshot(**{V1: healthy(7), V2: healthy(10, latency=2500)}), start(spec, 0.0), 10.0).history[-1]
    assert entry["unmet"] == {V2: ["mean-latency <= 2000"]}
