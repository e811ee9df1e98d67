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
from pathlib import Path

from common import bench_recipe, generate_timed, report, vllm_env


def recipe_for(backend: str, args):
    if args.workload == "gsm8k":
        return bench_recipe(args.prompts, args.n, args.max_tokens, backend)
    from distill.recipes import load_recipe

    return load_recipe("quickstart", [f"generate.backend={backend}"])


def timed(backend: str, args, out: Path) -> tuple[int, float]:
    tokens, seconds = generate_timed(recipe_for(backend, args), out)
    print(f"{backend}: {tokens} tokens in {seconds:.1f} s", flush=True)
    return tokens, seconds


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
