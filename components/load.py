"""The seed's fortio load Jobs: predictions through the gateway, rewards to each version's feedback (Seldon's
feedback route, or `load.rewardPath`: the application that counts engagement where the model server cannot)."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

PREDICTION_PAYLOAD = {"data": {"ndarray": [[6.8, 2.8, 4.8, 1.4]]}}
REWARD_PAYLOAD = {"reward": 1}


@dataclass(frozen=True)
class LoadJob:
    """One fortio load: `qps` requests per second of `payload` to `url` for `duration_seconds`."""

    name: str
    path: str
    """URL path under the gateway, e.g. `/api/v1.0/predictions`."""
    qps: float
    payload: dict[str, Any]
    duration_seconds: int
    host: str | None = None


def fortio_job_spec(job: LoadJob, gateway_url: str) -> dict[str, Any]:
    """The Job spec of the seed's fortio.yaml: fortio plus a busybox sidecar sharing /shared."""
    if not gateway_url.startswith(("http://", "https://")):
        raise ValueError(f"{job.name}: gateway URL must start with http:// or https://, got {gateway_url!r}")
    if job.qps <= 0:
        raise ValueError(f"{job.name}: qps must be positive, got {job.qps}")
    if job.duration_seconds < 1:
        raise ValueError(f"{job.name}: duration must be at least 1s, got {job.duration_seconds}")
    headers = (["-H", f"Host: {job.host}"] if job.host else []) + ["-H", "Content-Type: application/json"]
    command = ["fortio", "load", "-t", f"{job.duration_seconds}s", "-qps", f"{job.qps:g}",
               "-json", "/shared/fortiooutput.json", *headers,
               "-payload", json.dumps(job.payload, separators=(", ", ": ")), "$(URL)"]
    shared = [{"name": "shared", "mountPath": "/shared"}]
    return {"template": {"spec": {
        "volumes": [{"name": "shared", "emptyDir": {}}],
        "containers": [
            {"name": "fortio", "image": "fortio/fortio", "command": command,
             "env": [{"name": "URL", "value": gateway_url.rstrip("/") + job.path}], "volumeMounts": shared},
            {"name": "busybox", "image": "busybox:1.28",
             "command": ["sh", "-c", f"echo busybox is running! && sleep {job.duration_seconds}"],
             "volumeMounts": shared},
        ],
        "restartPolicy": "Never",
    }}}


SELDON_FEEDBACK = "/seldon/{namespace}/{deployment}/api/v1.0/feedback"
"""The route Seldon's operator adds for each SeldonDeployment, to its feedback endpoint (the seed's)."""


def reward_jobs(versions: list[tuple[str, str]], deployment: str, reward_qps: list[float], duration_seconds: int,
                path: str = SELDON_FEEDBACK) -> list[LoadJob]:
    """One reward load per version (namespace, version name), posting `{"reward": 1}` to `path` with the
    version's namespace and the deployment's name filled in."""
    return [LoadJob(f"fortio-{version.replace('-', '')}-rewards",
                    path.replace("{namespace}", namespace).replace("{deployment}", deployment),
                    qps, REWARD_PAYLOAD, duration_seconds)
            for (namespace, version), qps in zip(versions, reward_qps, strict=True)]


def seed_load_jobs(host: str, versions: list[tuple[str, str]], deployment: str,
                   prediction_qps: float, reward_qps: list[float], duration_seconds: int,
                   reward_path: str = SELDON_FEEDBACK) -> list[LoadJob]:
    """Predictions through the gateway plus one reward load per version (namespace, version name)."""
    jobs = [LoadJob("fortio-requests", "/api/v1.0/predictions", prediction_qps,
                    PREDICTION_PAYLOAD, duration_seconds, host)]
    return jobs + reward_jobs(versions, deployment, reward_qps, duration_seconds, reward_path)


class LoadGenerator(pulumi.ComponentResource):
    """The fortio Jobs. Pulumi does not wait for them: they run for the whole experiment."""

    jobs: pulumi.Output[list[str]]

    def __init__(self, name: str, *, jobs: list[LoadJob], gateway_url: pulumi.Input[str], namespace: str,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("seldon-rollout:load:LoadGenerator", name, None, opts)
        url = pulumi.Output.from_input(gateway_url)
        created = [
            k8s.batch.v1.Job(
                job.name,
                metadata={"name": job.name, "namespace": namespace,
                          "annotations": {"pulumi.com/skipAwait": "true"}},
                spec=url.apply(functools.partial(fortio_job_spec, job)),
                opts=pulumi.ResourceOptions(parent=self))
            for job in jobs
        ]
        self.jobs = pulumi.Output.all(*[j.metadata["name"] for j in created])
        self.register_outputs({"jobs": self.jobs})
