"""`distill train` vs plain TRL `SFTTrainer` on the same rows and settings.

    python bench/train_trl.py [--rows 64] [--steps 12] [--rounds 2]

The student is the real SmolLM2-135M-Instruct (the quickstart's, converted once under
$DISTILL_HOME), LoRA r=16 on all linear layers, batch 4, max_length 1024, fp32 on this CPU. The
rows are real model solutions from ../shared/data (math_cot_100_samples.jsonl), each an R1-style
conversation: the problem, then `<think>\\n{solution}\\n</think>\\n\\n\\boxed{answer}`. Both sides
train the same steps on the same rows in the same order (same seed), with the loss on the
assistant turn (TRL: conversational prompt/completion with completion_only_loss=True), in fp32
(TRL's SFTConfig defaults to bf16 autocast even on a CPU: about twice as fast on this machine's
CPU, but not the fp32 training that distill does there; `--trl-default-precision` measures that).

Prints, per side, training tokens/s (non-pad tokens in the batches / TRL's train_runtime), the
supervised-token count and the padding waste (pad share of the batch tokens), and the ratio of
tokens/s (distill over TRL), best round of each, rounds alternating in order.
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


def run_distill(folder: Path, out: Path, steps: int) -> dict:
    from distill.recipes import load_recipe
    from distill.train import run_train

    sets = ["student=smollm2-135m", f"train.max_steps={steps}", f"train.batch_size={SETTINGS['batch_size']}",
            f"train.max_length={SETTINGS['max_length']}", f"train.lora_r={SETTINGS['lora_r']}",
            f"train.lora_alpha={SETTINGS['lora_alpha']}", f"train.learning_rate={SETTINGS['learning_rate']}",
            f"train.seed={SETTINGS['seed']}", "train.logging_steps=1000", "train.lr_scheduler=cosine",
            "train.lora_dropout=0.05"]
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--trl-default-precision", action="store_true", help="leave TRL's bf16 default on")
    args = parser.parse_args()
    convs = conversations(args.rows)
    best: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "filtered"
        write_filtered(folder, convs)
        for r in range(args.rounds):
            order = ["distill", "trl"] if r % 2 == 0 else ["trl", "distill"]
            for side in order:
                out = Path(tmp) / f"{side}-{r}"
                got = (run_distill(folder, out, args.steps) if side == "distill"
                       else run_plain_trl(convs, out, args.steps, bf16=args.trl_default_precision))
                if side not in best or got["tokens_per_s"] > best[side]["tokens_per_s"]:
                    best[side] = got
    for side in best.values():
        side["tokens_per_s"] = round(side["tokens_per_s"], 1)
    print(json.dumps({"bench": "train_trl", "rows": args.rows, "steps": args.steps, "rounds": args.rounds, **best,
                      "ratio": round(best["distill"]["tokens_per_s"] / best["trl"]["tokens_per_s"], 3),
                      "date": time.strftime("%Y-%m-%d")}))


if __name__ == "__main__":
    main()
