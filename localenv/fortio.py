"""What a fortio load Job asks for, read from its spec: `fortio load [flags] URL` with `$(VAR)`s.

Reads the shape of the seed's fortio.yaml (and of `components.load.fortio_job_spec`): the container
that runs `fortio load`, its env for `$(URL)`, and the flags `-t`, `-qps`, `-c`, `-n`, `-H`,
`-payload`, `-content-type`, `-timeout`, `-json` (ignored: the output file). Any other flag is an
`UnsupportedLoad`, as is `-qps` 0 or less (fortio's "as fast as possible", never run here).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

VALUE_FLAGS = ("t", "qps", "c", "n", "H", "payload", "content-type", "timeout", "json")
DEFAULT_DURATION = 5.0
DEFAULT_CONNECTIONS = 4
DEFAULT_TIMEOUT = 3.0
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class UnsupportedLoad(ValueError):
    """A Job this data plane cannot turn into load (not fortio load, unknown flag, bad value)."""


@dataclass(frozen=True)
class LoadSpec:
    """One load: `qps` requests per second in total over `connections`, like fortio's `-qps` and `-c`."""

    job: str
    url: str
    method: str
    headers: tuple[tuple[str, str], ...]
    payload: bytes | None
    qps: float
    connections: int = DEFAULT_CONNECTIONS
    duration_seconds: float | None = DEFAULT_DURATION
    """None: until the Job is deleted (fortio's `-t 0`)."""
    calls: int | None = None
    """Stop after this many requests in total (fortio's `-n`), if set."""
    timeout_seconds: float = DEFAULT_TIMEOUT

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def go_duration(text: str) -> float:
    """Seconds in a Go duration: `6000s`, `1m30s`, `250ms`, `0`."""
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise UnsupportedLoad(f"not a duration: {text!r}")
    return total


def expand(arg: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: defined variables are replaced, `$$` is a literal `$`."""
    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)
    return _VAR.sub(sub, arg)


def _flags(args: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """Go `flag` parsing of fortio's value flags: (flag, value) pairs in order, then positionals."""
    pairs: list[tuple[str, str]] = []
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] not in ("-", "--"):
        name, eq, value = args[i].lstrip("-").partition("=")
        if name not in VALUE_FLAGS:
            raise UnsupportedLoad(f"unsupported fortio flag -{name}")
        if not eq:
            if i + 1 >= len(args):
                raise UnsupportedLoad(f"flag -{name} needs a value")
            i += 1
            value = args[i]
        pairs.append((name, value))
        i += 1
    if i < len(args) and args[i] == "--":
        i += 1
    return pairs, args[i:]


def _number(name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError as err:
        raise UnsupportedLoad(f"-{name}: not a number: {value!r}") from err


def fortio_container(job: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The container that runs `fortio load`, or None (the Job is not a fortio load)."""
    containers = (((job.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    for container in containers:
        command = [*(container.get("command") or []), *(container.get("args") or [])]
        if len(command) >= 2 and str(command[0]).rsplit("/", 1)[-1] == "fortio" and command[1] == "load":
            return dict(container)
    return None


def load_spec(job: Mapping[str, Any]) -> LoadSpec | None:
    """The load a Job describes; None if it runs no `fortio load`. Raises `UnsupportedLoad`."""
    container = fortio_container(job)
    if container is None:
        return None
    name = str((job.get("metadata") or {}).get("name", ""))
    env = {str(e["name"]): str(e.get("value", "")) for e in container.get("env") or [] if "name" in e}
    args = [expand(str(a), env) for a in [*(container.get("command") or []), *(container.get("args") or [])][2:]]
    pairs, positionals = _flags(args)
    if len(positionals) != 1:
        raise UnsupportedLoad(f"{name}: expected one URL after the flags, got {positionals!r}")
    url = positionals[0]
    if not url.startswith(("http://", "https://")):
        raise UnsupportedLoad(f"{name}: URL must be http(s), got {url!r}")
    values = dict(pairs)
    headers = []
    for flag, value in pairs:
        if flag == "H":
            key, colon, val = value.partition(":")
            if not colon or not key.strip():
                raise UnsupportedLoad(f"{name}: header must be 'Name: value', got {value!r}")
            headers.append((key.strip(), val.strip()))
    if "content-type" in values:
        headers.append(("Content-Type", values["content-type"]))
    qps = _number("qps", values.get("qps", "8"))
    if qps <= 0:
        raise UnsupportedLoad(f"{name}: -qps {qps:g} (unlimited) is not supported; give a positive rate")
    connections = int(_number("c", values.get("c", str(DEFAULT_CONNECTIONS))))
    if connections < 1:
        raise UnsupportedLoad(f"{name}: -c must be at least 1")
    duration = go_duration(values.get("t", f"{DEFAULT_DURATION:g}s"))
    calls = int(_number("n", values["n"])) if "n" in values else None
    if calls:
        duration = 0.0  # fortio: -n wins over -t
    payload = values["payload"].encode() if "payload" in values else None
    return LoadSpec(job=name, url=url, method="POST" if payload is not None else "GET",
                    headers=tuple(headers), payload=payload, qps=qps, connections=connections,
                    duration_seconds=duration or None, calls=calls or None,
                    timeout_seconds=go_duration(values.get("timeout", f"{DEFAULT_TIMEOUT:g}s")))
