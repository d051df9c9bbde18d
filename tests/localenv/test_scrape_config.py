"""The local Prometheus's configuration: valid for the real `promtool`, and the seed's pod job."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from localenv.scrape_config import JOB, main, render, scrape_config
from testbed.promserver import prometheus_binary


def test_promtool_accepts_the_configuration(tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(render("http://127.0.0.1:8080", "1s"))
    checked = subprocess.run([prometheus_binary("promtool"), "check", "config", str(config)], capture_output=True, text=True,
                             check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_seeds_pod_job_over_the_data_planes_discovery() -> None:
    job = scrape_config("http://127.0.0.1:8080/", "500ms")["scrape_configs"][0]
    assert job["job_name"] == JOB == "kubernetes-pods"
    assert job["http_sd_configs"] == [{"url": "http://127.0.0.1:8080/discovery/targets", "refresh_interval": "500ms"}]
    rules = job["relabel_configs"]
    assert {"action": "labelmap", "regex": "__meta_kubernetes_pod_label_(.+)"} in rules
    assert {"source_labels": ["__meta_kubernetes_namespace"], "action": "replace",
            "target_label": "kubernetes_namespace"} in rules
    assert [r.get("action") for r in rules[:2]] == ["keep", "keep"]
    assert "honor_labels" not in job, "the exporters' labels never collide with the targets'"


def test_cli_prints_the_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data-plane", "http://127.0.0.1:9"]) == 0
    out = capsys.readouterr().out
    assert yaml.safe_load(out)["scrape_configs"][0]["http_sd_configs"][0]["url"] == "http://127.0.0.1:9/discovery/targets"
