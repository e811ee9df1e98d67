"""run_pipeline(): generate → filter → train in one run folder, each stage skipped when done."""

from __future__ import annotations

import time
from pathlib import Path

from . import shards
from .config import Recipe
from .filter import STAGE as FILTERED, check_config as check_filter, run_filter
from .generate import STAGE as TRACES, run_generate, settings_for
from .train import check_config as check_train, run_train
from .ui import console


def run_pipeline(recipe: Recipe, out: Path, merge: bool = False) -> dict:
    """Run every stage of `recipe` into `out`; a rerun after a kill picks up where it stopped."""
    out = Path(out)
    # every section is checked before the first stage starts, not after hours of generation
    settings_for(recipe)
    check_filter(recipe)
    check_train(recipe)
    results: dict = {"seconds": {}}

    def timed(stage: str, fn, *args, **kwargs):
        start = time.monotonic()
        results[stage] = fn(*args, **kwargs)
        results["seconds"][stage] = time.monotonic() - start

    if shards.is_complete(out / TRACES):
        console.print(f"generate: {out / TRACES} is complete; skipping")
    timed("generate", run_generate, recipe, out)
    if shards.is_complete(out / FILTERED):
        console.print(f"filter: {out / FILTERED} is complete; skipping")
    timed("filter", run_filter, recipe, out, out)
    if results["filter"]["kept"] == 0:
        results["train"] = None
        console.print(f"train: skipped, the filter kept no rows (see {out / FILTERED / 'report.json'})")
    else:
        timed("train", run_train, recipe, out, out, merge=merge, resume=True)  # a rerun continues
    return results


def print_summary(results: dict, out: Path) -> None:
    from rich.panel import Panel

    gen, filt, train = results["generate"], results["filter"], results.get("train")
    secs = {k: f" [{v:.0f} s]" for k, v in results["seconds"].items()}
    lines = [
        f"generated  {gen.get('samples', 0)} samples for {gen.get('prompts', 0)} prompts "
        f"({gen.get('truncated', 0)} truncated){secs['generate']}",
        f"kept       {filt['kept']} of {filt['rows_in']} "
        f"({100 * filt['kept'] / max(filt['rows_in'], 1):.1f}%){secs['filter']}",
    ]
    if filt["reasons"]:
        lines.append("dropped    " + ", ".join(f"{r} {c}" for r, c in filt["reasons"].items()))
    if train:
        first, last = train["loss_first"], train["loss_last"]
        loss = f"{first:.3f} → {last:.3f}" if first is not None else "n/a"  # means of first/last quarter
        lines.append(
            f"trained    {train['method']} on {train['rows']} rows, {train['steps']} steps, loss {loss}"
            f"{secs.get('train', '')}"
        )
    else:
        lines.append("trained    nothing: no rows survived the filter")
    made = [f"{d}/" for d in ("traces", "filtered", "student") if (Path(out) / d).is_dir()]
    lines.append(f"output     {out}/  ({', '.join(made)})")
    console.print(Panel("\n".join(lines), title="distill run", expand=False))
