"""A real Prometheus on loopback serving series given as samples (name, labels, [(ms, value), ...]).

For checks of an emulation against the real query engine (tests/test_promql_emulation.py): the samples
are written as OpenMetrics text, backfilled with `promtool tsdb create-blocks-from openmetrics`, and the
server started on the data dir as `testbed.promserver` starts the standard dataset's.

OpenMetrics timestamps are seconds; promtool keeps `int64(seconds * 1000)` (model/textparse/
openmetricsparse.go, v2.42.0), a truncation: `om_timestamp` writes a millisecond time so that it comes
back exactly, and refuses one that cannot.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from testbed.promserver import PrometheusServer, PrometheusUnavailable, free_port, prometheus_binary

Samples = Sequence[tuple[int, float]]


def om_timestamp(ms: int) -> str:
    for text in (f"{ms / 1000:.3f}", repr(ms / 1000), f"{(ms + 0.5) / 1000:.4f}"):
        if int(float(text) * 1000) == ms:
            return text
    raise ValueError(f"{ms} ms does not survive promtool's seconds-to-milliseconds truncation")


def openmetrics(series: Iterable[tuple[str, Mapping[str, str], Samples]]) -> str:
    """Counters (one `# TYPE` per family, `_total` names kept as given) in OpenMetrics text."""
    by_family: dict[str, list[str]] = {}
    for name, labels, samples in series:
        family = name.removesuffix("_total") if name.endswith("_total") else name
        kind = "counter" if name.endswith("_total") else "unknown"
        body = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        lines = by_family.setdefault(f"# TYPE {family} {kind}", [])
        lines.extend(f"{name}{{{body}}} {value!r} {om_timestamp(ms)}" for ms, value in samples)
    out = [line for header, lines in by_family.items() for line in (header, *lines)]
    return "\n".join([*out, "# EOF"]) + "\n"


class BackfilledPrometheus(PrometheusServer):
    """A server whose data dir holds exactly `series`; `start()` / `stop()` / `query()` as the base class."""

    def __init__(self, workdir: Path, series: Iterable[tuple[str, Mapping[str, str], Samples]]) -> None:
        super().__init__(workdir, workloads=())
        self.text = openmetrics(series)

    def start(self) -> None:
        prometheus, promtool = prometheus_binary("prometheus"), prometheus_binary("promtool")
        data = self.workdir / "data"
        data.mkdir(parents=True)
        source = self.workdir / "series.om"
        source.write_text(self.text)
        backfill = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet",
                                   str(source), str(data)], capture_output=True, text=True, check=False)
        if backfill.returncode != 0:
            raise PrometheusUnavailable(f"promtool backfill failed: {backfill.stderr.strip()}")
        config = self.workdir / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1m\nscrape_configs: []\n")
        for _ in range(3):
            port = free_port()  # another process may take it between probe and bind
            self._spawn(prometheus, config, data, port)
            if self._wait_ready(f"http://127.0.0.1:{port}"):
                self.url = f"http://127.0.0.1:{port}"
                return
            self.stop()
        raise PrometheusUnavailable(f"prometheus did not become ready; log:\n{self.log_tail()}")

