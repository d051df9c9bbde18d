"""The built toolchain answers, and the engine works offline with the built Kubernetes provider."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import grpc
from google.protobuf import empty_pb2
from pulumi.runtime.proto import language_pb2_grpc

from testbed.toolchain import (
    BIN,
    CACHE,
    FORTIO,
    FORTIO_VERSION,
    KUBERNETES_PROVIDER_VERSION,
    KUBERNETES_VERSION,
    PULUMI_VERSION,
    REPO,
    SCRIPTS,
    LocalCluster,
    PulumiCli,
    require_executables,
    run,
    start_cluster,
    stop_cluster,
)

VENV = REPO / "venv"


def test_pulumi_version(pulumi_cli: PulumiCli, tmp_path: Path) -> None:
    out = pulumi_cli.run("version", cwd=tmp_path).stdout.strip()
    assert out == PULUMI_VERSION


def test_warm_toolchain_is_quick(toolchain_bin: Path) -> None:
    start = time.monotonic()
    proc = run([SCRIPTS / "toolchain"], env={**os.environ, "SELDON_ROLLOUT_CACHE": str(CACHE)})
    elapsed = time.monotonic() - start
    assert proc.stdout.count("up to date") == 8, proc.stdout  # 7 executables and the Gateway API CRDs
    assert elapsed < 10, f"a warm `scripts/toolchain` took {elapsed:.1f}s"


def test_fortio_version() -> None:
    require_executables(FORTIO)
    assert run([BIN / "fortio", "version"]).stdout.strip() == FORTIO_VERSION


def test_language_host_answers_over_grpc(pulumi_cli: PulumiCli) -> None:
    assert run([BIN / "pulumi-language-python", "--version"]).stdout.strip() == PULUMI_VERSION
    host = subprocess.Popen(
        [BIN / "pulumi-language-python"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert host.stdout is not None
        port = int(host.stdout.readline().strip())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = language_pb2_grpc.LanguageRuntimeStub(channel)
            info = stub.GetPluginInfo(empty_pb2.Empty(), timeout=10)
        assert info.version == PULUMI_VERSION
    finally:
        host.terminate()
        host.communicate(timeout=10)


def test_kubernetes_provider_answers(pulumi_cli: PulumiCli, tmp_path: Path) -> None:
    schema = json.loads(
        pulumi_cli.run("package", "get-schema", str(BIN / "pulumi-resource-kubernetes"), cwd=tmp_path).stdout
    )
    assert schema["name"] == "kubernetes"
    assert schema["version"] == KUBERNETES_PROVIDER_VERSION


def test_api_server_reports_its_version(local_cluster: LocalCluster) -> None:
    version = json.loads(local_cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == KUBERNETES_VERSION


def test_cluster_up_again_is_a_no_op(local_cluster: LocalCluster) -> None:
    pids = {name: (local_cluster.dir / f"{name}.pid").read_text() for name in ("etcd", "kube-apiserver", "kube-controller-manager")}
    out = run([SCRIPTS / "cluster", "up"], env=local_cluster.env()).stdout
    assert "already up" in out
    assert pids == {name: (local_cluster.dir / f"{name}.pid").read_text() for name in pids}


PROGRAM = """\
import pulumi
import pulumi_kubernetes as k8s

