"""The plain engine: transformers `generate`, batched with left padding, one shard at a time."""

from __future__ import annotations

from .. import models
from ..config import TeacherCard
from ..prompting import THINK_OPEN, prompt_messages
from . import GenSettings, Sample, shard_seed


class _Steps:
    """A `generate` streamer that tells the progress line each decoding step (one token a row;
    rows that already stopped are counted until the batch ends, then settled to their length)."""

    def __init__(self, progress, rows: int) -> None:
        self.progress, self.rows, self.steps = progress, rows, -1

    def put(self, value) -> None:  # the first call carries the prompt, then one token per row
        self.steps += 1
        for row in range(self.rows if self.steps else 0):
            self.progress.partial(("hf", row), self.steps)

    def end(self) -> None:
        pass


def open_backend(teacher: TeacherCard, settings: GenSettings):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    path, kwargs = models.load_args(teacher)
    tokenizer = AutoTokenizer.from_pretrained(models.tokenizer_source(path, settings.adapter), **kwargs)
    tokenizer.padding_side = "left"  # decoder-only batching: prompts end where generation starts
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = models.torch_dtype(teacher.dtype)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kwargs)
    if settings.adapter:  # a LoRA adapter: applied and merged in memory, no merged copy on disk
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, settings.adapter).merge_and_unload()
    model = model.to(device).eval()
    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    eos_ids.add(tokenizer.eos_token_id)
    eos_ids.discard(None)
    prefix = THINK_OPEN + "\n" if settings.template.think_prefix else ""
    sampling = settings.temperature > 0

    def render(problem: str) -> str:
        messages = prompt_messages(settings.template, problem)
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + prefix

    def shard(prompts: list[dict], seed: int, progress) -> list[Sample]:
        torch.manual_seed(seed)  # per shard: a resumed shard samples what it would have
        samples: list[Sample] = []
        for start in range(0, len(prompts), settings.batch_size):
            batch = prompts[start : start + settings.batch_size]
            enc = tokenizer(
                [render(p["problem"]) for p in batch], return_tensors="pt", padding=True, add_special_tokens=False
            ).to(device)
            with torch.inference_mode():
                out = model.generate(
                    **enc,
                    do_sample=sampling,
                    temperature=settings.temperature if sampling else None,
                    top_p=settings.top_p if sampling else None,
                    top_k=None,
                    max_new_tokens=settings.max_tokens,
                    num_return_sequences=settings.n,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=sorted(eos_ids),
                    streamer=_Steps(progress, len(batch) * settings.n),
                )
            for row, ids in enumerate(out[:, enc["input_ids"].shape[1] :].tolist()):
                j, k = divmod(row, settings.n)
                stop = next((i for i, t in enumerate(ids) if t in eos_ids), None)
                kept = ids if stop is None else ids[: stop + 1]
                samples.append(
                    {
                        "prompt_index": start + j,
                        "sample_idx": k,
                        "completion": prefix + tokenizer.decode(kept, skip_special_tokens=True),
                        "finish_reason": "length" if stop is None else "stop",
                        "prompt_tokens": int(enc["attention_mask"][j].sum()),
                        "completion_tokens": len(kept),
                    }
                )
                progress.sample(len(kept), truncated=stop is None, key=("hf", row))
            progress.prompts_done(len(batch))
        return samples

    def run(work, progress, on_shard) -> None:
        for index, prompts in work:
            on_shard(index, shard(prompts, shard_seed(settings.seed, index), progress))

    return run
