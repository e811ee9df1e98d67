"""run_pipeline(): generate → filter → train → eval in one run folder, each stage skipped when done."""

from __future__ import annotations

import time
from pathlib import Path

from . import shards
from .config import Recipe
from .errors import UserError
from .filter.stage import STAGE as FILTERED, check_config as check_filter, run_filter
from .generate.stage import STAGE as TRACES, run_generate, settings_for
from .filter.report import waste
from .train.stage import check_config as check_train, run_train
from .ui import console


def run_pipeline(recipe: Recipe, out: Path, merge: bool = False) -> dict:
    """Run every stage of `recipe` into `out`; a rerun after a kill picks up where it stopped.
    The eval stage runs when the recipe's `eval.benchmarks` names any."""
    out = Path(out)
    # every section is checked before the first stage starts, not after hours of generation
    settings_for(recipe)
    check_filter(recipe)
    check_train(recipe)
    problems = check_eval(recipe)
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
    if (line := waste(results["filter"], out / FILTERED / "report.json")) is not None:
        raise UserError(line)  # nothing (or almost nothing) worth training on: no silent empty run
    timed("train", run_train, recipe, out, out, merge=merge, resume=True)  # a rerun continues
    if recipe.eval.benchmarks:
        timed("eval", _evaluate, recipe, out, problems)
    return results


def check_eval(recipe: Recipe) -> dict[str, list[dict]]:
    """The eval section, checked before generation starts rather than after training: its
    benchmarks exist, can be scored and load (hub copies included), and vLLM knows its engine keys."""
    from .generate import backends
    from .eval import benchmarks
    from .errors import ConfigError
    from .eval.stage import pick

    cfg = recipe.eval
    try:  # small; a gated or offline hub copy fails now, and eval scores these very rows later
        problems = {bench.name: benchmarks.problems(bench) for bench in pick(cfg, [(b.name, b) for b in cfg.benchmarks])}
    except ConfigError as e:
        raise ConfigError(f"recipe '{recipe.name}': eval.benchmarks: {e}") from None
    if cfg.benchmarks and cfg.engine and cfg.backend in ("auto", "vllm") and backends.vllm_usable():
        from .generate.backends.vllm import check_engine_keys

        check_engine_keys(cfg.engine, f"recipe '{recipe.name}': eval.engine")
    return problems


def _evaluate(recipe: Recipe, out: Path, problems: dict[str, list[dict]]) -> dict:
    """The trained student (OUT/student: adapter or full weights) on the recipe's benchmarks."""
    from .eval import evalmodel
    from . import runfolder
    from .eval.evalscore import EVAL, read_scores
    from .eval.stage import is_complete, plan_recipe, run_eval

    p = plan_recipe(evalmodel.resolve(str(out)), recipe.eval)
    runfolder.claim(out, recipe, "eval", started=(out / EVAL).is_dir())
    if is_complete(p, out):
        console.print(f"eval: {out / EVAL} is complete; skipping")
        return read_scores(out)
    return run_eval(p, out, problems)


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
    if results.get("eval"):
        for s in results["eval"]["benchmarks"].values():
            lines.append(f"scored     {s['title']}: pass@1 {s['pass@1']:.1f} ± {s['pass@1_se']:.1f} "
                         f"({s['problems']} problems × {s['n']}){secs.get('eval', '')}")
    made = [f"{d}/" for d in ("traces", "filtered", "student", "eval") if (Path(out) / d).is_dir()]
    lines.append(f"output     {out}/  ({', '.join(made)})")
    console.print(Panel("\n".join(lines), title="distill run", expand=False))
