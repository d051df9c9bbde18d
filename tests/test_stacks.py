"""Every stack file holds valid config: settings load and the experiment validates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.metric_library import metric_library
from components.settings import load_settings
from rollout.validation import validate

ROOT = Path(__file__).resolve().parent.parent
STACKS = sorted(p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml"))


def stack_config(stack: str) -> dict[str, Any]:
    raw = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    return {key.split(":", 1)[1]: value for key, value in raw.items()}


def as_engine_passes(value: Any) -> str:
    """The engine hands the program strings; objects and arrays as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def test_the_three_environments_exist() -> None:
    assert STACKS == ["dev", "kind", "prod"]


@pytest.mark.parametrize("stack", STACKS)
def test_stack_config_is_valid(stack: str) -> None:
    config = stack_config(stack)
    settings = load_settings(lambda key: as_engine_passes(config[key]) if key in config else None)
    experiment = {**settings.experiment, "metrics": metric_library(list(settings.extra_metrics)),
                  "versions": [{"name": v.name, "variables": {"ns": v.namespace, "sid": settings.deployment_name,
                                                                 "predictor": settings.predictor}}
                               for v in settings.versions]}
    assert validate(experiment) == []


def test_prod_is_stricter_than_the_seed_and_sends_no_load() -> None:
    prod = load_settings(lambda key: as_engine_passes(stack_config("prod")[key]) if key in stack_config("prod") else None)
    seed = load_settings(lambda key: None)
    assert not prod.load.enabled
    assert prod.prometheus.url.startswith("https://") and prod.prometheus.verify_tls
    assert prod.experiment["intervalSeconds"] > seed.experiment["intervalSeconds"]
    limits = {o["metric"]: o["upperLimit"] for o in prod.experiment["objectives"]}
    seed_limits = {o["metric"]: o["upperLimit"] for o in seed.experiment["objectives"]}
    assert all(limits[m] < seed_limits[m] for m in seed_limits)


def test_kind_uses_the_seeds_prometheus_and_experiment() -> None:
    kind = stack_config("kind")
    assert kind["prometheusUrl"] == "http://seldon-core-analytics-prometheus-seldon.seldon-system"
    assert "experiment" not in kind  # the seed's experiment is the project default
    seed = load_settings(lambda key: None).experiment
    assert (seed["intervalSeconds"], seed["iterationsPerLoop"]) == (10, 10)
