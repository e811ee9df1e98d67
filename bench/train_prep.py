"""Training data preparation: `distill train`'s rows-to-first-step time against one batched
tokenizer call over the same rendered conversations, on R1-length rows.

    python bench/train_prep.py [--rows 2000] [--tokens 6000] [--num-proc 1]

Rows are R1-style conversations made of real model solutions (../shared/data/
math_cot_100_samples.jsonl) concatenated to about --tokens tokens each (the problem, then
`<think>…</think>` and a boxed answer). The tokenizer is SmolLM2's real one (the quickstart's,
converted once under $DISTILL_HOME); the model is a 2-layer random one with that tokenizer, loaded
before the clock starts (model load excluded).

- baseline: the conversations rendered with the chat template beforehand, then one batched
  `tokenizer(texts)` call, timed alone;
- distill: from the `messages` rows to a constructed SFTTrainer ready for its first step:
  distill's tokenization with labels on every assistant turn (train._prepare, which writes
  RUN/tokens), TRL's own preparation of the tokenized rows (truncation, masked-row filter) and
  the count of supervised tokens `distill train` reports before its first step;
- resumed: the same again, as a resumed run does it (the tokens read back from RUN/tokens).

Prints the three times and the ratios distill/baseline and resumed/baseline.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT.parent / "shared" / "data" / "math_cot_100_samples.jsonl"


def rows(n: int, tokens: int) -> list[dict]:
    solutions = [json.loads(line) for line in SOLUTIONS.open()]
    chars = int(tokens * 2.6)  # about 2.6 characters a token for this LaTeX-heavy text (SmolLM2's tokenizer)
    out = []
    for i in range(n):
        first = solutions[i % len(solutions)]
        text, j = "", i
        while len(text) < chars:
            text += solutions[j % len(solutions)]["response"] + "\n\n"
            j += 7
        out.append({"messages": [
            {"role": "user", "content": first["problem"]},
            {"role": "assistant", "content": f"<think>\n{text[:chars]}\n</think>\n\n\\boxed{{{first['answer']}}}"}]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--tokens", type=int, default=6000)
    parser.add_argument("--num-proc", type=int, default=1, help="train.trl.dataset_num_proc for distill's side")
    args = parser.parse_args()

    import datasets
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from distill import models
    from distill.config import TeacherCard, TrainConfig
    from distill.recipes import load_card
    from distill.train.stage import _prepare, _sft_trainer
    from distill.train.trainer import _supervised_counts

    datasets.disable_progress_bars()
    source = models.resolve(load_card(TeacherCard, "smollm2-135m-instruct"))
    tokenizer = AutoTokenizer.from_pretrained(source)
    data = rows(args.rows, args.tokens)
    conversations = datasets.Dataset.from_list(data)
    max_length = 2 * args.tokens + 512

    texts = [tokenizer.apply_chat_template(r["messages"], tokenize=False) for r in data]
    start = time.perf_counter()
    encoded = tokenizer(texts, add_special_tokens=False)
    baseline = time.perf_counter() - start
    total = sum(map(len, encoded["input_ids"]))

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_length,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    model = Qwen2ForCausalLM(config)
    cfg = TrainConfig(trl={"dataset_num_proc": args.num_proc} if args.num_proc > 1 else {})

    from trl import SFTConfig

    def prepare(run: Path) -> float:
        start = time.perf_counter()
        tokens, *_ = _prepare(conversations, tokenizer, cfg, max_length, run)
        sft = SFTConfig(output_dir=str(run / "out"), max_length=max_length, report_to="none", use_cpu=True,
                        bf16=False, dataset_num_proc=args.num_proc if args.num_proc > 1 else None,
                        dataset_kwargs={"skip_prepare_dataset": True})  # as distill train sets it without packing
        trainer = _sft_trainer(False)(model=model, args=sft, train_dataset=tokens, processing_class=tokenizer)
        _supervised_counts(trainer.train_dataset)
        return time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        distill = prepare(Path(tmp))
        resumed = prepare(Path(tmp))
    result = {"rows": args.rows, "tokens": total, "baseline_s": round(baseline, 2), "distill_s": round(distill, 2),
              "resumed_s": round(resumed, 2), "distill_over_baseline": round(distill / baseline, 2),
              "resumed_over_baseline": round(resumed / baseline, 2), "num_proc": args.num_proc}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
