"""`python -m localenv` as a process: ready line, state file, serving, clean stop on SIGTERM."""

from __future__ import annotations

import json
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
import yaml

from testbed.fakes import SKLEARN, XGBOOST, routing_rule, seldon_deployment
from tests.localenv.helpers import predict

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
STOP_SECONDS = 10.0
"""How soon SIGTERM must end the process (it stops its threads and exits; well under a second idle)."""


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"no line on stdout within {timeout}s")
    return proc.stdout.readline()


def test_cli_serves_the_manifests_and_stops_on_sigterm(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "seed.yaml").write_text(yaml.safe_dump_all(
        [routing_rule(0, 100), seldon_deployment("ns-baseline", SKLEARN), seldon_deployment("ns-candidate", XGBOOST)]))
    state = tmp_path / "state"
    proc = subprocess.Popen([sys.executable, "-m", "localenv", "--manifests", str(manifests), "--listen",
                             "127.0.0.1:0", "--state-dir", str(state)], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = read_line(proc, START_TIMEOUT)
        assert line.startswith("localenv ready: http://127.0.0.1:"), line
        url = line.split(": ", 1)[1].strip()
        assert json.loads((state / "localenv.json").read_text()) == {"url": url, "pid": proc.pid}
        with requests.Session() as http:
            response = predict(http, url)
        assert response.status_code == 200
        assert response.headers["version"] == "iris-v2"
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert proc.wait(timeout=START_TIMEOUT) == 0
        stopped_after = time.monotonic() - started
        assert stopped_after < STOP_SECONDS, f"SIGTERM took {stopped_after:.1f}s to stop the data plane"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _, stderr = proc.communicate()
    assert "stopped" in stderr
    assert "Traceback" not in stderr


def test_cli_refuses_a_bad_kubeconfig(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "localenv", "--kubeconfig", str(tmp_path / "missing"),
                           "--listen", "127.0.0.1:0"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "cannot read kubeconfig" in proc.stderr
