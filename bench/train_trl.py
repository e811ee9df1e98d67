"""`distill train` vs plain TRL `SFTTrainer` on the same rows and settings.

    python bench/train_trl.py [--rows 64] [--steps STEPS] [--rounds 2]
    python bench/train_trl.py --padding-at 64,800,8000

The student is the real SmolLM2-135M-Instruct (the quickstart's, converted once under
$DISTILL_HOME), LoRA r=16 on all linear layers, batch 4, max_length 1024, fp32 on this CPU. The
rows are real model solutions from ../shared/data (math_cot_100_samples.jsonl), each an R1-style
conversation: the problem, then `<think>\\n{solution}\\n</think>\\n\\n\\boxed{answer}`. Both sides
train one epoch by default (every row once: the same tokens on both sides) with the same seed and
settings, with the loss on the assistant turn (TRL: conversational prompt/completion with
completion_only_loss=True), in fp32 (TRL's SFTConfig defaults to bf16 autocast even on a CPU: about twice as fast on this machine's
CPU, but not the fp32 training that distill does there; `--trl-default-precision` measures that).

Prints, per side, training tokens/s (non-pad tokens in the batches / TRL's train_runtime), the
supervised-token count and the padding waste (pad share of the batch tokens), and the ratio of
tokens/s (distill over TRL), best round of each, rounds alternating in order.

Each side runs at its own defaults for what the settings above leave open: distill batches rows
of like length together (train.group_by_length, on by default without packing), plain TRL draws
batches at random. `--distill-set train.group_by_length=false` gives distill TRL's order.
`--padding-at` computes, without training, the padding waste of both orders on more rows: the
grouping sorts runs of up to 50 batches, so it saves more on a real dataset than on 64 rows.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "math_cot_100_samples.jsonl"
SETTINGS = {"max_steps": None, "batch_size": 4, "max_length": 1024, "lora_r": 16, "lora_alpha": 32,
            "learning_rate": 2e-4, "seed": 42}


def conversations(count: int) -> list[list[dict]]:
    out = []
    for line in DATA.read_text().splitlines()[:count]:
        r = json.loads(line)
        answer = f"<think>\n{r['response']}\n</think>\n\n\\boxed{{{r['answer']}}}"
        out.append([{"role": "user", "content": r["problem"]}, {"role": "assistant", "content": answer}])
    return out


def write_filtered(folder: Path, convs: list[list[dict]]) -> None:
    from distill import schema, shards

    rows = [{"id": f"b/{i}", "problem": c[0]["content"], "sample_idx": 0, "completion": c[1]["content"], "messages": c}
            for i, c in enumerate(convs)]
    shards.write_table(folder / shards.DATA / shards.shard_name(0), schema.table(rows, schema.FILTERED))


def run_distill(folder: Path, out: Path, steps: int, extra: list[str]) -> dict:
    from distill.recipes import load_recipe
    from distill.train.stage import run_train

    sets = ["student=smollm2-135m", f"train.max_steps={steps}", f"train.batch_size={SETTINGS['batch_size']}",
            f"train.max_length={SETTINGS['max_length']}", f"train.lora_r={SETTINGS['lora_r']}",
            f"train.lora_alpha={SETTINGS['lora_alpha']}", f"train.learning_rate={SETTINGS['learning_rate']}",
            f"train.seed={SETTINGS['seed']}", "train.logging_steps=1000", "train.lr_scheduler=cosine",
            "train.lora_dropout=0.05", *extra]
    summary = run_train(load_recipe(None, sets), folder, out)
    tokens = summary["batch_tokens"]
    return {"seconds": summary["train_seconds"], "tokens": tokens, "tokens_per_s": tokens / summary["train_seconds"],
            "supervised_tokens": summary["supervised_tokens"], "padding_waste": summary["padding_waste"]}


def run_plain_trl(convs: list[list[dict]], out: Path, steps: int, bf16: bool = False) -> dict:
    """What a user writes with TRL alone: the same model, LoRA and settings."""
    import datasets
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from distill import models
    from distill.config import StudentCard
    from distill.recipes import load_card

    path = models.resolve(load_card(StudentCard, "smollm2-135m"))
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    dataset = datasets.Dataset.from_list([{"prompt": c[:1], "completion": c[1:]} for c in convs])
    args = SFTConfig(output_dir=str(out), per_device_train_batch_size=SETTINGS["batch_size"], max_steps=steps,
                     learning_rate=SETTINGS["learning_rate"], lr_scheduler_type="cosine", seed=SETTINGS["seed"],
                     max_length=SETTINGS["max_length"], completion_only_loss=True, gradient_checkpointing=False,
                     save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True, logging_steps=1000,
                     bf16=bf16)  # TRL's default is bf16 autocast even on a CPU; distill trains in fp32 there
    peft = LoraConfig(r=SETTINGS["lora_r"], lora_alpha=SETTINGS["lora_alpha"], lora_dropout=0.05,
                      target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft)
    counts = {"pad": 0, "tokens": 0}
    collate = trainer.data_collator

    def counting(features):  # the same count distill makes, for the padding figure only
        batch = collate(features)
        counts["tokens"] += int(batch["attention_mask"].numel())
        counts["pad"] += int((batch["attention_mask"] == 0).sum())
        return batch

    trainer.data_collator = counting
    supervised = sum(sum(1 for t in labels if t != -100) for labels in trainer.train_dataset["labels"])
    result = trainer.train()
    seconds = result.metrics["train_runtime"]
    tokens = counts["tokens"] - counts["pad"]
    return {"seconds": round(seconds, 2), "tokens": tokens, "tokens_per_s": tokens / seconds,
            "supervised_tokens": supervised, "padding_waste": round(counts["pad"] / counts["tokens"], 4)}


def padding_at(counts: list[int], seeds: int = 5) -> list[dict]:
    """Padding waste of random batches and of length-grouped ones on `counts` rows, no training:
    the real conversations' token lengths (all 100 rows, cut at max_length), drawn again to each
    count, batched by torch's RandomSampler order and by transformers' get_length_grouped_indices
    (what TRL's and distill's samplers yield), each batch padded to its longest row as the
    collator pads it. Mean over `seeds` shuffles."""
    import random

    import torch
    from transformers import AutoTokenizer
    from transformers.trainer_pt_utils import get_length_grouped_indices

    from distill import models
    from distill.config import StudentCard
    from distill.recipes import load_card

    tok = AutoTokenizer.from_pretrained(models.resolve(load_card(StudentCard, "smollm2-135m")))
    real = [min(len(tok.apply_chat_template(c, tokenize=True, return_dict=True)["input_ids"]), SETTINGS["max_length"])
            for c in conversations(100)]
    batch = SETTINGS["batch_size"]

    def waste(lengths: list[int], order: list[int]) -> float:
        slots = sum(max(lengths[i] for i in order[k:k + batch]) * len(order[k:k + batch])
                    for k in range(0, len(order), batch))
        return 1 - sum(lengths) / slots

    out = []
    for count in counts:
        shuffled, grouped = [], []
        for seed in range(seeds):
            lengths = random.Random(seed).choices(real, k=count)
            torch.manual_seed(seed)
            shuffled.append(waste(lengths, torch.randperm(count).tolist()))
            torch.manual_seed(seed)
            grouped.append(waste(lengths, get_length_grouped_indices(lengths, batch)))
        out.append({"rows": count, "random_padding_waste": round(sum(shuffled) / seeds, 4),
                    "grouped_padding_waste": round(sum(grouped) / seeds, 4)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--steps", type=int, default=None, help="default: one epoch (rows / batch size)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--trl-default-precision", action="store_true", help="leave TRL's bf16 default on")
    parser.add_argument("--distill-set", action="append", default=[], metavar="KEY=VALUE",
                        help="a further --set for the distill side, e.g. train.group_by_length=false")
    parser.add_argument("--padding-at", metavar="ROWS,…",
                        help="only compute padding waste, random vs grouped batches, at these row counts")
    args = parser.parse_args()
    if args.padding_at:
        print(json.dumps({"bench": "train_trl", "padding_at": padding_at([int(n) for n in args.padding_at.split(",")])}))
        return
    if args.steps is None:
        args.steps = -(-args.rows // SETTINGS["batch_size"])
    convs = conversations(args.rows)
    best: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "filtered"
        write_filtered(folder, convs)
        for r in range(args.rounds):
            order = ["distill", "trl"] if r % 2 == 0 else ["trl", "distill"]
            for side in order:
                out = Path(tmp) / f"{side}-{r}"
                got = (run_distill(folder, out, args.steps, args.distill_set) if side == "distill"
                       else run_plain_trl(convs, out, args.steps, bf16=args.trl_default_precision))
                if side not in best or got["tokens_per_s"] > best[side]["tokens_per_s"]:
                    best[side] = got
    for side in best.values():
        side["tokens_per_s"] = round(side["tokens_per_s"], 1)
    print(json.dumps({"bench": "train_trl", "rows": args.rows, "steps": args.steps, "rounds": args.rounds,
                      "distill_set": args.distill_set, **best,
                      "ratio": round(best["distill"]["tokens_per_s"] / best["trl"]["tokens_per_s"], 3),
                      "date": time.strftime("%Y-%m-%d")}))


if __name__ == "__main__":
    main()
