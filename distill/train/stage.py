"""run_train(): filtered rows → conversations → token ids and labels → TRL SFTTrainer (+ peft LoRA).

The loss is on the assistant turns (every one of them; `train.loss_on: last` the last only,
`all` every token): sfttokens.py tokenizes each conversation once and labels the text each
assistant turn adds to the chat template's render, which works with any chat template,
including ones without `{% generation %}` markers. TRL receives the labelled rows as they are.
Before training we count the supervised tokens TRL actually kept and stop when there are none.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

from .. import models, runfolder, shards
from . import train_options
from ..config import Recipe
from ..errors import ConfigError, UserError
from ..metrics import quarter_means
from .student import context_warning, load_tokenizer, rope_overrides
from ..ui import console, plural

STAGE = "student"
SUMMARY = "train_summary.json"


def _load_rows(folder: Path | None, cfg):
    """The training conversations as a datasets.Dataset with a `messages` column: the Parquet
    shards in `folder` (the filter's output, `--data`), or with no folder the recipe's own
    `train.data` sources (files, cards, hub datasets; see sftdata.py)."""
    if folder is None:
        from .sftdata import load_conversations

        ds = load_conversations(cfg.data, cfg.data_seed, cfg.data_mix, cfg.data_mix_probs)
        return _check_ends(ds, "train.data", cfg.loss_on)
    files = shards.list_files(folder)
    if not files:
        raise UserError(f"{folder}: no Parquet files to train on")
    for f in files:
        if "messages" not in shards.open_file(f).schema_arrow.names:
            raise UserError(f"{f}: no 'messages' column; train on the output of `distill filter`")
    total = shards.count_rows(folder)
    if total == 0:
        report = folder.parent / "report.json"
        hint = f" (see {report})" if report.is_file() else ""
        raise UserError(f"nothing to train on: the filter kept 0 rows in {folder}{hint}")
    import datasets

    datasets.disable_progress_bars()
    ds = datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train")
    return _check_ends(ds.select_columns(["messages"]), folder, cfg.loss_on)


def _check_ends(ds, where, loss_on: str):
    """With the loss on the answers, each conversation must end with one: a trailing prompt would
    be text the student is never asked to write."""
    if loss_on != "all":
        for messages in ds["messages"]:
            if not messages or messages[-1]["role"] != "assistant":
                raise UserError(f"{where}: a conversation does not end with an assistant turn")
    return ds


def _prepare(dataset, tokenizer, cfg, max_length: int, run: Path):
    """Tokenize once, with labels on the supervised turns (sfttokens.py), batched, in
    `dataset_num_proc` processes, kept in RUN/tokens for a resumed run. Conversations longer
    than max_length are counted, and dropped when asked (TRL would truncate them silently);
    rows whose first supervised token lies beyond max_length carry no loss and are left out.
    Returns (dataset of input_ids/labels, overlong count, rows left out for want of a supervised
    token, supervised tokens per assistant-turn position, assistant turns left unmatched)."""
    from .sfttokens import cached, turn_totals

    # without packing the rows are cut to max_length here and TRL has nothing left to prepare;
    # packing cuts its own (TRL packs the tokenized rows)
    tokens, reused = cached(run, dataset, tokenizer, cfg.loss_on, max_length, cfg.trl.get("dataset_num_proc"),
                            truncate=not cfg.packing)
    if reused:
        console.print(f"train: {len(tokens)} conversations tokenized before, read from {run / 'tokens'}")
    lengths, first = tokens["_length"], tokens["_first"]
    long = {i for i, n in enumerate(lengths) if n > max_length}
    lossless = {i for i, f in enumerate(first) if f < 0 or f >= max_length}
    drop = long if cfg.overlong == "drop" else set()
    skip = drop | lossless
    kept = [i for i in range(len(lengths)) if i not in skip]
    if not kept:
        raise UserError(f"every conversation is longer than max_length={max_length}"
                        + (", or its prompt alone fills it (no supervised token within it)" if lossless - drop else "")
                        + "; raise train.max_length")
    totals = turn_totals([tokens["_turns"][i] for i in kept])
    unmatched = sum(tokens["_unmatched"])
    if skip:
        tokens = tokens.select(kept)
    return tokens.select_columns(["input_ids", "labels"]), len(long), len(lossless - drop), totals, unmatched


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
    """Tokens per row that carry loss, as TRL prepared them (after masking and truncation)."""
    return [sum(1 for t in labels if t != -100) for labels in dataset["labels"]]


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


def check_config(recipe: Recipe) -> None:
    """Fail on a missing student, or on a method this machine cannot run, before any stage runs."""
    if recipe.student is None:
        raise ConfigError(f"recipe '{recipe.name}' names no student: add `student: CARD` or --set student=CARD")
    _trl_extra(recipe.train.trl)
    train_options.check_reporters(recipe.train)
    train_options.check_hub(recipe.train)
    optim = recipe.train.trl.get("optim")
    if recipe.train.liger or recipe.train.attn_implementation or optim:  # the choices that can fail on this machine
        import torch

        on_gpu = torch.cuda.is_available()
        train_options.attention(recipe.train, on_gpu)
        train_options.liger(recipe.train, on_gpu)
        if optim:
            train_options.check_optimizer(str(optim), on_gpu)
    if recipe.train.method == "qlora":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("train.method: qlora needs a CUDA GPU (bitsandbytes 4-bit); use lora or full on this machine")
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise ConfigError("train.method: qlora needs bitsandbytes: pip install bitsandbytes") from None


def last_checkpoint(stage: Path) -> Path | None:
    """The newest complete checkpoint an interrupted run left (TRL's `checkpoint-STEP` folders)."""
    folder = stage / "checkpoints"
    if not folder.is_dir():
        return None
    from transformers.trainer_utils import get_last_checkpoint

    found = get_last_checkpoint(str(folder))
    return Path(found) if found else None


def run_train(recipe: Recipe, data: Path | None, out: Path, merge: bool = False, resume: bool = False) -> dict:
    """Fine-tune the recipe's student on the kept rows in `data` (None: the recipe's `train.data`);
    write `out/student`. With
    `resume`, an interrupted run continues from its last checkpoint, with the same data order."""
    check_config(recipe)
    student, cfg = recipe.student, recipe.train
    stage = Path(out) / STAGE
    summary_path = stage / SUMMARY
    max_length = cfg.max_length or student.max_length
    if data is None and not cfg.data and (Path(out) / "filtered").is_dir():
        data = Path(out)  # the run folder's own filter output (refused below while unfinished)
    if data is None and not cfg.data:
        raise ConfigError("no training data: run `distill filter --out RUN` first, give --data IN (a run folder, "
                          "or Parquet with `messages`), or name it in the recipe (train.data, or dataset_name)")
    folder = shards.input_folder(data, "filtered", "filter") if data is not None else None
    if summary_path.is_file():
        runfolder.claim(Path(out), recipe, "train", started=True)
        summary = json.loads(summary_path.read_text())
        if merge and not (stage / "merged").is_dir():
            _merge(stage, student, max_length=max_length)
        console.print(f"train: {stage} is complete; skipping")
        return summary
    dataset = _load_rows(folder, cfg)
    checkpoint = last_checkpoint(stage)
    if checkpoint is not None and not resume:
        raise UserError(
            f"{checkpoint.parent}: an interrupted run left {checkpoint.name}; rerun with --resume to continue "
            f"from it, or delete {checkpoint.parent} to start over"
        )
    runfolder.claim(Path(out), recipe, "train", started=checkpoint is not None)

    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging
    from trl import SFTConfig

    hf_logging.disable_progress_bar()
    # transformers 5.2x renamed gradient_checkpointing; TRL still uses the old name internally.
    warnings.filterwarnings("ignore", message=r".*gradient_checkpointing` is deprecated", category=FutureWarning)
    models.check_loadable(student, "student")
    path, kwargs = models.load_args(student)
    tokenizer = load_tokenizer(path, kwargs, student)
    dataset, overlong, empty, by_turn, unmatched = _prepare(dataset, tokenizer, cfg, max_length, Path(out))
    if unmatched:
        console.print(f"train: the chat template rewrites earlier answers once later turns follow, so "
                      f"{plural(unmatched, 'earlier assistant turn')} carry no loss")
    if overlong:
        console.print(f"train: {plural(overlong, 'conversation')} longer than max_length={max_length}: "
                      + ("dropped" if cfg.overlong == "drop" else "truncated (train.overlong: drop drops them)"))
    dtype = models.torch_dtype(cfg.dtype if cfg.dtype != "auto" else student.dtype)
    on_gpu = torch.cuda.is_available()
    load = dict(kwargs)
    if cfg.method == "qlora":
        from transformers import BitsAndBytesConfig

        load["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=cfg.qlora_double_quant,
            bnb_4bit_compute_dtype=dtype
        )
    rope = rope_overrides(path, kwargs, student, max_length)
    if rope:
        config = rope["config"]
        console.print(f"train: RoPE {config.rope_parameters}, max_position_embeddings {config.max_position_embeddings} "
                      "from the student card" + (" (load the adapter on a base with the same settings, or use --merge, "
                                                 "whose config.json keeps them)" if cfg.method != "full" else ""))
    load.update(rope)
    attention = train_options.attention(cfg, on_gpu)
    liger = train_options.liger(cfg, on_gpu)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation=attention, **load)
    _align_eos(model, tokenizer)
    if (warning := context_warning(model.config, max_length, student)) is not None:
        console.print(warning)
    peft_config = None
    if cfg.method in ("lora", "qlora"):
        from peft import LoraConfig

        targets = cfg.lora_target_modules or student.lora_target_modules
        peft_config = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=targets if isinstance(targets, str) else list(targets),
            task_type="CAUSAL_LM",
            revision=kwargs.get("revision"),  # recorded in adapter_config.json: a merge or eval loads this base
        )
    settings = dict(
        output_dir=str(stage / "checkpoints"),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float below 1 is a ratio of total steps
        weight_decay=cfg.weight_decay,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        report_to=list(cfg.report_to) or "none",
        max_grad_norm=cfg.max_grad_norm,
        lr_scheduler_kwargs=dict(cfg.lr_scheduler_kwargs),
        push_to_hub=cfg.push_to_hub,
        hub_model_id=cfg.hub_model_id,
        seed=cfg.seed,
        max_length=max_length,
        gradient_checkpointing=cfg.gradient_checkpointing,
        # reentrant checkpointing loses the gradient when only LoRA adapters train (frozen inputs)
        gradient_checkpointing_kwargs={"use_reentrant": False} if cfg.gradient_checkpointing else None,
        packing=cfg.packing,  # TRL's default strategy (bfd) is padding-free: one flat row per batch
        # the rows come tokenized, labelled, cut to max_length and without fully masked rows
        dataset_kwargs={"skip_prepare_dataset": True} if not cfg.packing else None,
        train_sampling_strategy="group_by_length" if _group_by_length(cfg) else "random",
        use_liger_kernel=liger,
        bf16=dtype == torch.bfloat16,  # never bf16 on a CPU: TrainingArguments refuses it there
        fp16=False,
        use_cpu=not on_gpu,
        disable_tqdm=True,  # _quiet_logs prints progress instead
    )
    settings.update(_trl_extra(cfg.trl))  # the recipe's own SFTConfig arguments win
    if settings.get("dataset_num_proc"):  # a recipe written for a 48-core node, run on a laptop
        settings["dataset_num_proc"] = min(settings["dataset_num_proc"], os.cpu_count() or 1)
    args = SFTConfig(**settings)
    grouped = args.train_sampling_strategy == "group_by_length"  # train.trl may have said otherwise
    trainer = _sft_trainer(grouped)(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config
    )
    counts = _supervised_counts(trainer.train_dataset)
    if sum(counts) == 0:
        raise UserError(
            f"no supervised tokens in {plural(dataset.num_rows, 'row')}: every assistant turn falls beyond "
            f"max_length={max_length}; raise train.max_length"
        )
    console.print(
        f"train: {dataset.num_rows} conversations, {sum(counts)} supervised tokens"
        + (f" ({plural(empty, 'more row')} left out: the prompt alone fills max_length={max_length})" if empty else "")
        + f", {cfg.method} on {student.name} in {str(dtype).removeprefix('torch.')}, {attention} attention"
        + (", packed" if cfg.packing else "") + (", batches grouped by length" if grouped else "")
        + (", Liger kernels" if liger else "")
    )
    _quiet_logs(trainer)
    padding = _count_padding(trainer)
    if checkpoint is not None:
        console.print(f"train: resuming from {checkpoint.name}")
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint is not None else None)
    trainer.save_model(str(stage))  # every process: ZeRO-3 and FSDP gather the weights; rank 0 writes
    main = trainer.is_world_process_zero()
    if main:
        tokenizer.save_pretrained(str(stage))
        model.generation_config.save_pretrained(str(stage))  # with the aligned EOS, for the merged model too
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    loss_first, loss_last = quarter_means(losses)
    summary = {
        "student": models.describe(student),
        "method": cfg.method,
        "rows": dataset.num_rows,  # conversations (TRL's rows are packed sequences when packing)
        "supervised_tokens": sum(counts),
        # by assistant turn (first, second, …) within max_length: multi-turn rows learn every answer
        "supervised_tokens_by_turn": by_turn,
        "assistant_turns_unmatched": unmatched,
        "rows_without_supervised_tokens": empty,
        "steps": trainer.state.global_step,
        "loss_first": loss_first,  # mean of the first quarter
        "loss_last": loss_last,  # mean of the last quarter
        "train_loss": result.training_loss if math.isfinite(result.training_loss) else None,
        "train_seconds": round(result.metrics.get("train_runtime", 0.0), 2),
        "dtype": str(dtype).removeprefix("torch."),
        "attention": attention,
        "packing": cfg.packing,
        "group_by_length": grouped,
        "liger": liger,
        "overlong": overlong,
        "overlong_action": cfg.overlong,
        "padding_waste": round(padding["pad"] / padding["tokens"], 4) if padding["tokens"] else None,
        "batch_tokens": padding["tokens"] - padding["pad"],  # non-pad tokens the model was trained on
    }
    if not main:  # under accelerate: the other processes' counts are their own batches; rank 0 writes
        return summary
    if padding["tokens"]:
        console.print(f"train: padding waste {100 * summary['padding_waste']:.1f}% of the batch tokens")
    shards.write_json(stage / "train_log.json", trainer.state.log_history)
    summary["plots"] = [_loss_plot(stage, trainer.state.log_history)]
    if merge:
        _merge(stage, student, trainer.model)
    shards.write_json(summary_path, summary)  # last: its presence means the stage is complete
    return summary


def _loss_plot(stage: Path, history: list[dict]) -> str:
    """student/loss.png: the training loss per logged step."""
    from matplotlib.figure import Figure  # renders with Agg: no display, no pyplot state

    points = [(e["step"], e["loss"]) for e in history if "loss" in e and "step" in e]
    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.subplots()
    if points:
        ax.plot(*zip(*points), marker="." if len(points) < 50 else None)
    ax.set_title("Training loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    fig.tight_layout()
    fig.savefig(stage / "loss.png")
    return "loss.png"


def _quiet_logs(trainer) -> None:
    """Replace the trainer's per-step log dicts with about ten compact lines."""
    from transformers import PrinterCallback, ProgressCallback, TrainerCallback

    import time

    from ..ui import duration

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
                eta = duration(elapsed / done * (state.max_steps - state.global_step)) if done > 0 else "?"
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
