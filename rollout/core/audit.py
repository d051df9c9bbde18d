"""What a history entry keeps besides the decision: what was asked of Prometheus, the retries, the
objectives each version missed. Pure, and small on purpose (the record lives in the stack's outputs).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from rollout.core.outcomes import Snapshot
from rollout.core.spec import ExperimentSpec
from rollout.core.templating import ELAPSED_TIME, TemplateError, render

_BRACED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}(?![A-Za-z0-9_])")


def decision_inputs(spec: ExperimentSpec) -> tuple[str, ...]:
    """The metrics a decision reads: rewards and objectives, the sample sizes behind them, and requestCount.

    A history entry keeps these (the top-level `values` keep every metric of the last iteration).
    """
    known = {m.name: m for m in spec.metrics}
    names = [n for n in spec.decision_metrics() if n in known]
    for name in list(names):
        size = known[name].sample_size
        if size in known and size not in names:
            names.append(size)
    if spec.request_count in known and spec.request_count not in names:
        names.append(spec.request_count)
    return tuple(names)


def shared_query(template: str, variable_names: Iterable[str], elapsed: int) -> str:
    """A metric's query as rendered for one iteration, each version's variables left as `$name`.

    >>> shared_query('up{ns="$ns",job="${ns}_x"}[${elapsedTime}s]', ["ns"], 61)
    'up{ns="$ns",job="${ns}_x"}[61s]'
    """
    rendered = render(template, {**{name: "${" + name + "}" for name in variable_names}, ELAPSED_TIME: str(elapsed)})
    return _BRACED.sub(r"$\1", rendered)  # `${ns}` -> `$ns` where nothing could extend the name



def queries(spec: ExperimentSpec, snapshot: Snapshot, elapsed: int) -> dict[str, str | dict[str, str]]:
    """Per metric, what was asked of Prometheus for each value, losslessly shortened.

    The versions' queries differ only by their variables (listed in spec.versions), so one string with
    `$ns` etc. stands for all of them: kept only when rendering it with each version's variables gives
    back exactly the query sent for that version; otherwise the versions' queries are kept one by one.
    """
    names = sorted({name for version in spec.versions for name in version.variable_map()})
    inputs = decision_inputs(spec)
    out: dict[str, str | dict[str, str]] = {}
    for metric in spec.metrics:
        if metric.name not in inputs:
            continue
        sent = {v.name: o.query for v in spec.versions if (o := snapshot.get((metric.name, v.name))) and o.query}
        if not sent:
            continue
        try:
            shared = shared_query(metric.query, names, elapsed)
            exact = all(render(shared, v.variable_map()) == sent.get(v.name) for v in spec.versions if v.name in sent)
        except TemplateError:
            exact = False
        out[metric.name] = shared if exact else sent
    return out


def unmet(assessments: dict[str, dict[str, bool]]) -> dict[str, Any]:
    """`{"unmet": {version: [objective, ...]}}` for the versions that missed an objective; {} when none did."""
    unmet = {v: [c for c, met in conditions.items() if not met] for v, conditions in assessments.items()}
    unmet = {v: c for v, c in unmet.items() if c}
    return {"unmet": unmet} if unmet else {}


def audit(spec: ExperimentSpec, snapshot: Snapshot, elapsed: int) -> dict[str, Any]:
    """What was asked of Prometheus for the values (`queries`), and the retries it took (only when any)."""
    retries: dict[str, dict[str, int]] = {}
    inputs = decision_inputs(spec)
    for (metric, version), outcome in snapshot.items():
        if outcome.retries and metric in inputs:
            retries.setdefault(metric, {})[version] = outcome.retries
    return {"queries": queries(spec, snapshot, elapsed), **({"retries": retries} if retries else {})}
