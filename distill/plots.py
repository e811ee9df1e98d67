"""`distill inspect`'s PNG plots, from the summary that distill/look/inspect.py reads.

Each plot is a function that returns a matplotlib Figure (never pyplot: no global state, no
display), so a test can read back its title and the plotted values; `write_plots` saves the
ones whose data exist under DIR/plots/.
"""

from __future__ import annotations

from pathlib import Path

from . import shards
from .errors import UserError

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
    """Bar per source: kept rows as a percentage of the rows that came in, labelled kept/in.
    The axis ends at 100%; a label that would go above it sits inside its bar instead. A lone
    source gets a bar of the usual width, not one across the whole plot."""
    names = list(by_source)
    rates = [100 * s["kept"] / s["rows_in"] if s["rows_in"] else 0.0 for s in by_source.values()]
    fig, ax = _figure(max(5, 1 + 0.8 * len(names)), 4)
    ax.bar(range(len(names)), rates, width=0.6, color=COLOURS["kept"], tick_label=names)
    for i, (s, r) in enumerate(zip(by_source.values(), rates)):
        inside = r > 90
        ax.text(i, r - 2 if inside else r + 2, f"{s['kept']}/{s['rows_in']} ({r:.1f}%)", ha="center",
                va="top" if inside else "bottom", color="white" if inside else "black")
    ax.set_ylim(0, 100)
    ax.set_xlim(-0.5 if len(names) > 1 else -1.0, len(names) - 0.5 if len(names) > 1 else 1.0)
    ax.set_title("Kept rate by source (kept / rows in)")
    ax.set_xlabel("source")
    ax.set_ylabel("kept (% of rows in)")
    if len(names) > 4:
        ax.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    return fig


def training_loss(loss: list, eval_loss: list | None = None, tokens: list | None = None) -> "Figure":  # noqa: F821
    """Training loss per logged optimizer step (and the eval loss, when the log has one).

    `tokens`: each logged step's batch tokens (metrics.loss_points). A step whose batch held less
    than half the median's (the leftover rows at the end of an epoch) is drawn hollow and left out
    of the y-axis range: its loss is that of one or two rows, and a spike of it (the quickstart's
    last step: 1.09 where the others are 0.1-0.7) would squeeze the curve; one above the range
    sits on the top edge with its value written. The running mean weighs steps by their tokens,
    as the summary's quarter means do."""
    from .metrics import short_batches

    fig, ax = _figure()
    steps, values = zip(*loss)
    by_tokens = bool(tokens) and len(tokens) == len(loss) and all(t for t in tokens)
    weights = list(tokens) if by_tokens else [1.0] * len(loss)
    short = short_batches(list(zip(steps, values, weights))) if by_tokens else set()
    full = [(s, v) for s, v in loss if s not in short]
    ax.plot([s for s, _ in full], [v for _, v in full], marker="." if len(loss) < 50 else None,
            alpha=0.5 if len(loss) >= 10 else 1, label="training loss")
    if len(loss) >= 10:  # per-step loss is noisy: a running mean shows the trend
        k = max(3, len(loss) // 10)
        smooth = []
        for i in range(len(values)):
            window = range(max(0, i - k + 1), i + 1)
            smooth.append(sum(values[j] * weights[j] for j in window) / sum(weights[j] for j in window))
        ax.plot(steps, smooth, color="black", linewidth=1.5,
                label=f"running mean of {k} steps" + (", by tokens" if by_tokens else ""))
    if eval_loss:
        ax.plot(*zip(*eval_loss), marker="o", label="eval loss")
    if short and full:
        shown = [v for _, v in full] + [v for _, v in eval_loss or []]
        low, high = min(shown), max(shown)
        pad = 0.08 * (high - low or abs(high) or 1.0)
        ax.set_ylim(low - pad, high + pad)
        top = high + pad
        ax.scatter(sorted(short), [min(v, top) for s, v in loss if s in short], marker="o",
                   facecolors="none", edgecolors="tab:blue", zorder=3, clip_on=False,
                   label="short leftover batch (counted by its tokens)")
        for s, v in loss:
            if s in short and v > top:
                ax.annotate(f"{v:.2f} ↑", (s, top), xytext=(-6, -2), textcoords="offset points",
                            ha="right", va="top", fontsize=8, color="tab:blue")
    if len(loss) >= 10 or eval_loss or short:  # under the axes: inside, it hides the curve's ends
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8, frameon=False)
    ax.set_title("Training loss per step")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    fig.tight_layout()
    return fig


