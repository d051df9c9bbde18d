from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from localenv.fortio import LoadSpec, UnsupportedLoad, expand, go_duration, load_spec
from tests.localenv.fakes import seed_jobs

SEED_FORTIO = Path(__file__).parent / "data" / "seed-fortio.yaml"
GATEWAY = "http://127.0.0.1:8080"


def seed_fortio_jobs(url_value: str = GATEWAY) -> dict[str, dict[str, Any]]:
    """The seed's fortio.yaml after its `sed s+URL_VALUE+...+g`, by Job name."""
    docs = yaml.safe_load_all(SEED_FORTIO.read_text().replace("URL_VALUE", url_value))
    return {d["metadata"]["name"]: d for d in docs if d}


def spec_of(job: dict[str, Any]) -> LoadSpec:
    spec = load_spec(job)
    assert spec is not None
    return spec


def test_the_seeds_prediction_load() -> None:
    spec = spec_of(seed_fortio_jobs()["fortio-requests"])
    assert spec.job == "fortio-requests"
    assert spec.qps == 5
    assert spec.url == "http://127.0.0.1:8080/api/v1.0/predictions"
    assert spec.method == "POST"
    assert spec.header("Host") == "iris.example.com"
    assert spec.header("content-type") == "application/json"
    assert spec.payload is not None
    assert json.loads(spec.payload) == {"data": {"ndarray": [[6.8, 2.8, 4.8, 1.4]]}}
    assert spec.duration_seconds == 6000
    assert spec.connections == 4
    assert spec.calls is None


@pytest.mark.parametrize(("name", "qps", "namespace"), [("fortio-irisv1-rewards", 0.7, "ns-baseline"),
                                                        ("fortio-irisv2-rewards", 1.0, "ns-candidate")])
def test_the_seeds_reward_loads(name: str, qps: float, namespace: str) -> None:
    spec = spec_of(seed_fortio_jobs()[name])
    assert spec.qps == qps
    assert spec.url == f"http://127.0.0.1:8080/seldon/{namespace}/iris/api/v1.0/feedback"
    assert spec.header("Host") is None
    assert spec.headers == (("Content-Type", "application/json"),)
    assert spec.payload is not None
    assert json.loads(spec.payload) == {"reward": 1}


def test_the_programs_jobs_read_the_same_as_the_seeds() -> None:
    seed = {name: spec_of(job) for name, job in seed_fortio_jobs().items()}
    program = {job["metadata"]["name"]: spec_of(job) for job in seed_jobs(GATEWAY)}
    assert set(program) == set(seed)
    for name, spec in program.items():
        assert (spec.url, spec.qps, spec.headers, json.loads(spec.payload or b"")) == \
               (seed[name].url, seed[name].qps, seed[name].headers, json.loads(seed[name].payload or b""))


def test_a_job_without_fortio_load_is_not_a_load() -> None:
    busybox = {"metadata": {"name": "x"}, "spec": {"template": {"spec": {"containers": [
        {"name": "busybox", "command": ["sh", "-c", "sleep 1"]}]}}}}
    assert load_spec(busybox) is None


def _job(command: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "fortio", "command": command}
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return {"metadata": {"name": "j"}, "spec": {"template": {"spec": {"containers": [container]}}}}


def test_flags_with_equals_args_and_defaults() -> None:
    job = _job(["fortio", "load"])
    job["spec"]["template"]["spec"]["containers"][0]["args"] = ["-qps=2", "-c", "1", "-n", "7", "$(U)"]
    job["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "U", "value": "http://localhost:1/x"}]
    spec = spec_of(job)
    assert (spec.qps, spec.connections, spec.calls, spec.duration_seconds) == (2, 1, 7, None)
    assert (spec.method, spec.payload, spec.url) == ("GET", None, "http://localhost:1/x")


@pytest.mark.parametrize(("command", "message"), [
    (["fortio", "load", "-qps", "0", "http://127.0.0.1/"], "unlimited"),
    (["fortio", "load", "-qps", "-1", "http://127.0.0.1/"], "unlimited"),
    (["fortio", "load", "-grpc", "http://127.0.0.1/"], "unsupported fortio flag -grpc"),
    (["fortio", "load", "-qps", "five", "http://127.0.0.1/"], "not a number"),
    (["fortio", "load", "-t", "10 minutes", "http://127.0.0.1/"], "not a duration"),
    (["fortio", "load", "-H", "NoColon", "http://127.0.0.1/"], "header"),
    (["fortio", "load", "-qps", "5"], "one URL"),
    (["fortio", "load", "$(URL)"], "URL must be http"),
    (["fortio", "load", "-c", "0", "http://127.0.0.1/"], "at least 1"),
])
def test_unsupported_jobs_say_why(command: list[str], message: str) -> None:
    with pytest.raises(UnsupportedLoad, match=message):
        load_spec(_job(command))


@pytest.mark.parametrize(("text", "seconds"), [("6000s", 6000), ("1m30s", 90), ("250ms", 0.25), ("1h", 3600),
                                               ("0", 0), ("1.5s", 1.5)])
def test_go_durations(text: str, seconds: float) -> None:
    assert go_duration(text) == pytest.approx(seconds)


def test_kubernetes_variable_expansion() -> None:
    env = {"URL": "http://h/p"}
    assert expand("$(URL)", env) == "http://h/p"
    assert expand("$(MISSING)", env) == "$(MISSING)"
    assert expand("$$(URL)", env) == "$(URL)"
