"""jq is a sandbox: a metric's expression (from the untrusted stack file) reads only the Prometheus
response. A corpus of hostile expressions is refused at validation, naming the metric; a runaway one is a
failed query within the deadline, never a hung `up`; the default metrics stay in process (fast)."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from rollout.core.jqexpr import JqError, is_plain, sandbox_problem
from rollout.core.spec import JQ_FIRST_VALUE
from rollout.core.validation import validate
from rollout.metrics.collect import classify
from rollout.metrics.evaluate import DEADLINE_SECONDS, first_value
from tests.rollout.factories import seed_experiment

CANARY = "jq-canary-5ecret-91b7"

BODY: dict[str, Any] = {"status": "success", "data": {"resultType": "vector",
                                                      "result": [{"metric": {}, "value": [1.0, "12.5"]}]}}

ESCAPES = [
    "$ENV.CANARY_SECRET", "$ENV", "env.CANARY_SECRET", "env", "env | keys", "[env[]]", "$ENV | getpath([\"X\"])",
    "env | getpath([\"X\"])", "$ ENV", "{$ENV}", "{a: env}", "{(env | keys[0]): 1}", ".[env | keys[0]]",
    "\"\\(env.CANARY_SECRET)\"", "\"a\\(\"b\\(env)\")\"", "@sh \"\\($ENV.X)\"", "@base64 \"\\(env)\"",
    "input", "inputs", "[inputs]", "first(inputs)", "input_filename", "input_line_number", "$__loc__",
    "$__loc__.file", "$__prog_args", "debug", "debug(\"x\")", "debug(env)", "stderr", "halt", "halt_error",
    "\"x\" | halt_error(1)", "get_search_list", "get_prog_origin", "get_jq_origin", "builtins", "now",
    "localtime", "strflocaltime(\"%c\")", "import \"a\" as a; 1", "include \"a\"; 1", "modulemeta",
    "a::b", "def f: env; f", "reduce env as $e (0; 1)", ". as $x | $ENV", "try env catch 1",
    "if true then env else 1 end", "label $out | env", ".data | env", "[.[] | env]",
    ".a # comment\n| env", "1 as $x | \"\\(1 + (2 | env | length))\"",
    "x" * 3000,
]


@pytest.mark.parametrize("expression", ESCAPES)
def test_every_way_out_of_the_response_is_refused(expression: str) -> None:
    assert sandbox_problem(expression) is not None
    with pytest.raises(JqError):
        first_value(expression, BODY)


@pytest.mark.parametrize("expression", ESCAPES[:20])
def test_the_refusal_names_the_metric_and_the_key(expression: str) -> None:
    data = seed_experiment()
    data["metrics"][0]["jqExpression"] = expression
    problems = {p.field: p.message for p in validate(data)}
    name = data["metrics"][0]["name"]
    assert f"metric {name!r}: may read only the Prometheus response" in problems["metrics[0].jqExpression"]


ALLOWED = [
    (JQ_FIRST_VALUE, 12.5),
    (".data.result[0].value[1] | tonumber | floor", 12),
    ("{env: 1} | .env", 1),                # a key, not the builtin
    ("{env: 2} | {env} | .env", 2),        # `{env}` is `{env: .env}`
    ("{\"env\": 3} | .\"env\"", 3),
    (".data.result | length", 1),
    ("[.data.result[].value[1] | tonumber] | add", 12.5),
    ("\"env\" | length", 3),               # a string, not code
    ("\"\\\"env\" | length", 4),
    (".data.result[0].value[1] | tonumber * 2", 25),
    ("getpath([\"data\", \"result\", 0, \"value\", 1]) | tonumber", 12.5),
    ("[.data.result[0].value[1] | test(\"^1\")] | length", 1),
]


@pytest.mark.parametrize(("expression", "value"), ALLOWED)
def test_expressions_that_read_the_response_work(expression: str, value: Any) -> None:
    assert sandbox_problem(expression) is None
    assert first_value(expression, BODY) == value


RUNAWAYS = [
    "def f: f; f",
    "def f: ., f; last(f)",
    "last(repeat(1))",
    "[range(1e12)] | length",
    "last(range(1e15))",
    "until(false; .)",
    "[limit(1e12; repeat(1))] | length",
    "reduce range(1e12) as $i (0; . + 1)",
    "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!\" | test(\"^(a|aa)*$\")",
    "\"x\" * 1e12 | length",
    "[recurse(. + 1; true)] | length",
]


@pytest.mark.parametrize("expression", RUNAWAYS)
def test_a_runaway_expression_fails_within_the_deadline(expression: str) -> None:
    assert sandbox_problem(expression) is None  # it reads nothing it should not: it is bounded, not refused
    started = time.monotonic()
    outcome = classify(BODY, expression)
    took = time.monotonic() - started
    assert type(outcome).__name__ in ("Failed", "NoData"), outcome
    assert took < DEADLINE_SECONDS + 1.5


def test_the_child_process_sees_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defence in depth: were a way out missed by the check, the bounded evaluation has no environment."""
    monkeypatch.setenv("CANARY_SECRET", CANARY)
    from rollout.metrics import evaluate  # the bounded evaluation itself
    assert "CANARY_SECRET" in os.environ
    seen = evaluate.bounded_value("$ENV | keys", BODY, DEADLINE_SECONDS)
    assert "CANARY_SECRET" not in seen and not [k for k in seen if k.startswith("PULUMI")]


def test_the_default_metrics_stay_in_process_and_fast() -> None:
    assert is_plain(JQ_FIRST_VALUE)
    assert not is_plain("[.data.result[]]") and not is_plain("def f: 1; f") and not is_plain(". * 2")
    first_value(JQ_FIRST_VALUE, BODY)
    started = time.perf_counter()
    for _ in range(1000):
        first_value(JQ_FIRST_VALUE, BODY)
    assert (time.perf_counter() - started) / 1000 < 0.001  # in process: microseconds, not a child process
