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
from ..metrics import loss_points, quarter_means
from .student import context_warning, load_tokenizer, rope_overrides
from .trainer import (_align_eos, _count_padding, _group_by_length, _loss_plot, _merge, _quiet_logs, _sft_trainer,
                      _supervised_counts, _trl_extra)
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
    turns = list(tokens["_turns"])  # read once: each `tokens[col][i]` builds a new column view (1.3 s for 2,000 rows)
    totals = turn_totals([turns[i] for i in kept])
    unmatched = sum(tokens["_unmatched"])
    if skip:
        tokens = tokens.select(kept)
    return tokens.select_columns(["input_ids", "labels"]), len(long), len(lossless - drop), totals, unmatched


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
    folder = _data_folder(cfg, data, out)
    if summary_path.is_file():
        return _already_trained(recipe, out, merge, max_length)
    dataset = _load_rows(folder, cfg)
    checkpoint = _claim(recipe, out, stage, resume)

    import torch
    from transformers.utils import logging as hf_logging
    from trl import SFTConfig

    hf_logging.disable_progress_bar()
    # transformers 5.2x renamed gradient_checkpointing; TRL still uses the old name internally.
    warnings.filterwarnings("ignore", message=r".*gradient_checkpointing` is deprecated", category=FutureWarning)
    models.check_loadable(student, "student")
    path, kwargs = models.load_args(student)
    tokenizer = load_tokenizer(path, kwargs, student)
    dataset, overlong, empty, by_turn, unmatched = _prepare(dataset, tokenizer, cfg, max_length, Path(out))
    _say_prepared(unmatched, overlong, cfg, max_length)
    dtype = models.torch_dtype(cfg.dtype if cfg.dtype != "auto" else student.dtype)
    on_gpu = torch.cuda.is_available()
    model, attention, liger = _load_student(path, kwargs, tokenizer, student, cfg, max_length, dtype, on_gpu)
    peft_config = _lora(cfg, student, kwargs)
    args = SFTConfig(**_sft_settings(cfg, stage, max_length, dtype, on_gpu, liger))
    grouped = args.train_sampling_strategy == "group_by_length"  # train.trl may have said otherwise
    trainer = _sft_trainer(grouped)(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config
    )
    counts = _supervised_counts(trainer.train_dataset)
    _announce(dataset, counts, empty, max_length, cfg, student, dtype, attention, grouped, liger)
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
    points = loss_points(trainer.state.log_history)
    # weighted by each step's tokens: a leftover batch of one row counts as one row (metrics.quarter_means)
    loss_first, loss_last = quarter_means([loss for _, loss, _ in points], [tokens for *_, tokens in points])
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
        "loss_first": loss_first,  # mean per token over the first quarter of the training tokens
        "loss_last": loss_last,  # mean per token over the last quarter
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
    _write_outputs(stage, summary_path, summary, padding, trainer, student, merge)
    return summary


def _data_folder(cfg, data: Path | None, out: Path) -> Path | None:
    """The filtered rows to train on: `data`, the run folder's own filter output, or None when
    the recipe names its own `train.data`."""
    if data is None and not cfg.data and (Path(out) / "filtered").is_dir():
        data = Path(out)  # the run folder's own filter output (refused below while unfinished)
    if data is None and not cfg.data:
        raise ConfigError("no training data: run `distill filter --out RUN` first, give --data IN (a run folder, "
                          "or Parquet with `messages`), or name it in the recipe (train.data, or dataset_name)")
    folder = shards.input_folder(data, "filtered", "filter") if data is not None else None
    return folder


def _already_trained(recipe: Recipe, out: Path, merge: bool, max_length: int) -> dict:
    """A complete stage: its summary, merged now when asked and not done before."""
    student, stage = recipe.student, Path(out) / STAGE
    summary_path = stage / SUMMARY
    runfolder.claim(Path(out), recipe, "train", started=True)
    summary = json.loads(summary_path.read_text())
    if merge and not (stage / "merged").is_dir():
        _merge(stage, student, max_length=max_length)
    console.print(f"train: {stage} is complete; skipping")
    return summary


def _claim(recipe: Recipe, out: Path, stage: Path, resume: bool) -> Path | None:
    """Claim the run folder for training; the checkpoint to resume from (refused without --resume)."""
    checkpoint = last_checkpoint(stage)
    if checkpoint is not None and not resume:
        raise UserError(
            f"{checkpoint.parent}: an interrupted run left {checkpoint.name}; rerun with --resume to continue "
            f"from it, or delete {checkpoint.parent} to start over"
        )
    runfolder.claim(Path(out), recipe, "train", started=checkpoint is not None)
    return checkpoint


def _say_prepared(unmatched: int, overlong: int, cfg, max_length: int) -> None:
    if unmatched:
        console.print(f"train: the chat template rewrites earlier answers once later turns follow, so "
                      f"{plural(unmatched, 'earlier assistant turn')} carry no loss")
    if overlong:
        console.print(f"train: {plural(overlong, 'conversation')} longer than max_length={max_length}: "
                      + ("dropped" if cfg.overlong == "drop" else "truncated (train.overlong: drop drops them)"))


def _load_student(path, kwargs: dict, tokenizer, student, cfg, max_length: int, dtype, on_gpu: bool):
    """The student's weights as the recipe trains them (4-bit for qlora, the card's RoPE settings,
    the attention implementation); returns (model, attention, liger)."""
    from transformers import AutoModelForCausalLM

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
    return model, attention, liger


def _lora(cfg, student, kwargs: dict):
    """The peft LoraConfig for lora and qlora; None for full fine-tuning."""
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
    return peft_config


def _sft_settings(cfg, stage: Path, max_length: int, dtype, on_gpu: bool, liger: bool) -> dict:
    """TRL's SFTConfig arguments: the recipe's train section, then its own `train.trl` ones."""
    import torch

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
    return settings


def _announce(dataset, counts: list[int], empty: int, max_length: int, cfg, student, dtype, attention: str,
              grouped: bool, liger: bool) -> None:
    """Stop when no token carries loss; otherwise one line saying what is about to train."""
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


def _write_outputs(stage: Path, summary_path: Path, summary: dict, padding: dict, trainer, student, merge: bool) -> None:
    """Rank 0: the log, the loss plot, the merged weights when asked, the summary last."""
    if padding["tokens"]:
        console.print(f"train: padding waste {100 * summary['padding_waste']:.1f}% of the batch tokens")
    shards.write_json(stage / "train_log.json", trainer.state.log_history)
    summary["plots"] = [_loss_plot(stage, trainer.state.log_history)]
    if merge:
        _merge(stage, student, trainer.model)
    shards.write_json(summary_path, summary)  # last: its presence means the stage is complete
