"""Shared set-up for the generation benchmarks: the same prompts, template and engine settings
for distill and for its baseline, so their ratio measures distill's own overhead."""

from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GSM8K_TEST = ROOT.parent / "shared" / "data" / "gsm8k_test.jsonl"
R1_USER = "{problem}\n\nPlease reason step by step, and put your final answer within \\boxed{}."


def bench_recipe(prompts: int, n: int, max_tokens: int, backend: str, teacher: str = "smollm2-135m-instruct"):
    """The quickstart recipe turned into the benchmark's work: GSM8K test prompts with the R1
    prompt (long answers: a throughput workload), all in one shard."""
    from dataclasses import replace

    from distill.recipes import load_recipe

    recipe = load_recipe("quickstart", [
        f"teacher={teacher}",
        "data=[gsm8k]",
        f"data.0.path={GSM8K_TEST}",
        f"data.0.limit={prompts}",
        f"generate.n={n}",
        f"generate.max_tokens={max_tokens}",
        f"generate.backend={backend}",
        f"generate.shard_size={prompts}",
    ])
    template = replace(recipe.teacher.template, user=R1_USER)
    return replace(recipe, teacher=replace(recipe.teacher, template=template))


def gsm8k_problems(prompts: int) -> list[str]:
    with open(GSM8K_TEST) as f:
        return [json.loads(line)["question"] for line in f][:prompts]


def vllm_env() -> None:
    from distill.engines.vllm import _environment

    _environment()
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count()))


def report(name: str, ours: tuple[int, float], base: tuple[int, float], labels=("distill", "baseline")) -> dict:
    (t1, s1), (t2, s2) = ours, base
    r1, r2 = t1 / s1, t2 / s2
    result = {"bench": name, labels[0]: {"tokens": t1, "seconds": round(s1, 2), "tok_per_s": round(r1, 1)},
              labels[1]: {"tokens": t2, "seconds": round(s2, 2), "tok_per_s": round(r2, 1)},
              "ratio": round(r1 / r2, 3)}
    print(json.dumps(result))
    return result


def generate_timed(recipe, out: Path) -> tuple[int, float]:
    """`run_generate(recipe, out)`, timing only the backend's generation (engine start and
    shard planning excluded): (completion tokens, seconds)."""
    import time

    from distill import engines
    from distill.generate.stage import run_generate

    timing = {}
    real_open = engines.open_backend

    def timed_open(teacher, settings):
        run = real_open(teacher, settings)

        def timed_run(work, progress, on_shard, *keep):
            start = time.perf_counter()
            run(work, progress, on_shard, *keep)
            timing["seconds"] = time.perf_counter() - start

        timed_run.journals = getattr(run, "journals", False)  # the HTTP backend's journal is timed too
        timed_run.priced = getattr(run, "priced", False)
        return timed_run

    engines.open_backend = timed_open
    try:
        result = run_generate(recipe, out)
    finally:
        engines.open_backend = real_open
    return result["completion_tokens"], timing["seconds"]
