"""Pytest plugin: the toolchain built by `scripts/toolchain`, a local API server, and a Pulumi runner.

Fixtures
- `toolchain_bin` (session): the directory holding the built executables. Skips the test with the
  reason when an executable is missing, unless SELDON_ROLLOUT_REQUIRE_TOOLCHAIN is set (CI), where
  it fails instead.
- `local_cluster` (session): a `LocalCluster` started by `scripts/cluster up` in a temporary cluster
  directory (CRDs installed), stopped at the end of the session. `.kubeconfig` (Path), `.server`
  (URL), `.dir`, and `.kubectl(*args, stdin=None, check=True)`.
- `pulumi_cli` (function): a `PulumiCli` running `scripts/pulumi` with a fresh file backend and
  PULUMI_HOME under the test's tmp_path. `.run(*args, cwd=..., stack=None, check=True)`.
  `make_pulumi_cli(backend_dir, home_dir)` builds one on any directories you choose.

`tests/toolchain/conftest.py` registers this plugin for the tests beside it; to use the fixtures
elsewhere, add "testbed.toolchain" to `pytest_plugins` in the root `tests/conftest.py`.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
CACHE = Path(os.environ.get("SELDON_ROLLOUT_CACHE") or Path.home() / ".cache" / "seldon-rollout")
BIN = CACHE / "bin"
REQUIRE_ENV = "SELDON_ROLLOUT_REQUIRE_TOOLCHAIN"

PULUMI_VERSION = "v3.274.1"
"""The release `scripts/toolchain` builds the CLI and the language host from."""
KUBERNETES_PROVIDER_VERSION = "4.25.0"
KUBERNETES_VERSION = "v1.37.2"
FORTIO_VERSION = "1.68.2"
GATEWAY_API_VERSION = "v1.6.3"
GATEWAY_API_CRDS = CACHE / "crds" / "gateway-api"
"""The Gateway API standard channel's CRDs, copied by `scripts/toolchain gateway-api-crds` from the
`sigs.k8s.io/gateway-api` module's config/crd/standard; `scripts/cluster up` installs them beside crds/."""

ENGINE = ("pulumi", "pulumi-language-python", "pulumi-language-python-exec", "pulumi-resource-pulumi-python")
PROVIDER = ("pulumi-resource-kubernetes",)
SERVER = ("etcd", "kube-apiserver", "kube-controller-manager")
FORTIO = ("fortio",)
TEST_PASSPHRASE = "seldon-rollout-tests"
COMMAND_TIMEOUT = 600


def require_executables(names: Sequence[str]) -> Path:
    """The bin directory, if all `names` are there; otherwise skip (or fail when CI requires them)."""
    missing = [n for n in names if not os.access(BIN / n, os.X_OK)]
    if missing:
        reason = f"toolchain not built (missing in {BIN}: {', '.join(missing)}); run `make toolchain`"
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{REQUIRE_ENV} is set but the {reason}", pytrace=False)
        pytest.skip(reason)
    return BIN


def require_gateway_api_crds() -> Path:
    """The directory of the Gateway API CRDs, if fetched; otherwise skip (or fail when CI requires them)."""
    if not (GATEWAY_API_CRDS / "gateway.networking.k8s.io_httproutes.yaml").is_file():
        reason = f"Gateway API CRDs not fetched (missing in {GATEWAY_API_CRDS}); run `scripts/toolchain gateway-api-crds`"
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{REQUIRE_ENV} is set but the {reason}", pytrace=False)
        pytest.skip(reason)
    return GATEWAY_API_CRDS


