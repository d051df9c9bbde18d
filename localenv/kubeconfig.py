"""Just enough of a kubeconfig to call an API server with `requests`: server, CA, token, client cert."""

from __future__ import annotations

import atexit
import base64
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class KubeconfigError(ValueError):
    """The kubeconfig is missing, malformed, or uses an authentication this reader does not support."""


@dataclass(frozen=True)
class Credentials:
    """Where the API server is and how to authenticate to it."""

    server: str
    verify: str | bool
    """A CA bundle path, True (system CAs) or False (insecure-skip-tls-verify)."""
    token: str | None = None
    cert: tuple[str, str] | None = None
    """Client certificate and key files."""


def _named(items: Any, name: str, kind: str) -> dict[str, Any]:
    for item in items or []:
        if isinstance(item, dict) and item.get("name") == name:
            body = item.get(kind)
            return body if isinstance(body, dict) else {}
    raise KubeconfigError(f"no {kind} named {name!r} in the kubeconfig")


def _file_or_data(section: dict[str, Any], key: str, base: Path, scratch: Path) -> str | None:
    """The path of `key` (a file) or of `key-data` (base64, written to `scratch`), or None."""
    if section.get(f"{key}-data"):
        path = scratch / key
        path.write_bytes(base64.b64decode(section[f"{key}-data"]))
        return str(path)
    if section.get(key):
        return str((base / section[key]).resolve())
    return None


def load_credentials(path: Path, context: str | None = None) -> Credentials:
    """Read `path` (the current context unless `context` is given) into `Credentials`.

    Embedded certificate data is written to a private temporary directory removed when the
    process exits. `exec` and `auth-provider` users are not supported.
    """
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise KubeconfigError(f"cannot read kubeconfig {path}: {err}") from err
    if not isinstance(config, dict):
        raise KubeconfigError(f"kubeconfig {path} is not a mapping")
    name = context or config.get("current-context")
    if not name:
        raise KubeconfigError(f"kubeconfig {path} has no current-context")
    ctx = _named(config.get("contexts"), name, "context")
    cluster = _named(config.get("clusters"), ctx.get("cluster", ""), "cluster")
    user = _named(config.get("users"), ctx.get("user", ""), "user") if ctx.get("user") else {}
    if "exec" in user or "auth-provider" in user:
        raise KubeconfigError("kubeconfig users with exec or auth-provider are not supported")
    server = cluster.get("server")
    if not isinstance(server, str) or not server:
        raise KubeconfigError(f"cluster of context {name!r} has no server")
    scratch = Path(tempfile.mkdtemp(prefix="localenv-kubeconfig-"))
    os.chmod(scratch, 0o700)
    atexit.register(shutil.rmtree, scratch, True)
    base = path.parent
    ca = _file_or_data(cluster, "certificate-authority", base, scratch)
    verify: str | bool = False if cluster.get("insecure-skip-tls-verify") else (ca or True)
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = (base / user["tokenFile"]).read_text().strip()
    cert = _file_or_data(user, "client-certificate", base, scratch)
    key = _file_or_data(user, "client-key", base, scratch)
    return Credentials(server=server.rstrip("/"), verify=verify, token=token or None,
                       cert=(cert, key) if cert and key else None)
