"""`distill generate` (vLLM backend) vs per-shard `LLM.generate` on a long-tail workload.

    python bench/generate_longtail.py [--prompts 128] [--shard 16] [--n 2] [--max-tokens 512] [--rounds 2]
    python bench/generate_longtail.py --step-cost   # why the ratio is what it is on this machine

The baseline drives vLLM the way curator and SkyThought do offline: one `LLM.generate` call per
shard (batch) of prompts, its results written to Parquet when the call returns, then the next
shard. distill queues the next shards while the current one drains. The workload has a long
tail: seven prompts in eight are one-line sums asked for the number only (a few tokens), every
eighth a GSM8K test question with the R1 prompt (hundreds of tokens, many cut at --max-tokens), so every shard holds
a couple of long samples that keep a per-shard call waiting with a nearly empty batch.

Both sides: the same prompts (distill's own prompt loading), the same chat rendering, the same
engine settings (the SmolLM2 teacher card, plus what distill sets on a CPU), the same sampling
with distill's per-prompt seeds, so both write the same tokens (checked: sample by sample).
Engine start is excluded on both sides; Parquet writes are included on both. Rounds alternate
(A B, B A, …); the ratio is distill's output tokens/s over the baseline's, summed.

What the ratio can reach depends on how much cheaper a token is in a full batch than in the
baseline's nearly empty one. `--step-cost` measures that on the machine at hand: the engine's
time per step at a few batch sizes, with and without the recipe's top-p (vLLM's CPU sampler
sorts the whole vocabulary for every sequence at every step, a cost per token that batching does
not share). The prefill and the short answers cost both sides the same, so the longer the tail
(--max-tokens), the more of the run is the part where the two differ.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import tempfile
import time
from pathlib import Path

from common import GSM8K_TEST, R1_USER, generate_timed, report, vllm_env


def write_prompts(path: Path, count: int) -> None:
    """The long-tail prompt file, laid out like GSM8K (question, answer) for its dataset card."""
    rng = random.Random(0)
    questions = [json.loads(line)["question"] for line in open(GSM8K_TEST)]
    with open(path, "w") as f:
        for i in range(count):
            if i % 8 == 7:
                question, answer = R1_USER.replace("{problem}", questions[i // 8]), "0"
            else:
                a, b = rng.randint(10, 99), rng.randint(10, 99)
                question, answer = f"What is {a} + {b}? Reply with the number only, nothing else.", str(a + b)
            f.write(json.dumps({"id": f"longtail/{i}", "question": question, "answer": f"#### {answer}"}) + "\n")


def recipe_for(args, prompts: Path):
    from distill.recipes import load_recipe

    return load_recipe("quickstart", [
        "teacher=smollm2-135m-instruct", "data=[gsm8k]", f"data.0.path={prompts}", f"data.0.limit={args.prompts}",
        f"generate.n={args.n}", f"generate.max_tokens={args.max_tokens}", "generate.backend=vllm",
        f"generate.shard_size={args.shard}", "teacher.template.user=Question: {problem}",
    ])


def engine(recipe):
    """The teacher's vLLM engine with the settings distill's backend gives it (its start untimed)."""
    from vllm import LLM
    from vllm.platforms import current_platform

    from distill import models
    from distill.engines.vllm import engine_args
    from distill.generate.stage import settings_for

    path, kwargs = models.load_args(recipe.teacher)
    return LLM(**engine_args(recipe.teacher, path, kwargs, settings_for(recipe).seed, current_platform.is_cpu()))


def per_shard(args, recipe, out: Path) -> tuple[int, float, dict]:
    """The baseline: one LLM.generate call per shard, each shard's results written after it."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    from distill import engines
    from distill.generate.stage import settings_for
    from distill.prompting import prompt_messages
    from distill.sources import load_prompts

    settings = settings_for(recipe)
    prompts = load_prompts(recipe.data, recipe.generate.limit)
    llm = engine(recipe)
    tok = llm.get_tokenizer()

    def rendered(problem: str) -> TokensPrompt:
        text = tok.apply_chat_template(prompt_messages(settings.template, problem), tokenize=False,
                                       add_generation_prompt=True)
        return TokensPrompt(prompt_token_ids=tok(text, add_special_tokens=False)["input_ids"])

    samples, tokens = {}, 0
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for s in range(0, len(prompts), args.shard):
        shard = prompts[s : s + args.shard]
        params = [SamplingParams(n=settings.n, temperature=settings.temperature, top_p=settings.top_p,
                                 max_tokens=settings.max_tokens, seed=engines.prompt_seed(settings.seed, p["id"]))
                  for p in shard]
        outputs = llm.generate([rendered(p["problem"]) for p in shard], params, use_tqdm=False)
        rows = []
        for p, o in zip(shard, outputs):
            for c in o.outputs:
                rows.append({"id": p["id"], "sample_idx": c.index, "completion": c.text, "tokens": len(c.token_ids)})
                samples[(p["id"], c.index)] = c.text
                tokens += len(c.token_ids)
        pq.write_table(pa.Table.from_pylist(rows), out / f"shard-{s // args.shard:05d}.parquet")
    seconds = time.perf_counter() - start
    llm.llm_engine.engine_core.shutdown()
    del llm
    gc.collect()
    return tokens, seconds, samples