config = pulumi.Config()
provider = k8s.Provider("local", kubeconfig=open(config.require("kubeconfigPath")).read())
cm = k8s.core.v1.ConfigMap(
    "probe",
    metadata={"name": "toolchain-probe", "namespace": "default"},
    data={"greeting": config.require("greeting")},
    opts=pulumi.ResourceOptions(provider=provider),
)
pulumi.export("name", cm.metadata["name"])
"""


def test_pulumi_up_offline_against_local_cluster(
    local_cluster: LocalCluster, pulumi_cli: PulumiCli, tmp_path: Path
) -> None:
    project = tmp_path / "probe"
    project.mkdir()
    (project / "Pulumi.yaml").write_text(
        "name: toolchain-probe\n"
        "runtime:\n"
        "  name: python\n"
        "  options:\n"
        f"    virtualenv: {VENV}\n"
    )
    (project / "__main__.py").write_text(PROGRAM)
    stack = "probe"
    pulumi_cli.run("stack", "init", stack, cwd=project)
    pulumi_cli.run("config", "set", "kubeconfigPath", str(local_cluster.kubeconfig), cwd=project, stack=stack)
    pulumi_cli.run("config", "set", "greeting", "hello", cwd=project, stack=stack)

    up = pulumi_cli.run("up", "--yes", "--skip-preview", cwd=project, stack=stack)
    assert "downloading" not in (up.stdout + up.stderr).lower()
    data = json.loads(local_cluster.kubectl("get", "configmap", "toolchain-probe", "-n", "default", "-o", "json").stdout)
    assert data["data"] == {"greeting": "hello"}
    assert pulumi_cli.run("stack", "output", "name", cwd=project, stack=stack).stdout.strip() == "toolchain-probe"

    # The provider that ran is the built one (version 4.25.0), and no plugin was downloaded.
    state = json.loads(pulumi_cli.run("stack", "export", cwd=project, stack=stack).stdout)
    providers = [r for r in state["deployment"]["resources"] if r["type"] == "pulumi:providers:kubernetes"]
    assert providers
    assert {p["inputs"].get("version") for p in providers} == {KUBERNETES_PROVIDER_VERSION}
    plugins_dir = pulumi_cli.home_dir / "plugins"
    assert not plugins_dir.exists() or not any(plugins_dir.iterdir())

    again = pulumi_cli.run("preview", "--diff", cwd=project, stack=stack)
    assert "to update" not in again.stdout and "to create" not in again.stdout, again.stdout

    pulumi_cli.run("destroy", "--yes", "--skip-preview", cwd=project, stack=stack)
    gone = local_cluster.kubectl("get", "configmap", "toolchain-probe", "-n", "default", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_cluster_down_then_up_keeps_data_and_stops_only_its_processes(local_cluster: LocalCluster, tmp_path: Path) -> None:
    """A second cluster beside the session's: down stops its own three processes, up again finds the data."""
    other = start_cluster(tmp_path / "cluster")
    names = ("etcd", "kube-apiserver", "kube-controller-manager")
    pids = [int((other.dir / f"{n}.pid").read_text()) for n in names]
    other.kubectl("create", "configmap", "survivor", "-n", "default", "--from-literal=a=b")

    stop_cluster(other.dir)
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), f"pid {pid} still running after down"
    assert local_cluster.kubectl("get", "--raw", "/readyz").stdout == "ok"

    again = start_cluster(other.dir)
    try:
        assert again.kubectl("get", "configmap", "survivor", "-n", "default", "-o", "jsonpath={.data.a}").stdout == "b"
    finally:
        run([SCRIPTS / "cluster", "down", "--wipe"], env=again.env())
    assert not other.dir.exists()


def test_cluster_up_waits_for_programs_that_take_a_moment_to_start(tmp_path: Path) -> None:
    """Right after `setsid PROGRAM &`, the new process is still setsid (or the shell) until it execs
    PROGRAM; on a busy machine that moment is long, and `up` once took it for "etcd exited" (an empty
    log: etcd had not started). Here every program starts 1.5 s late, through a wrapper that keeps its
    name, so the moment always comes: `up` must wait it out, and `down` must still find the processes."""
    require_executables(("etcd", "kube-apiserver", "kube-controller-manager"))
    cache = tmp_path / "cache"
    (cache / "bin").mkdir(parents=True)
    for name in ("etcd", "kube-apiserver", "kube-controller-manager"):
        late = cache / "bin" / name
        late.write_text(f'#!/bin/bash\nsleep 1.5\nexec -a "$0" {CACHE / "bin" / name} "$@"\n')
        late.chmod(0o755)
    env = {**os.environ, "SELDON_ROLLOUT_CACHE": str(cache), "SELDON_ROLLOUT_CLUSTER_DIR": str(tmp_path / "cluster")}
    try:
        up = run([SCRIPTS / "cluster", "up"], env=env, timeout=300)
        assert "ready in" in up.stdout and "exited" not in up.stdout
    finally:
        down = run([SCRIPTS / "cluster", "down", "--wipe"], env=env, check=False)
    assert down.stdout.count("stopped") == 3, down.stdout
