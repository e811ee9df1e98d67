"""distill's vLLM backend vs its transformers backend on the same work.

    python bench/generate_engines.py [--prompts 32] [--n 4] [--max-tokens 128]

The same recipe run twice through `run_generate`, once per engine; tokens/s over generation
time (model load and engine start excluded). Expect vLLM to be several times faster.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import bench_recipe, report, vllm_env


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
        result = run_generate(bench_recipe(args.prompts, args.n, args.max_tokens, backend), out)
    finally:
        backends.open_backend = real_open
    print(f"{backend}: {result['completion_tokens']} tokens in {timing['seconds']:.1f} s", flush=True)
    return result["completion_tokens"], timing["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()
    vllm_env()
    with tempfile.TemporaryDirectory() as tmp:
        vllm = timed("vllm", args, Path(tmp) / "vllm")
        hf = timed("hf", args, Path(tmp) / "hf")
    report("generate_engines", vllm, hf, ("vllm_backend", "transformers_backend"))


if __name__ == "__main__":
    main()
