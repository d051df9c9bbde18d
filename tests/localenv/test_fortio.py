"""Reading a fortio Job as the kubelet would: argv, `$(VAR)` expansion, env, emptyDir mounts, refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from localenv.fortio import (
    FortioMissing,
    FortioRun,
    UnsupportedLoad,
    container_env,
    expand,
    fortio_executable,
    fortio_run,
    json_output,
    local_argv,
)
from testbed.fakes import seed_jobs

SEED_FORTIO = Path(__file__).parent / "data" / "seed-fortio.yaml"
GATEWAY = "http://127.0.0.1:8080"


def seed_fortio_jobs(url_value: str = GATEWAY) -> dict[str, dict[str, Any]]:
    """The seed's fortio.yaml after its `sed s+URL_VALUE+...+g`, by Job name."""
    docs = yaml.safe_load_all(SEED_FORTIO.read_text().replace("URL_VALUE", url_value))
    return {d["metadata"]["name"]: d for d in docs if d}


def run_of(job: dict[str, Any]) -> FortioRun:
    run = fortio_run(job)
    assert run is not None
    return run


def test_the_seeds_prediction_job_runs_its_command_verbatim_with_url_expanded() -> None:
    run = run_of(seed_fortio_jobs()["fortio-requests"])
    assert run.job == "fortio-requests"
    assert run.argv == ("fortio", "load", "-t", "6000s", "-qps", "5", "-json", "/shared/fortiooutput.json",
                        "-H", "Host: iris.example.com", "-H", "Content-Type: application/json",
                        "-payload", '{"data": {"ndarray":[[6.8,2.8,4.8,1.4]]}}',
                        "http://127.0.0.1:8080/api/v1.0/predictions")
    assert run.target == "http://127.0.0.1:8080/api/v1.0/predictions"
    assert dict(run.env) == {"URL": "http://127.0.0.1:8080/api/v1.0/predictions"}
    assert run.mounts == (("/shared", "shared"),)
    assert run.backoff_limit == 6


@pytest.mark.parametrize(("name", "qps", "namespace"), [("fortio-irisv1-rewards", "0.7", "ns-baseline"),
                                                        ("fortio-irisv2-rewards", "1", "ns-candidate")])
def test_the_seeds_reward_jobs(name: str, qps: str, namespace: str) -> None:
    run = run_of(seed_fortio_jobs()[name])
    assert run.argv[4:6] == ("-qps", qps)
    assert run.target == f"http://127.0.0.1:8080/seldon/{namespace}/iris/api/v1.0/feedback"
    assert run.argv[run.argv.index("-payload") + 1] == '{"reward": 1}'
    assert "Host: iris.example.com" not in run.argv


def test_the_programs_jobs_run_the_same_commands_as_the_seeds() -> None:
    seed = {name: run_of(job) for name, job in seed_fortio_jobs().items()}
    program = {job["metadata"]["name"]: run_of(job) for job in seed_jobs(GATEWAY)}
    assert set(program) == set(seed)
    for name, run in program.items():
        payload = run.argv.index("-payload") + 1
        assert run.argv[:payload] + run.argv[payload + 1:] == seed[name].argv[:payload] + seed[name].argv[payload + 1:]
        assert json.loads(run.argv[payload]) == json.loads(seed[name].argv[payload])
        assert (run.env, run.mounts) == (seed[name].env, seed[name].mounts)


def test_the_busybox_sidecar_and_other_jobs_are_not_run() -> None:
    busybox = {"metadata": {"name": "x"}, "spec": {"template": {"spec": {"containers": [
        {"name": "busybox", "image": "busybox:1.28", "command": ["sh", "-c", "sleep 1"]}]}}}}
    assert fortio_run(busybox) is None
    seed = seed_fortio_jobs()["fortio-requests"]
    seed["spec"]["template"]["spec"]["containers"].reverse()  # the sidecar first: still fortio's argv
    assert run_of(seed).argv[:2] == ("fortio", "load")


def _job(command: list[str] | None = None, args: list[str] | None = None, env: dict[str, str] | None = None,
         image: str = "fortio/fortio", **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "fortio", "image": image}
    if command is not None:
        container["command"] = command
    if args is not None:
        container["args"] = args
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return {"metadata": {"name": "j"}, "spec": {"template": {"spec": {"containers": [container]}}, **spec}}


def test_the_fortio_image_entrypoint_with_args_only_and_backoff_limit() -> None:
    run = run_of(_job(args=["load", "-qps", "2", "$(U)"], env={"U": "http://localhost:1/x"},
                      image="docker.io/fortio/fortio:1.68.2", backoffLimit=0))
    assert run.argv == ("fortio", "load", "-qps", "2", "http://localhost:1/x")
    assert run.backoff_limit == 0
    assert fortio_run(_job(args=["load", "http://localhost/"], image="busybox")) is None


