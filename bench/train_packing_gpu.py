"""`distill train` with packing vs plain TRL `SFTTrainer` with packing, on a GPU (H100/H200).

    python bench/train_packing_gpu.py --out result.json [--steps 30] [--max-length 4096]
        [--batch-size 4] [--method full|lora] [--tokenizer DIR] [--gradient-checkpointing]
    python bench/train_packing_gpu.py --tiny --out result.json     # a few slow steps on a CPU

The model is Qwen2.5-1.5B's architecture with random weights (hidden 1536, 28 layers, 12 heads,
2 KV heads, intermediate 8960, vocab 151936, tied embeddings: 1.54B parameters), built from a
config on the spot: nothing is downloaded. The tokenizer is, by default, a byte-level BPE
(8,000 tokens, ChatML template) that this script trains in a second on its own synthetic text,
so nothing has to travel with the repo; `--tokenizer DIR` uses any local tokenizer folder
instead (e.g. the SmolLM2 one that distill converts under $DISTILL_HOME/models). Which one was
used is written to the result.

The rows are R1-style conversations (a question, then `<think>\\n…\\n</think>\\n\\n\\boxed{…}`)
whose reasoning lengths are drawn like real reasoning traces: log-normal, median about 1,200
tokens, clipped to 200–4,000 (and to max_length). Both sides train the same rows, model, dtype
(bf16 on a GPU), attention (distill's choice: flash_attention_2 when flash-attn imports, else
sdpa), Liger setting (distill's), batch size, max_length, learning rate and seed, with TRL's
padding-free BFD packing and the loss on the assistant turn.

Throughput is measured between the end of step `--warmup-steps` and the end of the last step
(CUDA synchronised), as the training tokens TRL counts (`num_tokens`: real tokens, no padding)
over that time. MFU = 6 · N · tokens/s / 989e12, with N all model parameters and 989 TFLOP/s
the dense bf16 peak of an H100/H200 SXM. 6·N counts the matmul work of full fine-tuning and
ignores attention's own FLOPs; with LoRA the frozen weights need no weight gradients (about 4·N),
so MFU with --method lora overstates the work done by about a third.
Needs: torch with CUDA, transformers >= 5.16, trl >= 1.16, peft, accelerate, datasets, and what
`distill.train` imports (pyarrow, pyyaml, rich, matplotlib for its loss plot); the script puts
this checkout on sys.path itself. No network. Nothing here needs transformers 5.19.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QWEN25_15B = dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                  intermediate_size=8960, vocab_size=151936, max_position_embeddings=32768, rope_theta=1e6,
                  rms_norm_eps=1e-6, tie_word_embeddings=True)
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=128, max_position_embeddings=4096, tie_word_embeddings=True)
PEAK_FLOPS = 989e12  # H100/H200 SXM dense bf16
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "shi", "qua", "be", "do", "fi", "gu", "ze", "pra", "st"]
MATH = ["=", "+", "-", "*", "/", "so", "then", "therefore", "wait", "check", "x", "y", "\\frac{", "}", "(", ")"]


def synthetic_words(rng: random.Random, count: int) -> list[str]:
    """Word-like text with numbers and formulae, so a BPE learns realistic-size pieces."""
    lexicon = ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))) for _ in range(3000)]
    out = []
    for _ in range(count):
        r = rng.random()
        out.append(str(rng.randint(0, 9999)) if r < 0.15 else rng.choice(MATH) if r < 0.3 else rng.choice(lexicon))
        if rng.random() < 0.05:
            out[-1] += ".\n"
    return out


def build_tokenizer(folder: Path, text: str, vocab: int):
    """A byte-level BPE with ChatML specials, trained on the benchmark's own text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([text[i:i + 10000] for i in range(0, len(text), 10000)], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = CHATML
    fast.save_pretrained(folder)
    return fast


