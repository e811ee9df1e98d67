"""run_pipeline(): generate → filter → train → eval in one run folder, each stage skipped when done."""

from __future__ import annotations

import time
from pathlib import Path

from . import shards
from .config import Recipe
from .errors import UserError
from .metrics import difference
from .filter.stage import STAGE as FILTERED, check_config as check_filter, run_filter
from .generate.stage import STAGE as TRACES, run_generate, settings_for
from .filter.report import waste
from .runfolder import BASE
from .train.stage import STAGE as STUDENT, SUMMARY, check_config as check_train, run_train
from .ui import console, plural


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

    done_before = {
        "generate": shards.is_complete(out / TRACES),
        "filter": shards.is_complete(out / FILTERED),
        "train": (out / STUDENT / SUMMARY).is_file(),
    }
    results["skipped"] = [stage for stage, done in done_before.items() if done]
    if done_before["generate"]:
        console.print(f"generate: {out / TRACES} is complete; skipping")
    timed("generate", run_generate, recipe, out)
    if done_before["filter"]:
        console.print(f"filter: {out / FILTERED} is complete; skipping")
    timed("filter", run_filter, recipe, out, out)
    if (line := waste(results["filter"], out / FILTERED / "report.json")) is not None:
        raise UserError(line)  # nothing (or almost nothing) worth training on: no silent empty run
    timed("train", run_train, recipe, out, out, merge=merge, resume=True)  # a rerun continues
    if recipe.eval.benchmarks:
        timed("eval", _evaluate, recipe, out, problems, results["skipped"])
        # the student before training, on the same benchmarks and settings: what training changed
        timed("base", _evaluate_base, recipe, out, problems, results["skipped"])
    return results


def check_eval(recipe: Recipe) -> dict[str, list[dict]]:
    """The eval section, checked before generation starts rather than after training: its
    benchmarks exist, can be scored and load (hub copies included), and vLLM knows its engine keys."""
    from . import engines
    from .eval import benchmarks
    from .errors import ConfigError
    from .eval.stage import pick

    cfg = recipe.eval
    try:  # small; a gated or offline hub copy fails now, and eval scores these very rows later
        problems = {bench.name: benchmarks.problems(bench) for bench in pick(cfg, [(b.name, b) for b in cfg.benchmarks])}
    except ConfigError as e:
        raise ConfigError(f"recipe '{recipe.name}': eval.benchmarks: {e}") from None
    if cfg.benchmarks and cfg.engine and cfg.backend in ("auto", "vllm") and engines.vllm_usable():
        from .engines.vllm import check_engine_keys

        check_engine_keys(cfg.engine, f"recipe '{recipe.name}': eval.engine")
    return problems


def _evaluate(recipe: Recipe, out: Path, problems: dict[str, list[dict]], skipped: list[str]) -> dict:
    """The trained student (OUT/student: adapter or full weights) on the recipe's benchmarks."""
    from .eval import evalmodel

    return _score(evalmodel.resolve(str(out)), recipe, out, out, "eval", problems, skipped)


def _evaluate_base(recipe: Recipe, out: Path, problems: dict[str, list[dict]], skipped: list[str]) -> dict:
    """The student as the recipe names it, untrained (no adapter, its own weights), on the same
    benchmarks with the same settings, into OUT/base/eval: the score training started from."""
    from .eval import evalmodel

    model = evalmodel.EvalModel(evalmodel.from_student(recipe.student))
    return _score(model, recipe, out, out / BASE, "base", problems, skipped)


def _score(model, recipe: Recipe, out: Path, where: Path, stage: str, problems: dict[str, list[dict]],
           skipped: list[str]) -> dict:
    """Evaluate `model` into `where`/eval, or read its scores when they are there already."""
    from . import runfolder
    from .eval.evalscore import EVAL, read_scores
    from .eval.stage import is_complete, plan_recipe, run_eval

    p = plan_recipe(model, recipe.eval)
    runfolder.claim(out, recipe, stage, started=(where / EVAL).is_dir())
    if is_complete(p, where):
        console.print(f"{'eval' if stage == 'eval' else 'eval of the base student'}: {where / EVAL} is complete; "
                      "skipping")
        skipped.append(stage)
        return read_scores(where)
    if stage == "base":
        console.print(f"eval of the base student (untrained, for comparison): {where / EVAL}")
    return run_eval(p, where, problems)


def print_summary(results: dict, out: Path) -> None:
    from rich.panel import Panel
    from rich.text import Text

    gen, filt, train = results["generate"], results["filter"], results.get("train")
    skipped = set(results.get("skipped", ()))
    # a stage found complete took no time now: say so rather than "[0 s]"
    secs = {k: " [done before]" if k in skipped else f" [{v:.0f} s]" for k, v in results["seconds"].items()}
    lines = [
        f"generated  {plural(gen.get('samples', 0), 'sample')} for {plural(gen.get('prompts', 0), 'prompt')} "
        f"({gen.get('truncated', 0)} truncated){secs['generate']}",
        f"kept       {filt['kept']} of {filt['rows_in']} "
        f"({100 * filt['kept'] / max(filt['rows_in'], 1):.1f}%){secs['filter']}",
    ]
    if filt["reasons"]:
        lines.append("dropped    " + ", ".join(f"{r} {c}" for r, c in filt["reasons"].items()))
    if train:
        first, last = train["loss_first"], train["loss_last"]
        # per token over the first and the last quarter of the training tokens (metrics.quarter_means)
        loss = f"{first:.3f} → {last:.3f}" if first is not None else "n/a"
        lines.append(
            f"trained    {train['method']} on {plural(train['rows'], 'row')}, {plural(train['steps'], 'step')}, "
            f"loss {loss}{secs.get('train', '')}"
        )
    if results.get("eval"):
        base = (results.get("base") or {}).get("benchmarks", {})
        for name, s in results["eval"]["benchmarks"].items():
            lines.append(f"scored     {s['title']}: pass@1 {s['pass@1']:.1f} ± {s['pass@1_se']:.1f} "
                         f"({plural(s['problems'], 'problem')} × {s['n']}){secs.get('eval', '')}")
            if name in base:  # the untrained student, and what training changed (± SE of the difference)
                b = base[name]
                diff, se = difference(s, b)
                lines.append(f"{'':11}base {b['pass@1']:.1f} ± {b['pass@1_se']:.1f} (untrained), "
                             f"difference {diff:+.1f} ± {se:.1f}{secs.get('base', '')}")
    made = [f"{d}/" for d in ("traces", "filtered", "student", "eval", BASE) if (Path(out) / d).is_dir()]
    lines.append(f"output     {out}/  ({', '.join(made)})")
    # plain text, not markup: "[done before]" (or a path with brackets) would read as a style tag
    console.print(Panel(Text("\n".join(lines), overflow="fold"), title="distill run", expand=False), soft_wrap=False)
