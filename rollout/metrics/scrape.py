"""The cadence check at create: `intervalSeconds` against the scrape interval of the metrics' targets.

A look that comes sooner than every second scrape often finds no new sample of a version: it adds no
evidence, and the holds for missing data pile up toward `consecutiveErrorLimit` (10 s looks against
30 s and 60 s scrapes ended 55% and 100% of the experiments Failed for lack of data, issue 16). So
create refuses an `intervalSeconds` under twice the longest scrape interval of the targets the metrics
come from, giving both numbers, unless the experiment sets `allowShortInterval`.

The targets: the series the metrics' queries name (`name{...}`, `name[...]` or a bare `name`), grouped
by their target labels `job` and `instance` in one instant query, matched with the active targets of
Prometheus' targets API (`GET /api/v1/targets?state=active`; `web/api/v1/api.go`, `targets`: each
`activeTargets` entry has `labels`, the target's labels after relabelling, which its series carry,
and `scrapeInterval`, a duration such as `15s` or `1m30s`, since Prometheus 2.30). Not checked, and
recorded so, when no series of the metrics exists yet (a first `up` that creates the deployments too),
when no active target matches, or when the backend has no targets API (a 404) or gives no interval;
a Prometheus that does not answer fails create as the build-info preflight does (BackendError).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rollout.core.spec import ExperimentSpec
from rollout.metrics.prometheus import BackendError, PrometheusClient

TARGETS_PATH = "/api/v1/targets"
LOOKS_PER_SCRAPE = 2
"""`intervalSeconds` must be at least this many scrape intervals."""

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_IGNORED = re.compile(r"\{[^}]*\}|\[[^\]]*\]|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![\w.:$])[A-Za-z_:][\w:]*(?![\w:])(?!\s*\()")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan", "by", "without", "on", "ignoring",
                       "group_left", "group_right", "atan2"})
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def series_names(query: str) -> set[str]:
    """The metric names a PromQL query selects (what its strings, label matchers, ranges and grouping
    clauses leave, without function names and keywords).

    >>> sorted(series_names('sum(increase(a_count{ns="$ns"}[${elapsedTime}s])) by (le) / b or on() vector(0)'))
    ['a_count', 'b']
    """
    text = _IGNORED.sub(" ", _STRINGS.sub('""', query))
    return {name for name in _NAME.findall(text) if name not in _KEYWORDS}


def duration_seconds(text: str) -> float | None:
    """A Prometheus duration (`1m30s`, `500ms`) in seconds; None when it is not one.

    >>> duration_seconds("1m30s"), duration_seconds("500ms"), duration_seconds("soon")
    (90.0, 0.5, None)
    """
    parts = _DURATION.findall(text)
    if not parts or "".join(n + unit for n, unit in parts) != text:
        return None
    return float(sum(int(n) * _UNIT_SECONDS[unit] for n, unit in parts))


@dataclass(frozen=True)
class Cadence:
    """What the check found: the longest scrape interval of the metrics' targets (None: not checked), why, and
    the refusal (None: the experiment may start)."""

    scrape_seconds: float | None
    note: str
    refusal: str | None = None


def _group_query(names: set[str]) -> str:
    return f'count by (job, instance) ({{__name__=~"{"|".join(sorted(names))}"}})'


def _matches(target: Any, keys: list[dict[str, str]]) -> bool:
    labels = target.get("labels") if isinstance(target, dict) else None
    return isinstance(labels, dict) and any(all(labels.get(k) == v for k, v in key.items()) for key in keys)


def check_cadence(spec: ExperimentSpec, client: PrometheusClient, at: float) -> Cadence:
    """The cadence check for `spec` against the Prometheus of `client`, its series as of unix time `at`.

    Raises BackendError when Prometheus does not answer (anything but a 404 of the targets API)."""
    names = set().union(*(series_names(m.query) for m in spec.metrics))
    result = client.query(_group_query(names), at).body.get("data", {}).get("result") if names else []
    keys = [{k: v for k, v in r["metric"].items() if k in ("job", "instance")} for r in result or []
            if isinstance(r, dict) and isinstance(r.get("metric"), dict)]
    keys = [key for key in keys if key]
    if not keys:
        return Cadence(None, "scrape interval not checked: no series of the experiment's metrics yet")
    try:
        data = client.api(TARGETS_PATH, {"state": "active"})
    except BackendError as err:
        if err.status == 404:
            return Cadence(None, f"scrape interval not checked: {err} (no targets API)")
        raise
    targets = [t for t in (data or {}).get("activeTargets") or [] if _matches(t, keys)]
    seconds = [s for t in targets if (s := duration_seconds(str(t.get("scrapeInterval", "")))) is not None]
    if not seconds:
        return Cadence(None, "scrape interval not checked: no active target of the experiment's series "
                             "gives its scrape interval")
    longest = max(seconds)
    jobs = ", ".join(sorted({str(t["labels"].get("job", "?")) for t in targets}))
    of = f"{longest:g} s (the longest of {len(targets)} target(s) of job {jobs} the metrics come from)"
    if spec.interval_seconds >= LOOKS_PER_SCRAPE * longest:
        return Cadence(longest, f"scrape interval {of}; intervalSeconds {spec.interval_seconds} is at least twice it")
    if spec.allow_short_interval:
        return Cadence(longest, f"intervalSeconds {spec.interval_seconds} is under twice the scrape interval {of}: "
                                "allowed by allowShortInterval")
    return Cadence(longest, "", (
        f"experiment.intervalSeconds {spec.interval_seconds} is under twice the scrape interval {of}: a look would "
        f"often find no new sample; set intervalSeconds to {LOOKS_PER_SCRAPE * longest:g} or more, or "
        "experiment.allowShortInterval: true to start anyway"))