def load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    if not tok.chat_template:
        tok.chat_template = CHATML
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def build_model(folder: Path, tokenizer, tiny: bool) -> int:
    """Random weights with Qwen2.5-1.5B's config (or a tiny one), saved in bf16 on a GPU; the
    parameter count."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    shape = dict(TINY, vocab_size=len(tokenizer)) if tiny else dict(QWEN25_15B)
    shape["vocab_size"] = max(shape["vocab_size"], len(tokenizer))
    config = Qwen2Config(**shape, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):  # initialising 1.5B weights on a CPU takes longer than the benchmark
        model = Qwen2ForCausalLM(config)
    if device == "cuda":
        model = model.to(torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    count = sum(p.numel() for p in model.parameters())
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return count


def conversations(tokenizer, rng: random.Random, budget: int, lo: int, hi: int, median: float, pool: list[int]):
    """R1-style rows whose reasoning is `length` tokens of the pool, length log-normal in [lo, hi],
    until the rows hold `budget` reasoning tokens."""
    out, lengths = [], []
    while sum(lengths) < budget:
        length = int(min(hi, max(lo, rng.lognormvariate(math.log(median), 0.7))))
        start = rng.randrange(0, len(pool) - length - 80)
        reasoning = tokenizer.decode(pool[start:start + length])
        question = tokenizer.decode(pool[start + length:start + length + rng.randint(20, 80)])
        answer = f"<think>\n{reasoning}\n</think>\n\nThe answer is \\boxed{{{rng.randint(0, 999)}}}."
        out.append([{"role": "user", "content": f"Problem {len(out)}: {question}"},
                    {"role": "assistant", "content": answer}])
        lengths.append(length)
    return out, lengths


class Clock:
    """A trainer callback, added to every Trainer (both sides), that notes the time and TRL's
    cumulative token count at the end of each optimizer step."""

    def __init__(self):
        from transformers import TrainerCallback

        clock = self

        class Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                clock.steps, clock.tokens = {}, {}

            def on_step_end(self, args, state, control, **kwargs):
                import torch

                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                clock.steps[state.global_step] = time.perf_counter()

            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "num_tokens" in logs:
                    clock.tokens[state.global_step] = float(logs["num_tokens"])

        self.callback = Callback
        self.steps: dict[int, float] = {}
        self.tokens: dict[int, float] = {}

    def install(self) -> None:
        from transformers import trainer

        trainer.DEFAULT_CALLBACKS.append(self.callback)  # Trainer builds its callbacks from this list

    def measure(self, warmup: int) -> dict:
        last = max(self.steps)
        first = min(warmup, last - 1)
        seconds = self.steps[last] - self.steps[first]
        tokens = self.tokens[last] - self.tokens.get(first, 0.0)
        return {"timed_steps": last - first, "tokens": int(tokens), "seconds": round(seconds, 3),
                "tokens_per_s": tokens / seconds}


def peak_memory() -> float | None:
    """Peak GPU memory since the last call (GiB), after freeing what the finished side left."""
    import gc

    import torch

    gc.collect()  # the finished trainer, its model and optimizer state
    if not torch.cuda.is_available():
        return None
    torch.cuda.empty_cache()
    gib = torch.cuda.max_memory_allocated() / 2**30
    torch.cuda.reset_peak_memory_stats()
    return round(gib, 1)


def run_distill(model_dir: Path, convs, work: Path, a) -> dict:
    import yaml

    from distill.recipes import load_recipe
    from distill.train.stage import run_train
    from train_trl import write_filtered  # bench/ is on sys.path when a bench script runs

    folder = work / "filtered"
    write_filtered(folder, convs)
    card = work / "bench-student.yaml"
    card.write_text(yaml.safe_dump({"model": str(model_dir), "max_length": a.max_length}))
    sets = [f"student={card}", f"train.method={a.method}", "train.packing=true", f"train.max_steps={a.steps}",
            f"train.batch_size={a.batch_size}", f"train.max_length={a.max_length}", f"train.learning_rate={a.lr}",
            f"train.seed={a.seed}", "train.logging_steps=1", "train.save_steps=1000000", "train.lr_scheduler=cosine",
            f"train.gradient_checkpointing={str(a.gradient_checkpointing).lower()}", "train.lora_r=16",
            "train.lora_alpha=32", "train.lora_dropout=0.0"]
    return run_train(load_recipe(None, sets), folder, work / "run")


def run_distill_choice() -> dict:
    """distill's attention and Liger choice for this machine, for a TRL side that runs first."""
    import torch

    from distill.train import train_options
    from distill.config import TrainConfig

    on_gpu = torch.cuda.is_available()
    return {"attention": train_options.attention(TrainConfig(packing=True), on_gpu),
            "liger": train_options.liger(TrainConfig(packing=True), on_gpu)}


