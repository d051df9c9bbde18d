"""A picture of the experiment: weights per iteration, and the deciding metrics beside them."""

from __future__ import annotations

from pathlib import Path

from rollout.core.record import ExperimentRecord


def plot_history(record: ExperimentRecord, path: Path) -> Path:
    """Write a PNG with one panel for the weights and one per decision metric; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = record.spec
    state = record.state
    history = [h for h in state.history if not h.get("held")]
    versions = record.versions
    metrics = spec.decision_metrics()
    fig, axes = plt.subplots(1 + len(metrics), 1, figsize=(8, 2.4 * (1 + len(metrics))), sharex=True,
                             squeeze=False)
    iterations = [int(h["iteration"]) for h in history]
    ax = axes[0][0]
    for v in versions:
        ax.plot(iterations, [h["weights"].get(v, 0) for h in history], marker="o", label=v)
    ax.set_ylabel("weight (%)")
    ax.set_ylim(-5, 105)
    ax.set_title(f"{spec.name}: {state.stage}, promoted {state.promoted or '-'}")
    ax.legend(loc="center right")
    ax.grid(alpha=0.3)
    units = {m: record.units(m) for m in metrics}
    for ax, metric in zip((row[0] for row in axes[1:]), metrics, strict=True):
        seen: list[float] = []
        for v in versions:
            series = [(h.get("values") or {}).get(metric, {}).get(v) for h in history]  # none on a control's entry
            seen += [x for x in series if isinstance(x, (int, float))]
            ax.plot(iterations, series, marker=".", label=v)
        top = max((abs(x) for x in seen), default=0.0)
        for objective in spec.objectives:
            if objective.metric != metric:
                continue
            for key, bound in (("upperLimit", objective.upper_limit), ("lowerLimit", objective.lower_limit)):
                if bound is None:
                    continue
                limit = bound
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
