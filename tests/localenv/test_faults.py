from __future__ import annotations

import pytest

from localenv.faults import BadFaults, Fault, Faults, parse_faults


def test_parse_sets_and_clears() -> None:
    assert parse_faults({"ns-candidate": {"errorRate": 0.05, "extraLatencyMs": 20}, "ns-baseline": None}) == {
        "ns-candidate": Fault(0.05, 20.0), "ns-baseline": None}
    assert parse_faults({"ns-candidate": {"errorRate": 1}}) == {"ns-candidate": Fault(1.0, 0.0)}


@pytest.mark.parametrize("document", [[], {"ns": {"errorRate": 1.5}}, {"ns": {"errorRate": -0.1}},
                                      {"ns": {"extraLatencyMs": -1}}, {"ns": {"errorRate": "0.1"}},
                                      {"ns": {"errorRate": True}}, {"ns": {"rate": 0.1}}, {"ns": 0.1},
                                      {"ns": {"errorRate": float("nan")}}])
def test_bad_documents_are_refused(document: object) -> None:
    with pytest.raises(BadFaults):
        parse_faults(document)


@pytest.mark.parametrize(("rate", "calls", "errors"), [(0.05, 100, 5), (0.05, 19, 0), (0.05, 20, 1), (0.5, 10, 5),
                                                       (1.0, 7, 7), (0.0, 50, 0), (0.29, 100, 29), (0.1, 30, 3)])
def test_errors_are_exactly_the_rate(rate: float, calls: int, errors: int) -> None:
    faults = Faults()
    faults.update({"ns": Fault(rate, 0)})
    assert sum(faults.next_prediction("ns")[0] for _ in range(calls)) == errors


def test_the_twentieth_of_every_twenty_fails_at_five_percent() -> None:
    faults = Faults()
    faults.update({"ns": Fault(0.05, 0)})
    failed = [n for n in range(1, 61) if faults.next_prediction("ns")[0]]
    assert failed == [20, 40, 60]


def test_latency_only_where_set_and_clear() -> None:
    faults = Faults()
    faults.update({"ns-candidate": Fault(0, 250)})
    assert faults.next_prediction("ns-candidate") == (False, 0.25)
    assert faults.next_prediction("ns-baseline") == (False, 0.0)
    faults.update({"ns-candidate": None})
    assert faults.next_prediction("ns-candidate") == (False, 0.0)
    faults.update({"a": Fault(1, 0)})
    faults.clear()
    assert faults.snapshot() == {}