def run_plain_trl(model_dir: Path, convs, work: Path, a, attention: str, liger: bool) -> dict:
    """What a user writes with TRL alone: the same model, rows and settings, packing on."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, PrinterCallback
    from trl import SFTConfig, SFTTrainer

    on_gpu = torch.cuda.is_available()
    dtype = torch.bfloat16 if on_gpu else torch.float32
    tokenizer = load_tokenizer(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, attn_implementation=attention)
    dataset = datasets.Dataset.from_list([{"prompt": c[:1], "completion": c[1:]} for c in convs])
    args = SFTConfig(output_dir=str(work / "trl"), per_device_train_batch_size=a.batch_size, max_steps=a.steps,
                     learning_rate=a.lr, lr_scheduler_type="cosine", seed=a.seed, max_length=a.max_length,
                     packing=True, completion_only_loss=True, gradient_checkpointing=a.gradient_checkpointing,
                     gradient_checkpointing_kwargs={"use_reentrant": False} if a.gradient_checkpointing else None,
                     use_liger_kernel=liger, bf16=on_gpu, use_cpu=not on_gpu, save_strategy="no", report_to="none",
                     logging_steps=1, disable_tqdm=True)
    peft = None
    if a.method == "lora":
        from peft import LoraConfig

        peft = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft)
    trainer.remove_callback(PrinterCallback)  # distill prints about ten lines; so do we, none
    result = trainer.train()
    return {"train_seconds": round(result.metrics["train_runtime"], 2)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="write the JSON result here")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per side (30; --tiny 4)")
    parser.add_argument("--max-length", type=int, default=None, help="packed row length (4096; --tiny 256)")
    parser.add_argument("--batch-size", type=int, default=None, help="packed rows per step (4; --tiny 2)")
    parser.add_argument("--warmup-steps", type=int, default=None, help="steps left out of the timing (3; --tiny 1)")
    parser.add_argument("--method", choices=["full", "lora"], default="full")
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--tokenizer", type=Path, help="a local tokenizer folder (default: one built here)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds in alternating order; best of each side")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model and short rows: a CPU smoke run")
    a = parser.parse_args(argv)
    defaults = dict(steps=4, max_length=256, batch_size=2, warmup_steps=1) if a.tiny else \
        dict(steps=30, max_length=4096, batch_size=4, warmup_steps=3)
    for key, value in defaults.items():
        if getattr(a, key) is None:
            setattr(a, key, value)
    if a.max_length < 256:
        parser.error("--max-length must be at least 256 (the rows' question and template need room)")
    if a.steps <= a.warmup_steps:
        parser.error("--steps must be more than --warmup-steps")

    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import transformers
    import trl

    started = time.perf_counter()
    rng = random.Random(a.seed)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir = work / "model"
        text = " ".join(synthetic_words(rng, 60_000 if a.tiny else 400_000))
        if a.tokenizer:
            tokenizer = load_tokenizer(a.tokenizer)
            tokenizer_used = str(a.tokenizer)
        else:
            tokenizer = build_tokenizer(model_dir, text, 2000 if a.tiny else 8000)
            tokenizer_used = f"byte-level BPE trained by this script ({len(tokenizer)} tokens)"
        pool = tokenizer(text)["input_ids"]
        params = build_model(model_dir, tokenizer, a.tiny)
        lo, hi, median = (20, 200, 80) if a.tiny else (200, 4000, 1200)
        hi = min(hi, a.max_length - 160)  # room for the question and the template
        lo = min(lo, hi)
        # enough rows for every step in one pass (no repeats), with room for BFD's partly filled bins
        budget = int(a.steps * a.batch_size * a.max_length * 1.3)
        convs, lengths = conversations(tokenizer, rng, budget, lo, hi, median, pool)
        rows = len(convs)

        clock = Clock()
        clock.install()
        # rounds in alternating order (distill first, then TRL first, …), best round of each side:
        # the side that runs first in a process pays for warm-up the timing does not exclude
        best: dict[str, tuple] = {}
        ours = None
        for r in range(a.rounds):
            for name in (("distill", "trl") if r % 2 == 0 else ("trl", "distill")):
                if name == "distill":
                    ours = run_distill(model_dir, convs, work / f"distill-{r}", a)
                else:
                    choice = ours or run_distill_choice()
                    run_plain_trl(model_dir, convs, work / f"trl-{r}", a, choice["attention"], choice["liger"])
                timed, memory = clock.measure(a.warmup_steps), peak_memory()
                if name not in best or timed["tokens_per_s"] > best[name][0]["tokens_per_s"]:
                    best[name] = (timed, memory, ours if name == "distill" else None)
        timed_ours, mem_ours, ours = best["distill"]
        timed_base, mem_base, _ = best["trl"]

    def side(timed: dict, memory, extra: dict) -> dict:
        mfu = 6 * params * timed["tokens_per_s"] / PEAK_FLOPS
        return {**timed, "tokens_per_s": round(timed["tokens_per_s"], 1), "mfu": round(mfu, 4),
                "peak_gpu_memory_gib": memory, **extra}

    result = {
        "bench": "train_packing_gpu",
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "model": "random-weight Qwen2 " + ("tiny (2 layers, hidden 64)" if a.tiny else "with Qwen2.5-1.5B's config"),
        "parameters": params,
        "tokenizer": tokenizer_used,
        "method": a.method, "steps": a.steps, "warmup_steps": a.warmup_steps, "batch_size": a.batch_size,
        "max_length": a.max_length, "gradient_checkpointing": a.gradient_checkpointing, "rounds": a.rounds,
        "dtype": ours["dtype"], "attention": ours["attention"], "liger": ours["liger"],
        "rows": rows, "reasoning_tokens": {"min": min(lengths), "median": sorted(lengths)[len(lengths) // 2],
                                           "max": max(lengths)},
        "distill": side(timed_ours, mem_ours, {"padding_waste": ours["padding_waste"], "loss_last": ours["loss_last"]}),
        "trl": side(timed_base, mem_base, {}),
        "ratio": round(timed_ours["tokens_per_s"] / timed_base["tokens_per_s"], 3),
        "mfu_formula": f"6 * parameters * tokens_per_s / {PEAK_FLOPS:.0f} (H100/H200 SXM dense bf16 peak)",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__},
        "wall_seconds": round(time.perf_counter() - started, 1),
        "date": time.strftime("%Y-%m-%d"),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