def short_model(model: str) -> str:
    """A model as scores.json names it, with folders cut to their last part: `/root/.cache/…/X +
    adapter /tmp/runs/qs/student` is `X + adapter student`."""
    from pathlib import PurePath

    parts = model.split(" + adapter ")
    parts = [PurePath(p).name if p.startswith(("/", "~", ".")) else p for p in parts]
    return " + adapter ".join(parts)


def scores(benchmarks: dict, model: str | None = None, base: dict | None = None, run: str | None = None) -> "Figure":  # noqa: F821
    """Bar per benchmark: pass@1 with its standard error; beside it, when `base` (the base
    student's scores.json benchmarks) has the benchmark, the untrained student's bar; the R1
    paper's pass@1 as a black diamond where scores.json carries it. The footer names the run
    folder (`run`) and the model, never a long absolute path."""
    from .metrics import difference

    names = list(benchmarks)
    titles = [b.get("title") or name for name, b in benchmarks.items()]
    values = [b["pass@1"] for b in benchmarks.values()]
    errors = [b.get("pass@1_se") or 0.0 for b in benchmarks.values()]
    base = {k: v for k, v in (base or {}).items() if k in benchmarks}
    fig, ax = _figure(max(7, 1 + (2.2 if base else 1.2) * len(titles)), 4.8 if base else 4.4)
    positions = list(range(len(titles)))
    width = 0.38 if base else 0.8
    shift = width / 2 if base else 0.0
    if base:
        at = [i - shift for i, name in enumerate(names) if name in base]
        ax.bar(at, [base[n]["pass@1"] for n in names if n in base],
               yerr=[base[n].get("pass@1_se") or 0.0 for n in names if n in base], width=width, capsize=5,
               color="tab:gray", label="base student (untrained) ± SE")
    ax.bar([i + shift for i in positions], values, yerr=errors, width=width, capsize=6 if not base else 5,
           color="tab:blue", label="trained ± SE" if base else "pass@1 ± SE")
    # the numbers go under the benchmark names: on or above a bar they collide with its error bar
    labels = []
    for name, t, v, e in zip(names, titles, values, errors):
        label = f"{t}\n{v:.1f} ± {e:.1f}"
        if name in base:
            diff, se = difference(benchmarks[name], base[name])
            label = (f"{t}\ntrained {v:.1f} ± {e:.1f}\nbase {base[name]['pass@1']:.1f} ± {base[name]['pass@1_se']:.1f}"
                     f"\ndifference {diff:+.1f} ± {se:.1f}")
        labels.append(label)
    ax.set_xticks(positions, labels=labels)
    refs = [(i + shift, b["reference"]["pass@1"]) for i, b in enumerate(benchmarks.values())
            if (b.get("reference") or {}).get("pass@1") is not None]
    if refs:
        ax.scatter([i for i, _ in refs], [v for _, v in refs], marker="D", color="black", zorder=3,
                   label="R1 paper pass@1")
    ax.set_ylim(0, 120)  # room for the legend above a 100% bar
    ax.set_title("pass@1 per benchmark (± standard error over problems)")
    if len(titles) == 1:  # one benchmark: bars of the usual width, not across the whole plot
        ax.set_xlim(-1.2, 1.2)
    ax.set_xlabel("benchmark")
    ax.set_ylabel("pass@1 (%)")
    ax.legend(loc="upper center", ncol=3, fontsize=8 if base else None)
    footer = " · ".join(f for f in (run and f"run: {run}", model and f"model: {short_model(model)}") if f)
    if footer:
        fig.text(0.01, 0.01, footer if len(footer) <= 110 else footer[:109] + "…", fontsize=7, color="dimgray")
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
    # training draws this very plot as student/loss.png when it finishes; a second copy under
    # plots/ only for a run whose training has not (the loss so far) or that predates it
    if student and student["loss"] and not (student["state"] == "complete" and student.get("plot")):
        out["training_loss.png"] = training_loss(student["loss"], student["eval_loss"], student.get("tokens"))
    evals = stages.get("eval")
    if evals and evals["benchmarks"]:
        base = (evals.get("base") or {}).get("benchmarks")
        # the run folder's name: eval/ sits in it (or the folder given is eval/ itself)
        run = Path(evals["folder"]).resolve().parent.name
        out["scores.png"] = scores(evals["benchmarks"], evals["model"], base, run)
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
