"""`distill generate` with the vLLM backend vs a bare script calling `vllm.LLM.generate`.

    python bench/generate_vllm.py [--prompts 64] [--n 4] [--max-tokens 128] [--rounds 2]

Both run in this process, one after the other, on the same GSM8K test prompts, the same chat
template, the same engine settings (from the SmolLM2 teacher card, plus what distill sets on a
CPU) and the same sampling. Each side's output tokens/s counts its generation only (engine start
excluded; for distill, its Parquet writes included). Rounds alternate (A B, B A, …) to even out
drift on a shared machine; the ratio is distill's tokens/s over the baseline's, summed.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

from common import bench_recipe, generate_timed, gsm8k_problems, report, vllm_env


def bare(args, engine: dict, user: str) -> tuple[int, float]:
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    llm = LLM(**engine)
    tok = llm.get_tokenizer()
    prompts = [
        TokensPrompt(prompt_token_ids=tok(
            tok.apply_chat_template([{"role": "user", "content": user.replace("{problem}", q)}],
                                    tokenize=False, add_generation_prompt=True),
            add_special_tokens=False)["input_ids"])
        for q in gsm8k_problems(args.prompts)
    ]
    params = SamplingParams(n=args.n, temperature=0.6, top_p=0.95, max_tokens=args.max_tokens)
    start = time.perf_counter()
    outputs = llm.generate(prompts, params, use_tqdm=False)
    seconds = time.perf_counter() - start
    llm.llm_engine.engine_core.shutdown()
    del llm
    gc.collect()
    return sum(len(c.token_ids) for o in outputs for c in o.outputs), seconds


def ours(args, out: Path) -> tuple[int, float]:
    return generate_timed(bench_recipe(args.prompts, args.n, args.max_tokens, "vllm"), out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    vllm_env()
    from distill import models
    from distill.engines.vllm import engine_args
    from distill.config import R1_USER_TEMPLATE, TeacherCard
    from distill.recipes import load_card

    card = load_card(TeacherCard, "smollm2-135m-instruct")
    path, kwargs = models.load_args(card)
    from vllm.platforms import current_platform

    engine = engine_args(card, path, kwargs, seed=0, on_cpu=current_platform.is_cpu())
    totals = {"distill": [0, 0.0], "bare": [0, 0.0]}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = ["bare", "distill"] if r % 2 == 0 else ["distill", "bare"]
            for side in order:
                tokens, seconds = (bare(args, engine, R1_USER_TEMPLATE) if side == "bare"
                                   else ours(args, Path(tmp) / f"run{r}"))
                totals[side][0] += tokens
                totals[side][1] += seconds
                print(f"round {r} {side}: {tokens} tokens in {seconds:.1f} s = {tokens / seconds:.1f} tok/s", flush=True)
    report("generate_vllm", tuple(totals["distill"]), tuple(totals["bare"]), ("distill", "bare_vllm"))


if __name__ == "__main__":
    main()
