"""A picture of the experiment: weights per iteration, and the deciding metrics beside them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def plot_history(record: Mapping[str, Any], path: Path) -> Path:
    """Write a PNG with one panel for the weights and one per decision metric; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = record.get("spec") or {}
    history = [h for h in record.get("history") or [] if not h.get("held")]
    versions = [v["name"] for v in spec.get("versions", [])] or list(record.get("weights", {}))
    metrics = [str(r["metric"]).rsplit("/", 1)[-1] for r in spec.get("rewards") or []]
    metrics += [str(o["metric"]).rsplit("/", 1)[-1] for o in spec.get("objectives") or []]
    metrics = list(dict.fromkeys(metrics))
    fig, axes = plt.subplots(1 + len(metrics), 1, figsize=(8, 2.4 * (1 + len(metrics))), sharex=True,
                             squeeze=False)
    iterations = [int(h["iteration"]) for h in history]
    ax = axes[0][0]
    for v in versions:
        ax.plot(iterations, [h["weights"].get(v, 0) for h in history], marker="o", label=v)
    ax.set_ylabel("weight (%)")
    ax.set_ylim(-5, 105)
    ax.set_title(f"{record.get('name', 'experiment')}: {record.get('stage')}, promoted {record.get('promoted') or '-'}")
    ax.legend(loc="center right")
    ax.grid(alpha=0.3)
    units = {m: next((e.get("units") for e in (record.get("values") or {}).get(m, {}).values()
                      if e.get("units")), "") for m in metrics}
    for ax, metric in zip((row[0] for row in axes[1:]), metrics, strict=True):
        seen: list[float] = []
        for v in versions:
            series = [h["values"].get(metric, {}).get(v) for h in history]
            seen += [x for x in series if isinstance(x, (int, float))]
            ax.plot(iterations, series, marker=".", label=v)
        top = max((abs(x) for x in seen), default=0.0)
        for objective in spec.get("objectives") or []:
            if str(objective["metric"]).rsplit("/", 1)[-1] != metric:
                continue
            for key in ("upperLimit", "lowerLimit"):
                if objective.get(key) is None:
                    continue
                limit = float(objective[key])
                if top and abs(limit) > 5 * top:  # a far-away line would flatten the data: name it instead
                    ax.text(0.99, 0.95, f"{key} {limit:g} (off scale)", transform=ax.transAxes, ha="right",
                            va="top", fontsize=8, color="red")
                else:
                    ax.axhline(limit, color="red", linestyle="--", linewidth=1, label=key)
        ax.set_ylabel(f"{metric}\n({units[metric]})" if units[metric] else metric, fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1][0].set_xlabel("iteration")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
