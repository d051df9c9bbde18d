"""`python -m localenv --kubeconfig PATH --listen 127.0.0.1:PORT [--state-dir DIR]`.

Logs go to stderr. Once serving and synced with the cluster (the first successful read; it retries
until then), one line goes to stdout: `localenv ready: <url>`; with
`--state-dir`, the same facts are also written to `<dir>/localenv.json`. SIGTERM or SIGINT stops it
cleanly (exit 0).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from localenv.app import DEFAULT_POLL_SECONDS, DataPlane
from localenv.cluster import ApiServerSource, ClusterSource, KubeconfigError, ManifestSource

log = logging.getLogger("localenv")


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m localenv", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--kubeconfig", type=Path, help="read the objects from this API server")
    source.add_argument("--manifests", type=Path, help="read the objects from YAML files under this directory")
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument("--listen", type=_address, default=("127.0.0.1", 8080),
                        help="HOST:PORT to serve on (port 0: a free one); default 127.0.0.1:8080")
    parser.add_argument("--state-dir", type=Path, help="write localenv.json (url, pid) here")
    parser.add_argument("--poll-seconds", type=float, default=DEFAULT_POLL_SECONDS,
                        help="how often to read --manifests (an API server is watched) (default %(default)s)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser.parse_args(argv)


def _source(args: argparse.Namespace) -> ClusterSource:
    if args.manifests is not None:
        return ManifestSource(args.manifests)
    return ApiServerSource(args.kubeconfig, args.context)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        source = _source(args)
    except KubeconfigError as err:
        log.error("%s", err)
        return 2
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    started = time.monotonic()
    try:
        plane = DataPlane(source, args.listen[0], args.listen[1], args.poll_seconds)
    except OSError as err:
        log.error("cannot listen on %s:%d: %s", *args.listen, err)
        return 1
    plane.start()
    while not plane.sync.synced.wait(0.1):
        if stopping.is_set():
            plane.stop()
            return 0
    log.info("models trained and cluster read in %.1fs", time.monotonic() - started)
    if args.state_dir is not None:
        args.state_dir.mkdir(parents=True, exist_ok=True)
        (args.state_dir / "localenv.json").write_text(json.dumps({"url": plane.url, "pid": os.getpid()}) + "\n")
    print(f"localenv ready: {plane.url}", flush=True)
    stopping.wait()
    log.info("stopping")
    plane.stop()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
