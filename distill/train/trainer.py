"""The TRL trainer and what distill wraps around it: the EOS the student stops at, the padding
count, the length-grouped sampler seeded by epoch, `train.trl` checked against SFTConfig, the
compact progress lines, the loss plot and the LoRA merge (used by train/stage.py)."""

from __future__ import annotations

import math
from pathlib import Path

from .. import models
from . import train_options
from ..errors import UserError
from .student import rope_overrides
from ..ui import console


def _align_eos(model, tokenizer) -> None:
    """The student must stop where its training text ends: the tokenizer's EOS (which the chat
    template ends each turn with) must be one of the generation config's stop tokens."""
    eos = tokenizer.eos_token_id
    config = model.generation_config
    if eos is None or config is None:
        return
    current = config.eos_token_id
    stops = [] if current is None else [current] if isinstance(current, int) else list(current)
    if eos not in stops:
        config.eos_token_id = stops + [eos] if stops else eos
        console.print(f"train: generation stops at the tokenizer's EOS {tokenizer.eos_token!r} too "
                      f"(the model's generation config had {current})")


def _count_padding(trainer) -> dict:
    """Wrap the trainer's collator to count pad tokens in the batches it really builds: the batch's
    token slots less the tokens of the rows that went in. That holds for padded batches and for
    padding-free packed ones (one flat row, no attention_mask, padded only by pad_to_multiple_of)."""
    counts = {"pad": 0, "tokens": 0}
    collate = trainer.data_collator

    def counting(features):
        batch = collate(features)
        labels = batch.get("labels")
        if labels is not None and not bool((labels != -100).any()):
            # the loss would be 0/0 and its NaN would reach every weight; rows without a supervised
            # token are left out before training, so this means the masking itself went wrong
            raise UserError("a training batch has no supervised token (every label is masked); "
                            "check the student's chat template, or set train.loss_on: all")
        slots = int(batch["input_ids"].numel())
        counts["tokens"] += slots
        counts["pad"] += slots - sum(len(f["input_ids"]) for f in features)
        return batch

    trainer.data_collator = counting
    return counts


def _sft_trainer(grouped: bool):
    """TRL's SFTTrainer; with grouped batches, one whose sampler is seeded by the epoch.

    transformers' own group_by_length sampler draws its shuffle from torch's global RNG when the
    epoch's iterator is made, and on --resume that happens before the checkpoint's RNG state is
    restored: a run resumed in its second epoch or later would replay the first epoch's order
    (rows trained twice, others not at all). Here the shuffle comes from (data seed + epoch),
    the epoch read from the trainer's state, which a resumed run restores from the checkpoint;
    every process of a multi-GPU run draws the same order, as accelerate's batch sharding needs.
    TRL's GRPOTrainer overrides the same method for its own sampler."""
    from trl import SFTTrainer

    if not grouped:
        return SFTTrainer

    import datasets
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    class LengthGrouped(torch.utils.data.Sampler):
        def __init__(self, lengths: list[int], group: int, seed: int, trainer) -> None:
            # the trainer, not its state: training replaces trainer.state (fresh, or loaded from
            # the checkpoint) after the sampler is made
            self.lengths, self.group, self.seed, self.trainer = lengths, group, seed, trainer

        def __len__(self) -> int:
            return len(self.lengths)

        def __iter__(self):
            # state.epoch is a whole number when an epoch starts, and epoch + done/steps when a
            # run resumes inside one
            epoch = math.floor((self.trainer.state.epoch or 0) + 1e-9)
            generator = torch.Generator().manual_seed(self.seed + epoch)
            return iter(get_length_grouped_indices(self.lengths, self.group, generator=generator))

    class GroupedSFTTrainer(SFTTrainer):
        def _get_train_sampler(self, train_dataset=None):
            import pyarrow.compute as pc

            dataset = train_dataset if train_dataset is not None else self.train_dataset
            if not isinstance(dataset, datasets.Dataset):  # streamed rows: no lengths to group by
                return super()._get_train_sampler(train_dataset)
            # lengths from the Arrow column: no Python list of every row's token ids
            lengths = pc.list_value_length(dataset.with_format("arrow")["input_ids"]).to_pylist()
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            group = self.args.train_batch_size * self.args.gradient_accumulation_steps
            return LengthGrouped(lengths, group, seed, self)

    return GroupedSFTTrainer


def _group_by_length(cfg) -> bool:
    """Batch rows of like length together unless told: with padded batches every row is padded to
    the longest of its batch, and reasoning traces vary tenfold in length. Packing has no padding
    to save, and a batch of one row nothing to group."""
    if cfg.group_by_length is not None:
        return cfg.group_by_length
    return not cfg.packing and cfg.batch_size > 1


