"""What a fortio Job runs, read from its spec as the kubelet would: argv, env, emptyDir mounts.

The container that runs `fortio load` (its `command` + `args`, or the fortio image's entrypoint
with `args`) is run verbatim by `localenv.load` with the real fortio binary that `make toolchain`
builds. Before that, as the kubelet does: the container's `env` is built in order (each value
may use the ones before it) and every `$(VAR)` in the command and args is expanded from it
(`$$` is a literal `$`, an undefined `$(VAR)` stays as written). Other containers of the Job (the
seed's busybox sidecar) are not run.

Because the process runs on this machine rather than in a pod, a few things are refused, each
with its reason (`UnsupportedLoad`): a fortio subcommand other than `load`; a target that is not
an http(s) URL; the flags that would send requests elsewhere than the target (`-resolve` to a
non-loopback address, `-L`, `-sync`, `-M`, `-P`); an absolute path outside the container's
emptyDir mounts, or a `..` path segment (the process must not write outside its own directory).
Paths under an emptyDir mount (the seed's `-json /shared/fortiooutput.json`) are mapped to a
directory of the Job's own.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_BACKOFF_LIMIT = 6
"""`spec.backoffLimit` when a Job does not set it (the Job controller's default)."""
FORTIO_IMAGE = re.compile(r"^(?:.*/)?fortio(?::[^/]*)?(?:@.*)?$")
"""`fortio/fortio`, `fortio/fortio:1.68.2`, `docker.io/fortio/fortio@sha256:...`: entrypoint `fortio`."""
REDIRECTING_FLAGS = {"L": "follows redirects", "sync": "fetches a URL", "M": "runs a proxy", "P": "runs a proxy"}
_PARENT = re.compile(r"(^|/)\.\.(/|$)")


class UnsupportedLoad(ValueError):
    """A Job whose fortio container cannot run here (not `fortio load`, a refused flag or path...)."""


class FortioMissing(RuntimeError):
    """The fortio executable is not built."""


@dataclass(frozen=True)
class FortioRun:
    """One fortio container of a Job: what to run, with which environment and mounts."""

    job: str
    argv: tuple[str, ...]
    """After `$(VAR)` expansion; `argv[0]` is the container's own (`fortio`), the last is the target."""
    env: tuple[tuple[str, str], ...]
    mounts: tuple[tuple[str, str], ...] = ()
    """(mountPath, volume name) of the container's emptyDir volumes."""
    backoff_limit: int = DEFAULT_BACKOFF_LIMIT

    @property
    def target(self) -> str:
        return self.argv[-1]


def fortio_executable() -> Path:
    """The fortio that `make toolchain` builds: `$SELDON_ROLLOUT_FORTIO`, else the cache's `bin/fortio`."""
    explicit = os.environ.get("SELDON_ROLLOUT_FORTIO")
    if explicit:
        path = Path(explicit)
    else:
        cache = os.environ.get("SELDON_ROLLOUT_CACHE") or str(Path.home() / ".cache" / "seldon-rollout")
        path = Path(cache) / "bin" / "fortio"
    if not os.access(path, os.X_OK):
        raise FortioMissing(f"fortio is not built (no executable {path}): run `make toolchain` "
                            f"(or `scripts/toolchain fortio`) to build it")
    return path


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' dependent-variable expansion of `$(VAR)` in `text`.

    `$(NAME)` is NAME's value when NAME is defined, else stays `$(NAME)`; `$$` is `$`; any other
    `$` (a lone one, `$X`, an unclosed `$(`) is kept as written.
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$" or i + 1 == len(text):
            out.append(char)
            i += 1
            continue
        following = text[i + 1]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "(":
            close = text.find(")", i + 2)
            if close < 0:
                out.append("$(")
                i += 2
                continue
            name = text[i + 2:close]
            out.append(env.get(name, f"$({name})"))
            i = close + 1
        else:
            out.append("$" + following)
            i += 2
    return "".join(out)


def container_env(container: Mapping[str, Any]) -> dict[str, str]:
    """The container's `env`, in order, each value expanded with the variables defined before it."""
    env: dict[str, str] = {}
    for entry in container.get("env") or []:
        name = str(entry.get("name", ""))
        if "valueFrom" in entry:
            raise UnsupportedLoad(f"env {name}: valueFrom is not supported here")
        env[name] = expand(str(entry.get("value", "")), env)
    return env


def fortio_command(container: Mapping[str, Any]) -> list[str] | None:
    """The container's command line if it runs fortio (its command, or the fortio image with args)."""
    command = [str(c) for c in container.get("command") or []]
    args = [str(a) for a in container.get("args") or []]
    if command:
        return [*command, *args] if command[0].rsplit("/", 1)[-1] == "fortio" else None
    if args and FORTIO_IMAGE.match(str(container.get("image", ""))):
        return ["fortio", *args]
    return None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_args(name: str, argv: Sequence[str], mount_paths: Sequence[str]) -> None:
    flags = argv[2:-1]
    for i, arg in enumerate(flags):
        if arg.startswith("-") and len(arg) > 1:
            flag, eq, value = arg.lstrip("-").partition("=")
            if flag in REDIRECTING_FLAGS:
                raise UnsupportedLoad(f"{name}: -{flag} {REDIRECTING_FLAGS[flag]}: not run here (loopback only)")
            if flag == "resolve":
                value = value if eq else (flags[i + 1] if i + 1 < len(flags) else "")
                if not is_loopback(value):
                    raise UnsupportedLoad(f"{name}: -resolve {value!r} is not a loopback address")
            arg = value if eq else arg
        if _PARENT.search(arg):
            raise UnsupportedLoad(f"{name}: argument {arg!r} has a '..' path segment")
        if arg.startswith("/") and not any(arg == m or arg.startswith(m.rstrip("/") + "/") for m in mount_paths):
            raise UnsupportedLoad(f"{name}: path {arg!r} is outside the container's emptyDir mounts")


def fortio_run(job: Mapping[str, Any]) -> FortioRun | None:
    """What the Job's fortio container runs; None if no container runs fortio. Raises `UnsupportedLoad`."""
    name = str((job.get("metadata") or {}).get("name", ""))
    pod = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    for container in pod.get("containers") or []:
        command = fortio_command(container)
        if command is not None:
            break
    else:
        return None
    if len(command) < 2 or command[1] != "load":
        raise UnsupportedLoad(f"{name}: only `fortio load` runs here, not {' '.join(command[:2])!r}")
    env = container_env(container)
    argv = [expand(arg, env) for arg in command]
    target = urlsplit(argv[-1]) if len(argv) > 2 else None
    if target is None or target.scheme not in ("http", "https") or not target.hostname:
        raise UnsupportedLoad(f"{name}: the last argument must be the target http(s) URL, got {argv[-1]!r}")
    empty_dirs = {str(v.get("name")) for v in pod.get("volumes") or [] if "emptyDir" in v}
    mounts = tuple((str(m["mountPath"]), str(m["name"])) for m in container.get("volumeMounts") or []
                   if m.get("name") in empty_dirs and m.get("mountPath"))
    _check_args(name, argv, [path for path, _ in mounts])
    backoff = (job.get("spec") or {}).get("backoffLimit")
    return FortioRun(job=name, argv=tuple(argv), env=tuple(env.items()), mounts=mounts,
                     backoff_limit=DEFAULT_BACKOFF_LIMIT if backoff is None else int(backoff))


def local_argv(run: FortioRun, executable: Path, volumes: Path, target: str) -> list[str]:
    """The command line to run here: the built fortio, mount paths under `volumes/<volume>`, `target`."""
    def local(arg: str) -> str:
        flag, eq, value = arg.partition("=") if arg.startswith("-") else ("", "", arg)
        for path, volume in run.mounts:
            base = path.rstrip("/")
            if value == path or value.startswith(base + "/"):
                return f"{flag}{eq}{volumes / volume}{value[len(base):]}"
        return arg
    return [str(executable), *(local(a) for a in run.argv[1:-1]), target]


def json_output(argv: Sequence[str]) -> str | None:
    """The file fortio writes its JSON result to (`-json PATH`), if any and not stdout."""
    for i, arg in enumerate(argv):
        flag, eq, value = arg.lstrip("-").partition("=")
        if arg.startswith("-") and flag == "json":
            path = value if eq else (argv[i + 1] if i + 1 < len(argv) else "")
            return path if path and path != "-" else None
    return None
