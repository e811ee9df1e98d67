"""`distill inspect`'s PNG plots, from the summary that distill/look/inspect.py reads.

Each plot is a function that returns a matplotlib Figure (never pyplot: no global state, no
display), so a test can read back its title and the plotted values; `write_plots` saves the
ones whose data exist under DIR/plots/.
"""

from __future__ import annotations

from pathlib import Path

from .. import shards
from ..errors import UserError

COLOURS = {"kept": "tab:green", "rejected": "tab:red", "traces": "tab:blue"}


def _figure(width: float = 7, height: float = 4):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    return fig, fig.subplots()


def completion_lengths(groups: dict) -> "Figure":  # noqa: F821
    """Histogram of completion tokens per sample: kept vs rejected, or all traces. `groups` maps a
    label to a list of numpy arrays (one per shard)."""
    import numpy as np

    data = {k: np.concatenate(v) if len(v) else np.zeros(0) for k, v in groups.items()}
    fig, ax = _figure()
    top = max([float(a.max()) for a in data.values() if a.size] + [1.0])
    bins = np.linspace(0, top, 41)
    shown = {k: a for k, a in data.items() if a.size}
    # side by side per bin, not overlaid: overlapping translucent bars mix into a third colour
    ax.hist(list(shown.values()), bins=bins, color=[COLOURS.get(k, "tab:gray") for k in shown],
            label=[f"{k} ({a.size} samples, median {np.median(a):g})" for k, a in shown.items()])
    for label, arr in shown.items():
        ax.axvline(float(np.median(arr)), color=COLOURS.get(label, "tab:gray"), linestyle="--", linewidth=1)
    title = "Completion length: kept vs rejected" if set(data) == {"kept", "rejected"} else "Completion length of the traces"
    ax.set_title(title)
    ax.set_xlabel("completion tokens per sample (dashed: median)")
    ax.set_ylabel("samples")
    ax.legend()
    fig.tight_layout()
    return fig


def kept_by_source(by_source: dict) -> "Figure":  # noqa: F821
    """Bar per source: kept rows as a percentage of the rows that came in, labelled kept/in."""
    names = list(by_source)
    rates = [100 * s["kept"] / s["rows_in"] if s["rows_in"] else 0.0 for s in by_source.values()]
    fig, ax = _figure(max(5, 1 + 0.8 * len(names)), 4)
    bars = ax.bar(names, rates, color=COLOURS["kept"])
    ax.bar_label(bars, labels=[f"{s['kept']}/{s['rows_in']} ({r:.1f}%)" for s, r in zip(by_source.values(), rates)], padding=2)
    ax.set_ylim(0, 110)  # room for the labels above a 100% bar
    ax.set_title("Kept rate by source (kept / rows in)")
    ax.set_xlabel("source")
    ax.set_ylabel("kept (% of rows in)")
    if len(names) > 4:
        ax.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    return fig


def training_loss(loss: list, eval_loss: list | None = None) -> "Figure":  # noqa: F821
    """Training loss per logged optimizer step (and the eval loss, when the log has one)."""
    fig, ax = _figure()
    steps, values = zip(*loss)
    ax.plot(steps, values, marker="." if len(loss) < 50 else None, alpha=0.5 if len(loss) >= 10 else 1,
            label="training loss")
    if len(loss) >= 10:  # per-step loss is noisy: a running mean shows the trend
        k = max(3, len(loss) // 10)
        smooth = [sum(values[max(0, i - k + 1):i + 1]) / len(values[max(0, i - k + 1):i + 1]) for i in range(len(values))]
        ax.plot(steps, smooth, color="black", linewidth=1.5, label=f"running mean of {k} steps")
    if eval_loss:
        ax.plot(*zip(*eval_loss), marker="o", label="eval loss")
    if len(loss) >= 10 or eval_loss:
        ax.legend()
    ax.set_title("Training loss per step")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    fig.tight_layout()
    return fig


def scores(benchmarks: dict, model: str | None = None) -> "Figure":  # noqa: F821
    """Bar per benchmark: pass@1 with its standard error; the R1 paper's pass@1 as a black
    diamond where scores.json carries it."""
    titles = [b.get("title") or name for name, b in benchmarks.items()]
    values = [b["pass@1"] for b in benchmarks.values()]
    errors = [b.get("pass@1_se") or 0.0 for b in benchmarks.values()]
    fig, ax = _figure(max(7, 1 + 1.2 * len(titles)), 4.4)
    positions = range(len(titles))
    ax.bar(positions, values, yerr=errors, capsize=6, color="tab:blue", label="pass@1 ± SE")
    # the numbers go under the benchmark names: on or above a bar they collide with its error bar
    ax.set_xticks(positions, labels=[f"{t}\n{v:.1f} ± {e:.1f}" for t, v, e in zip(titles, values, errors)])
    refs = [(i, b["reference"]["pass@1"]) for i, b in enumerate(benchmarks.values())
            if (b.get("reference") or {}).get("pass@1") is not None]
    if refs:
        ax.scatter([i for i, _ in refs], [v for _, v in refs], marker="D", color="black", zorder=3,
                   label="R1 paper pass@1")
    ax.set_ylim(0, 120)  # room for the legend above a 100% bar
    ax.set_title("pass@1 per benchmark (± standard error over problems)")
    ax.set_xlabel("benchmark")
    ax.set_ylabel("pass@1 (%)")
    ax.legend(loc="upper center", ncol=2)
    if model:
        # long local paths: keep the end, which names the model or run (…/runs/NAME/student)
        name = model if len(model) <= 110 else "…" + model[-109:]
        fig.text(0.01, 0.01, f"model: {name}", fontsize=7, color="dimgray")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def figures(summary: dict) -> dict:
    """File name → Figure, for each plot whose data the run folder holds."""
    stages = summary["stages"]
    out = {}
    filtered, traces = stages.get("filtered"), stages.get("traces")
    if filtered and any(len(v) for v in filtered["_tokens"].values()):
        out["completion_lengths.png"] = completion_lengths(filtered["_tokens"])
    elif traces and traces["rows"]:
        out["completion_lengths.png"] = completion_lengths(traces["_tokens"])
    if filtered and filtered.get("by_source"):
        out["kept_by_source.png"] = kept_by_source(filtered["by_source"])
    student = stages.get("student")
    if student and student["loss"]:
        out["training_loss.png"] = training_loss(student["loss"], student["eval_loss"])
    evals = stages.get("eval")
    if evals and evals["benchmarks"]:
        out["scores.png"] = scores(evals["benchmarks"], evals["model"])
    return out


def write_plots(summary: dict, folder: Path) -> list[Path]:
    """Save the plots under `folder` (DIR/plots); the paths written."""
    made = figures(summary)
    if not made:
        return []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, fig in made.items():
            with shards.writing(folder / name):
                fig.savefig(folder / name)  # the Agg canvas: no display needed
            paths.append(folder / name)
    except OSError as e:
        raise UserError(f"{folder}: cannot write the plots ({e.strerror or e}); rerun with --no-plots") from None
    return paths
