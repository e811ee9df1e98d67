"""distill's vLLM backend vs its transformers backend on the same work.

    python bench/generate_engines.py [--prompts 32] [--n 4] [--max-tokens 128] [--workload gsm8k|quickstart]

The same recipe run twice through `run_generate`, once per engine; tokens/s over generation
time (model load and engine start excluded). `gsm8k`: GSM8K test prompts with the R1 prompt
(SmolLM2 rambles to the token limit: equal lengths, transformers' best case). `quickstart`: the
quickstart's own work (short answers of varied length: a batch waits for its longest sample).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import bench_recipe, report, vllm_env


def recipe_for(backend: str, args):
    if args.workload == "gsm8k":
        return bench_recipe(args.prompts, args.n, args.max_tokens, backend)
    from distill.recipes import load_recipe

    return load_recipe("quickstart", [f"generate.backend={backend}"])


def timed(backend: str, args, out: Path) -> tuple[int, float]:
    from distill import backends
    from distill.generate import run_generate

    timing = {}
    real_open = backends.open_backend

    def timed_open(teacher, settings):
        run = real_open(teacher, settings)

        def timed_run(work, progress, on_shard):
            start = time.perf_counter()
            run(work, progress, on_shard)
            timing["seconds"] = time.perf_counter() - start

        return timed_run

    backends.open_backend = timed_open
    try:
        result = run_generate(recipe_for(backend, args), out)
    finally:
        backends.open_backend = real_open
    print(f"{backend}: {result['completion_tokens']} tokens in {timing['seconds']:.1f} s", flush=True)
    return result["completion_tokens"], timing["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--workload", choices=("gsm8k", "quickstart"), default="gsm8k")
    args = parser.parse_args()
    vllm_env()
    with tempfile.TemporaryDirectory() as tmp:
        vllm = timed("vllm", args, Path(tmp) / "vllm")
        hf = timed("hf", args, Path(tmp) / "hf")
    report(f"generate_engines/{args.workload}", vllm, hf, ("vllm_backend", "transformers_backend"))


if __name__ == "__main__":
    main()