@pytest.mark.parametrize(("text", "expanded"), [
    ("$(URL)", "http://h/p"),
    ("$(URL)/x?$(Q)", "http://h/p/x?a=1"),
    ("$(MISSING)", "$(MISSING)"),
    ("$$(URL)", "$(URL)"),
    ("$$$(URL)", "$http://h/p"),
    ("cost: $5 $", "cost: $5 $"),
    ("$(URL", "$(URL"),
    ("$(URL)$(URL)", "http://h/phttp://h/p"),
    ("no vars", "no vars"),
])
def test_kubernetes_variable_expansion(text: str, expanded: str) -> None:
    assert expand(text, {"URL": "http://h/p", "Q": "a=1"}) == expanded


def test_env_values_use_the_variables_defined_before_them() -> None:
    container = {"env": [{"name": "HOST", "value": "127.0.0.1:8080"}, {"name": "URL", "value": "http://$(HOST)/p"},
                         {"name": "EARLY", "value": "$(LATE)"}, {"name": "LATE", "value": "x"}]}
    assert container_env(container) == {"HOST": "127.0.0.1:8080", "URL": "http://127.0.0.1:8080/p",
                                         "EARLY": "$(LATE)", "LATE": "x"}
    with pytest.raises(UnsupportedLoad, match="valueFrom"):
        container_env({"env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]})


@pytest.mark.parametrize(("command", "message"), [
    (["fortio", "server"], "only `fortio load`"),
    (["fortio", "load", "-qps", "5"], "target http"),
    (["fortio", "load", "$(URL)"], "target http"),
    (["fortio", "load", "tcp://127.0.0.1:1"], "target http"),
    (["fortio", "load", "-L", "http://127.0.0.1/"], "redirects"),
    (["fortio", "load", "-sync", "http://10.0.0.1/", "http://127.0.0.1/"], "fetches a URL"),
    (["fortio", "load", "-resolve", "10.0.0.1", "http://127.0.0.1/"], "not a loopback"),
    (["fortio", "load", "-resolve=10.0.0.1", "http://127.0.0.1/"], "not a loopback"),
    (["fortio", "load", "-json", "/etc/result.json", "http://127.0.0.1/"], "outside the container's emptyDir"),
    (["fortio", "load", "-json=/tmp/x", "http://127.0.0.1/"], "outside the container's emptyDir"),
    (["fortio", "load", "-json", "../../x", "http://127.0.0.1/"], "'..'"),
])
def test_refused_jobs_say_why(command: list[str], message: str) -> None:
    with pytest.raises(UnsupportedLoad, match=message):
        fortio_run(_job(command))


def test_loopback_resolve_and_paths_inside_mounts_are_fine() -> None:
    job = _job(["fortio", "load", "-resolve", "127.0.0.1", "-json", "out.json", "http://localhost:1/"])
    assert run_of(job).target == "http://localhost:1/"


def test_the_local_command_line_maps_mounts_and_the_target(tmp_path: Path) -> None:
    run = run_of(seed_fortio_jobs("http://10.96.0.7")["fortio-requests"])
    argv = local_argv(run, Path("/opt/bin/fortio"), tmp_path, "http://127.0.0.1:9/api/v1.0/predictions")
    assert argv[0] == "/opt/bin/fortio"
    assert argv[1:7] == ["load", "-t", "6000s", "-qps", "5", "-json"]
    assert argv[7] == str(tmp_path / "shared" / "fortiooutput.json")
    assert argv[-1] == "http://127.0.0.1:9/api/v1.0/predictions"
    assert json_output(argv) == argv[7]
    assert json_output(["fortio", "load", "-json=-", "http://h/"]) is None
    assert json_output(["fortio", "load", "--json=r.json", "http://h/"]) == "r.json"


def test_a_missing_fortio_names_make_toolchain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELDON_ROLLOUT_FORTIO", str(tmp_path / "fortio"))
    with pytest.raises(FortioMissing, match="make toolchain"):
        fortio_executable()
    monkeypatch.delenv("SELDON_ROLLOUT_FORTIO")
    monkeypatch.setenv("SELDON_ROLLOUT_CACHE", str(tmp_path))
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "fortio").write_text("#!/bin/sh\n")
    (tmp_path / "bin" / "fortio").chmod(0o755)
    assert fortio_executable() == tmp_path / "bin" / "fortio"