def _supervised_counts(dataset) -> list[int]:
    """Tokens per row that carry loss, as TRL prepared them (after masking and truncation).
    Counted on the Arrow column (a running sum of the mask, read at each row's end): a Python
    loop over every label costs a second per 30M tokens, before the first step."""
    import numpy as np
    import pyarrow.compute as pc

    counts = []
    for chunk in dataset.with_format("arrow")["labels"].chunks:  # a ChunkedArray, row selection applied
        lengths = pc.list_value_length(chunk).fill_null(0).to_numpy(zero_copy_only=False)
        mask = pc.not_equal(chunk.flatten(), -100).to_numpy(zero_copy_only=False)
        running = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
        ends = np.cumsum(lengths, dtype=np.int64)
        counts += (running[ends] - running[ends - lengths]).tolist()
    return counts


def _trl_extra(extra: dict) -> dict:
    """`train.trl`: further SFTConfig arguments, checked against TRL's own fields so that a typo
    is one line naming the nearest one rather than a TypeError deep in TRL."""
    if not extra:  # nothing to check: no TRL import on the recipe check every command runs
        return {}
    import dataclasses

    from trl import SFTConfig

    from ..errors import unknown_key_error

    valid = [f.name for f in dataclasses.fields(SFTConfig)]
    for key in extra:
        if key not in valid:
            raise unknown_key_error(str(key), valid, "recipe", "train.trl")
    train_options.check_trl_values(extra)
    return dict(extra)


def _loss_plot(stage: Path, history: list[dict]) -> str:
    """student/loss.png: the training loss per logged step, drawn as `distill inspect` draws it
    (short leftover batches marked, a running mean by tokens)."""
    from ..metrics import loss_points
    from ..plots import training_loss

    points = loss_points(history)
    if points:
        eval_loss = [(e["step"], float(e["eval_loss"])) for e in history
                     if isinstance(e.get("eval_loss"), (int, float)) and isinstance(e.get("step"), int)]
        fig = training_loss([(s, v) for s, v, _ in points], eval_loss, [t for *_, t in points])
    else:
        from matplotlib.figure import Figure  # renders with Agg: no display, no pyplot state

        fig = Figure(figsize=(7, 4), dpi=100)
        ax = fig.subplots()
        ax.set_title("Training loss per step (nothing logged)")
    fig.savefig(stage / "loss.png")
    return "loss.png"


def _quiet_logs(trainer) -> None:
    """Replace the trainer's per-step log dicts with about ten compact lines."""
    from transformers import PrinterCallback, ProgressCallback, TrainerCallback

    import time

    from ..ui import duration, time_left

    class Report(TrainerCallback):
        started = (0.0, 0)  # (clock, step) when this process began training: a resumed run counts from there
        shown = -1  # the last tenth of the run a line was printed for

        def on_train_begin(self, args, state, control, **kwargs):
            Report.started = (time.monotonic(), state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            # a line each time the run passes another tenth of its steps (whatever logging_steps is)
            tenth = state.global_step * 10 // max(1, state.max_steps)
            if logs and "loss" in logs and (tenth > Report.shown or state.global_step == state.max_steps):
                Report.shown = tenth
                clock, first = Report.started
                elapsed, done = time.monotonic() - clock, state.global_step - first
                eta = time_left(elapsed, done, state.max_steps - state.global_step)
                console.print(
                    f"  step {state.global_step}/{state.max_steps}  loss {float(logs['loss']):.4f}  "
                    f"lr {float(logs.get('learning_rate', 0)):.2e}  {duration(elapsed)}, ETA {eta}"
                )

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(Report())


def _merge(stage: Path, student, model=None, max_length: int | None = None) -> None:
    """Write adapter + base merged into plain weights at `stage/merged`."""
    merged = stage / "merged"
    if not (stage / "adapter_config.json").is_file():
        console.print("train: full fine-tuning already wrote plain weights; nothing to merge")
        return
    from peft import PeftModel

    if model is None:
        from transformers import AutoModelForCausalLM

        # the base as the card names it (its pinned revision, and the RoPE settings it trained
        # with, which the adapter does not record)
        path, kwargs = models.load_args(student)
        rope = rope_overrides(path, kwargs, student, max_length or student.max_length)
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(path, **kwargs, **rope), str(stage))
    model.merge_and_unload().save_pretrained(str(merged))
    from transformers import AutoTokenizer, GenerationConfig

    AutoTokenizer.from_pretrained(str(stage)).save_pretrained(str(merged))
    if (stage / "generation_config.json").is_file():  # the aligned EOS, not the base model's
        GenerationConfig.from_pretrained(str(stage)).save_pretrained(str(merged))
    console.print(f"train: merged weights in {merged}")