def run(
    args: Sequence[str | os.PathLike[str]],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    stdin: str | None = None,
    check: bool = True,
    timeout: float = COMMAND_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output; on failure with check, the error shows both streams."""
    proc = subprocess.run(
        [str(a) for a in args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command failed ({proc.returncode}): {' '.join(map(str, args))}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


@dataclass(frozen=True)
class LocalCluster:
    """A running local API server started by `scripts/cluster up`."""

    dir: Path
    kubeconfig: Path
    server: str

    def env(self) -> dict[str, str]:
        """The environment `scripts/cluster` ran with (same cache, this cluster directory)."""
        return {**os.environ, "SELDON_ROLLOUT_CACHE": str(CACHE), "SELDON_ROLLOUT_CLUSTER_DIR": str(self.dir)}

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`kubectl --kubeconfig <this cluster> ARGS`."""
        return run(["kubectl", "--kubeconfig", self.kubeconfig, *args], stdin=stdin, check=check, timeout=120)


def start_cluster(cluster_dir: Path) -> LocalCluster:
    env = {**os.environ, "SELDON_ROLLOUT_CACHE": str(CACHE), "SELDON_ROLLOUT_CLUSTER_DIR": str(cluster_dir)}
    run([SCRIPTS / "cluster", "up"], env=env, timeout=300)
    kubeconfig = cluster_dir / "kubeconfig"
    server = next(
        line.split("server:", 1)[1].strip() for line in kubeconfig.read_text().splitlines() if "server:" in line
    )
    return LocalCluster(dir=cluster_dir, kubeconfig=kubeconfig, server=server)


def stop_cluster(cluster_dir: Path) -> None:
    """Stop what `scripts/cluster up` started for `cluster_dir` (a no-op if nothing runs)."""
    env = {**os.environ, "SELDON_ROLLOUT_CACHE": str(CACHE), "SELDON_ROLLOUT_CLUSTER_DIR": str(cluster_dir)}
    run([SCRIPTS / "cluster", "down"], env=env, check=False, timeout=120)


@dataclass
class PulumiCli:
    """Runs `scripts/pulumi` (the built CLI with the offline settings) on a given backend and home."""

    backend_dir: Path
    home_dir: Path
    passphrase: str = TEST_PASSPHRASE
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
        env.update(
            SELDON_ROLLOUT_CACHE=str(CACHE),
            PULUMI_BACKEND_URL=f"file://{self.backend_dir}",
            PULUMI_HOME=str(self.home_dir),
            PULUMI_CONFIG_PASSPHRASE=self.passphrase,
        )
        env.update(self.extra_env)
        return env

    def run(
        self,
        *args: str,
        cwd: Path,
        stack: str | None = None,
        check: bool = True,
        timeout: float = COMMAND_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        """`scripts/pulumi ARGS [--stack STACK] --non-interactive` in `cwd`."""
        argv: list[str | os.PathLike[str]] = [SCRIPTS / "pulumi", *args]
        if stack is not None:
            argv += ["--stack", stack]
        argv.append("--non-interactive")
        return run(argv, env=self.env, cwd=cwd, check=check, timeout=timeout)


def make_pulumi_cli(backend_dir: Path, home_dir: Path) -> PulumiCli:
    backend_dir.mkdir(parents=True, exist_ok=True)
    home_dir.mkdir(parents=True, exist_ok=True)
    return PulumiCli(backend_dir=backend_dir, home_dir=home_dir)


@pytest.fixture(scope="session")
def toolchain_bin() -> Path:
    return require_executables(ENGINE + PROVIDER + SERVER + FORTIO)


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[LocalCluster]:
    require_executables(SERVER)
    # A short path: the cluster directory holds the data and logs of this session's server.
    with tempfile.TemporaryDirectory(prefix="seldon-rollout-cluster-") as tmp:
        cluster_dir = Path(tmp)
        try:
            yield start_cluster(cluster_dir)
        finally:
            stop_cluster(cluster_dir)


@pytest.fixture
def pulumi_cli(tmp_path: Path) -> PulumiCli:
    require_executables(ENGINE + PROVIDER)
    return make_pulumi_cli(tmp_path / "backend", tmp_path / "pulumi-home")
