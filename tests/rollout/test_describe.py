"""`python -m rollout describe|assert|plot` on records made by the real core."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rollout.__main__ import main
from rollout.core.outcomes import Failed
from rollout.core.record import MetricValue
from rollout.engine import iterate, start
from rollout.provider import record_outputs
from rollout.report.describe import describe, progress_line
from rollout.report.record import experiment_record
from tests.rollout.factories import healthy, no_traffic, seed_experiment, seed_spec, snapshot


def record(iterations: int, broken_last: bool = False) -> dict[str, Any]:
    spec = seed_spec()
    state = start(spec, 1_700_000_000.0)
    for i in range(iterations):
        data = snapshot(**{"iris-v1": healthy(7.0 * (i + 1)), "iris-v2": healthy(10.0 * (i + 1)) if i else no_traffic()})
        if broken_last and i == iterations - 1:
            data = {k: Failed("HTTP 503") for k in data}
        state = iterate(spec, data, state, 1_700_000_000.0 + 10 * (i + 1))
    return record_outputs(seed_experiment(), {"url": "http://127.0.0.1:9090"}, spec, state)


def test_describe_has_the_iter8ctl_sections_and_the_decisive_values() -> None:
    text = describe(record(3))
    for section in ("Overview", "Progress Summary", "Winner Assessment", "Reward Assessment",
                    "Objective Assessment", "Metrics Assessment", "History"):
        assert f"****** {section} ******" in text
    assert "Number of completed iterations: 3 of 10" in text
    assert "Current weights: iris-v1 75%, iris-v2 25%" in text
    assert "user-engagement (High)  21       30 *" in text
    assert "mean-latency <= 2000                  true     true" in text
    assert "mean-latency (milliseconds)" in text


def test_describe_shows_why_an_iteration_was_held() -> None:
    text = describe(record(3, broken_last=True))
    assert "Held weights (1/4 before rollback)" in text
    assert "failed (HTTP 503)" in text
    assert "Number of completed iterations: 2 of 10" in text


def test_progress_line() -> None:
    line = progress_line(record(2))
    assert line.startswith("iteration 2/10 Running | iris-v1 85%, iris-v2 15% | user-engagement iris-v1:14 iris-v2:20")


def test_cli_describe_reads_the_whole_stack_output_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "out.json"
    path.write_text(json.dumps({"stage": "Running", "experiment": record(10)}))
    assert main(["describe", "-f", str(path)]) == 0
    assert "Promoted: iris-v2" in capsys.readouterr().out


@pytest.mark.parametrize(("iterations", "flags", "code"), [
    (10, ["--completed", "--winner-found"], 0),
    (3, ["--completed"], 1),
    (3, ["--winner-found"], 0),
    (3, [], 2),
])
def test_cli_assert(tmp_path: Path, iterations: int, flags: list[str], code: int) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(record(iterations)))
    assert main(["assert", "-f", str(path), *flags]) == code


@pytest.mark.parametrize(("content", "says"), [
    ("not json", "is not JSON"),
    ("{}", "not an experiment record"),
    (None, "cannot read"),
    ('{"stage": "Running", "weights": {}}', "spec: is required"),
    (json.dumps({**record(1), "spec": {**seed_experiment(), "intervalSeconds": "soon"}}),
     "spec.intervalSeconds: must be a whole number, got 'soon'"),
    (json.dumps({**record(1), "weights": {"iris-v1": "most"}}), "weights.iris-v1: must be a whole number"),
])
def test_cli_bad_input_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None,
                                        says: str) -> None:
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    assert main(["describe", "-f", str(path)]) == 2
    err = capsys.readouterr().err
    assert says in err
    assert "Traceback" not in err


def test_cli_plot_writes_a_png(tmp_path: Path) -> None:
    src, png = tmp_path / "r.json", tmp_path / "plot.png"
    src.write_text(json.dumps(record(10)))
    assert main(["plot", "-f", str(src), "-o", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_record_is_read_into_the_engines_types_and_tolerates_new_keys() -> None:
    raw = {**record(3), "retries": 2, "values": {"user-engagement": {"iris-v1": {
        "value": 21.0, "status": "ok", "units": "", "query": "sum(x)"}}}}
    typed = experiment_record({"experiment": raw})
    assert typed.spec.objectives[0].condition() == "mean-latency <= 2000"
    assert typed.spec.total_iterations == 10 and typed.versions == ("iris-v1", "iris-v2")
    assert typed.value("user-engagement", "iris-v1") == MetricValue(21.0, "ok", "", "")
    assert typed.state.stage == "Running" and typed.state.iteration == 3
    assert describe(typed) == describe(raw)
    assert "user-engagement (High)  21" in describe(typed)
