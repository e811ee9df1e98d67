"""run_generate(): prompts → shard plan → teacher backend → trace shards (DESIGN §2–3)."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

from .. import engines
from ..engines import journal
from ..engines.shardwriter import _read_stats, _save_stats, finish, resume, write_shard
from .. import models, runfolder, shards
from ..config import Recipe
from ..errors import ConfigError
from ..sources import load_prompts
from ..ui import console, live_progress, plural

STAGE = "traces"


def settings_for(recipe: Recipe) -> engines.GenSettings:
    """Sampling settings: the recipe's generate section over the teacher card's defaults."""
    teacher, gen = recipe.teacher, recipe.generate
    if teacher is None:
        raise ConfigError(f"recipe '{recipe.name}' names no teacher: add `teacher: CARD` or --set teacher=CARD")
    return engines.GenSettings(
        backend=engines.resolve_name(gen.backend, teacher),
        n=gen.n,
        temperature=teacher.sampling.temperature if gen.temperature is None else gen.temperature,
        top_p=teacher.sampling.top_p if gen.top_p is None else gen.top_p,
        max_tokens=teacher.sampling.max_tokens if gen.max_tokens is None else gen.max_tokens,
        seed=gen.seed,
        template=teacher.template,
        batch_size=gen.batch_size,
    )


def run_generate(recipe: Recipe, out: Path, rank: int = 0, world_size: int = 1) -> dict:
    """Generate the traces of `recipe` into `out/traces`; resumable, shard by shard."""
    runfolder.check_scale_out(rank, world_size)
    with journal.rank_lock(Path(out) / STAGE, rank):  # one process per stage and rank
        result = _generate(recipe, out, rank, world_size)
        if result["complete"]:
            journal.tidy(Path(out) / STAGE)
        return result


def _generate(recipe: Recipe, out: Path, rank: int, world_size: int) -> dict:
    settings = settings_for(recipe)
    prompts = load_prompts(recipe.data, recipe.generate.limit)
    stage = Path(out) / STAGE
    data = stage / shards.DATA
    done = shards.forget_missing(stage, lambda i: [data / shards.shard_name(i)])
    runfolder.claim(Path(out), recipe, "generate", started=bool(done))
    size = recipe.generate.shard_size
    plan = [prompts[i : i + size] for i in range(0, len(prompts), size)]
    gen_config = settings.gen_config()
    resume(stage, done, plan, gen_config)
    journal.clean_done(stage, done)
    todo = [i for i in range(len(plan)) if i % world_size == rank and i not in done]
    teacher_name = models.describe(recipe.teacher)
    written = Counter()
    if todo:
        console.print(
            f"generate: {plural(len(prompts), 'prompt')} × {settings.n} in {plural(len(plan), 'shard')} "
            f"({len(done)} done, {len(todo)} to do here) with {settings.backend} on {recipe.teacher.name}"
        )
        lock = threading.Lock()
        todo_prompts = sum(len(plan[i]) for i in todo)
        run = engines.open_backend(recipe.teacher, settings)  # engine start is not generation time
        with live_progress(todo_prompts, todo_prompts * settings.n, settings.max_tokens) as progress:
            # spent so far: shards written (every rank's stats) plus answers kept in journals
            spent = _read_stats(stage)["usage"]["cost"] or 0.0
            progress.set_budget(recipe.generate.max_cost, spent + journal.pending_cost(stage),
                                getattr(run, "priced", False))

            def on_shard(index: int, samples: list[dict]) -> None:
                """Called by the backend as each shard completes (possibly from a worker thread)."""
                rows = [
                    {
                        **plan[index][s["prompt_index"]],
                        **{k: v for k, v in s.items() if k != "prompt_index"},
                        "teacher": teacher_name,
                        "gen_config": gen_config,
                    }
                    for s in samples
                ]
                write_shard(stage, index, rows, plan[index], settings.n)
                with lock:
                    written["rows"] += len(rows)
                    written["shards"] += 1
                    _save_stats(stage, rank, progress, _usage(samples))
                    head = f"  shard {index + 1}/{len(plan)} written · "
                    console.print(progress.report(head))

            keep = journal.Journals(stage, gen_config, rank)
            work = ((i, plan[i]) for i in todo)
            try:
                if getattr(run, "journals", False):  # the backend keeps each answer as it arrives
                    run(work, progress, on_shard, keep)
                else:
                    run(work, progress, on_shard)
            finally:
                with lock:
                    _save_stats(stage, rank, progress)
    return finish(stage, plan, gen_config, teacher_name, written["rows"])


def _usage(samples: list[dict]) -> dict:
    """Tokens and cost of a written shard's samples (cost null where the card has no prices)."""
    costs = [s.get("cost") for s in samples]
    return {
        "prompt_tokens": sum(s.get("billed_prompt_tokens", s.get("prompt_tokens")) or 0 for s in samples),
        "completion_tokens": sum(s.get("completion_tokens") or 0 for s in samples),
        "cost": None if all(c is None for c in costs) else sum(c or 0.0 for c in costs),
    }


