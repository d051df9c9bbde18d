"""The application stand-in that counts engagement per model version (localenv/engagement.py): what its posts
count, what it refuses, and that the mesh's discovery lists it for the local Prometheus."""

from __future__ import annotations

import requests

from localenv.app import DataPlane
from localenv.discovery import MESH_DISCOVERY_PATH


def test_engagement_is_counted_per_version_and_bad_rewards_count_nothing(mesh_plane: DataPlane,
                                                                        http: requests.Session) -> None:
    def post(path: str, body: object) -> requests.Response:
        return http.post(mesh_plane.url + path, json=body, timeout=10)

    for _ in range(3):
        assert post("/app/engagement/ns-candidate", {"reward": 1}).json() == {"recorded": "ns-candidate"}
    assert post("/app/engagement/ns-baseline", {"reward": 2.5}).status_code == 200
    for body in ({"reward": "1"}, {"reward": True}, {}, [1]):
        bad = post("/app/engagement/ns-baseline", body)
        assert (bad.status_code, bad.json()["status"]["reason"]) == (400, "BAD_REWARD"), body
    assert post("/app/engagement/Not_A_Namespace", {"reward": 1}).status_code == 404  # not the app's path
    text = mesh_plane.engagement.exposition().decode()
    assert 'app_user_engagement_total{model_namespace="ns-candidate"} 3.0' in text
    assert 'app_user_engagement_total{model_namespace="ns-baseline"} 1.0' in text
    assert 'app_user_reward_total{model_namespace="ns-baseline"} 2.5' in text
    assert "# TYPE app_user_engagement_total counter" in text
    assert mesh_plane.status()["engagement"] == {"ns-baseline": 1, "ns-candidate": 3}  # what the e2e tests wait on


def test_the_mesh_discovery_lists_the_application_for_the_annotated_pods_job(mesh_plane: DataPlane,
                                                                              http: requests.Session) -> None:
    groups = http.get(mesh_plane.url + MESH_DISCOVERY_PATH, timeout=10).json()
    [app] = [g for g in groups if g["labels"]["__meta_kubernetes_pod_name"] == "engagement-app"]
    labels = app["labels"]
    assert (labels["__meta_kubernetes_namespace"], labels["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
            labels["__meta_kubernetes_pod_container_name"]) == ("default", "true", "app")
    http.post(mesh_plane.url + "/app/engagement/ns-baseline", json={"reward": 1}, timeout=10)
    scraped = http.get(mesh_plane.url + labels["__meta_kubernetes_pod_annotation_prometheus_io_path"], timeout=10)
    assert 'app_user_engagement_total{model_namespace="ns-baseline"} 1.0' in scraped.text