def ours(recipe, out: Path) -> tuple[int, float, dict]:
    import pyarrow.dataset as pads

    tokens, seconds = generate_timed(recipe, out)
    table = pads.dataset(out / "traces" / "data", format="parquet").to_table(columns=["id", "sample_idx", "completion"])
    return tokens, seconds, {(r["id"], r["sample_idx"]): r["completion"] for r in table.to_pylist()}


def step_cost(recipe) -> None:
    """The engine's time per decode step at a few batch sizes, without and with the recipe's
    top-p: one prompt repeated, every sample run to 64 tokens (ignore_eos), seeded per sample."""
    from vllm import SamplingParams

    from distill.generate.stage import settings_for

    settings = settings_for(recipe)
    llm = engine(recipe)
    prompt = json.loads(open(GSM8K_TEST).readline())["question"]
    for top_p in sorted({1.0, settings.top_p}):
        for batch in (4, 32, 128):
            params = [SamplingParams(max_tokens=64, ignore_eos=True, temperature=settings.temperature, top_p=top_p,
                                     seed=i) for i in range(batch)]
            llm.generate([prompt] * batch, SamplingParams(max_tokens=1), use_tqdm=False)  # its prefix cached
            start = time.perf_counter()
            llm.generate([prompt] * batch, params, use_tqdm=False)
            seconds = time.perf_counter() - start
            print(json.dumps({"top_p": top_p, "batch": batch, "ms_per_step": round(seconds / 64 * 1000, 1),
                              "ms_per_token": round(seconds / 64 / batch * 1000, 2)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--shard", type=int, default=16)
    parser.add_argument("--n", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--step-cost", action="store_true", help="only measure the engine's time per step by batch size")
    args = parser.parse_args()
    vllm_env()
    if args.step_cost:
        with tempfile.TemporaryDirectory() as tmp:
            prompts = Path(tmp) / "longtail.jsonl"
            write_prompts(prompts, args.prompts)
            step_cost(recipe_for(args, prompts))
        return
    totals = {"distill": [0, 0.0], "per_shard": [0, 0.0]}
    same = []
    with tempfile.TemporaryDirectory() as tmp:
        prompts = Path(tmp) / "longtail.jsonl"
        write_prompts(prompts, args.prompts)
        recipe = recipe_for(args, prompts)
        for r in range(args.rounds):
            order = ["per_shard", "distill"] if r % 2 == 0 else ["distill", "per_shard"]
            texts = {}
            for side in order:
                out = Path(tmp) / f"{side}-{r}"
                tokens, seconds, texts[side] = per_shard(args, recipe, out) if side == "per_shard" else ours(recipe, out)
                totals[side][0] += tokens
                totals[side][1] += seconds
                lengths = sorted(len(t) for t in texts[side].values())
                print(f"round {r} {side}: {tokens} tokens in {seconds:.1f} s = {tokens / seconds:.1f} tok/s "
                      f"(answer characters: median {lengths[len(lengths) // 2]}, max {lengths[-1]})", flush=True)
            same.append(sum(texts["distill"].get(k) == v for k, v in texts["per_shard"].items()))
            print(f"round {r}: {same[-1]} of {len(texts['per_shard'])} samples identical on both sides", flush=True)
    report("generate_longtail", tuple(totals["distill"]), tuple(totals["per_shard"]), ("distill", "per_shard_generate"))
    print(json.dumps({"samples_identical_per_round": same, "samples_per_round": args.prompts * args.n}))


if __name__ == "__main__":
    main()
