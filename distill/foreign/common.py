"""What both published formats share: the Trainer arguments, the student card, batch order, and
the settings that change nothing in what distill trains."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError

# Trainer arguments both formats write, and the TrainConfig field each becomes
TRAINER = {"learning_rate": "learning_rate", "num_train_epochs": "epochs", "max_steps": "max_steps",
           "per_device_train_batch_size": "batch_size", "gradient_accumulation_steps": "grad_accum",
           "lr_scheduler_type": "lr_scheduler", "lr_scheduler_kwargs": "lr_scheduler_kwargs",
           "weight_decay": "weight_decay", "max_grad_norm": "max_grad_norm", "seed": "seed",
           "logging_steps": "logging_steps", "save_steps": "save_steps", "save_total_limit": "save_total_limit",
           "push_to_hub": "push_to_hub", "hub_model_id": "hub_model_id"}

_EVAL = "distill trains without evaluation"
_LAUNCH = "a launcher setting; launch multi-GPU runs with distill train --accelerate"
_PROGRESS = "distill prints its own progress"
# settings that change nothing in what distill trains, with why (docs/recipes.md lists them)
NO_EFFECT = {
    "output_dir": "distill writes to --out", "overwrite_output_dir": "distill writes to --out",
    "resume_from_checkpoint": "use distill train --resume", "do_train": "distill train always trains",
    "do_eval": _EVAL, "do_predict": _EVAL, "eval_strategy": _EVAL, "evaluation_strategy": _EVAL, "eval_steps": _EVAL,
    "per_device_eval_batch_size": _EVAL, "test_split_size": _EVAL, "val_size": _EVAL, "eval_dataset": _EVAL,
    "dataset_test_split": _EVAL, "eval_on_start": _EVAL,
    "eval_on_each_dataset": _EVAL, "compute_accuracy": _EVAL, "predict_with_generate": _EVAL,
    "generation_max_length": _EVAL, "generation_num_beams": _EVAL, "generation_config": _EVAL,
    "eval_num_beams": _EVAL,
    "load_best_model_at_end": _EVAL, "metric_for_best_model": _EVAL, "greater_is_better": _EVAL,
    "early_stopping_steps": _EVAL, "per_device_eval_batch": _EVAL,
    "benchmarks": "run distill eval instead", "callbacks": "open-r1's hub callbacks are not run",
    "system_prompt": "open-r1 uses it for benchmarks only",
    "hub_model_revision": "hub revisions are not used", "overwrite_hub_revision": "hub revisions are not used",
    "push_to_hub_revision": "hub revisions are not used",
    "save_strategy": "distill saves a checkpoint every save_steps steps, for --resume",
    "save_only_model": "distill keeps optimizer state for --resume",
    "log_level": _PROGRESS, "logging_strategy": "distill logs every logging_steps",
    "logging_first_step": _PROGRESS, "disable_tqdm": _PROGRESS,
    "run_name": "names only the tracker's run", "wandb_entity": "set WANDB_ENTITY instead",
    "wandb_project": "set WANDB_PROJECT instead", "wandb_run_group": "set WANDB_RUN_GROUP instead",
    "wandb_log_unique_prompts": "GRPO only", "plot_loss": "distill always writes student/loss.png",
    "preprocessing_num_workers": "preprocessing parallelism (use dataset_num_proc)",
    "preprocessing_batch_size": "preprocessing parallelism", "dataloader_num_workers": "loader parallelism",
    "overwrite_cache": "no LLaMA-Factory cache here",
    "tokenized_path": "no LLaMA-Factory cache here", "cache_dir": "the hub cache is used",
    "ddp_timeout": _LAUNCH,
    "deepspeed": _LAUNCH, "fsdp": _LAUNCH, "fsdp_config": _LAUNCH,
    "ray_num_workers": _LAUNCH, "ray_run_name": _LAUNCH, "ray_storage_path": _LAUNCH, "resources_per_worker": _LAUNCH,
    "placement_strategy": _LAUNCH, "ray_init_kwargs": _LAUNCH, "ray_storage_filesystem": _LAUNCH,
    "global_batch_size": "not a training argument: the batch is per_device_train_batch_size x "
    "gradient_accumulation_steps x GPUs",
    "trust_remote_code": "student models load without remote code", "use_cpu": "distill picks the device",
    "model_init_kwargs": "distill loads the model", "do_sample": "a generation setting",
    "max_new_tokens": "a generation setting", "temperature": "a generation setting", "top_p": "a generation setting",
    "top_k": "a generation setting", "num_beams": "a generation setting", "repetition_penalty": "a generation setting",
    "length_penalty": "a generation setting",
    "template": "distill renders with the student tokenizer's chat template (chat_template: to change it)",
    "use_fast_tokenizer": "the model's fast tokenizer is used", "low_cpu_mem_usage": "a loading setting",
    "print_param_status": _PROGRESS,
    "include_effective_tokens_per_second": _PROGRESS, "use_reentrant_gc": "distill checkpoints without reentrancy",
    "hf_hub_token": "use HF_TOKEN", "ms_hub_token": "ModelScope is not used", "om_hub_token": "Modelers is not used",
    "use_swanlab": "SwanLab is not a distill tracker", "infer_backend": "an inference setting",
    "infer_dtype": "an inference setting", "vllm_maxlen": "an inference setting", "vllm_gpu_util": "an inference setting",
    "vllm_enforce_eager": "an inference setting", "vllm_max_lora_rank": "an inference setting",
    "vllm_config": "an inference setting", "use_kv_cache": "an inference setting", "skip_special_tokens": "an inference setting",
    "dataset_kwargs": "distill prepares the conversations itself", "dataset_text_field": "distill trains on conversations",
    "gradient_checkpointing_use_reentrant": "distill checkpoints without reentrancy",
}

_SAMPLING = ("random", "sequential", "group_by_length", "batch_rebalance")  # transformers 5's samplers


def report(value: Any) -> list:
    if value in (None, "none", ["none"]):
        return []
    return [value] if isinstance(value, str) else list(value)


def student(raw: dict, source: str) -> dict:
    model = raw.get("model_name_or_path")
    if not model:
        raise ConfigError(f"{source}: no model_name_or_path (the student model to train); add it, "
                          "or --set model_name_or_path=MODEL")
    card = {"name": Path(str(model)).name or str(model), "model": str(model)}
    for key, to in (("model_revision", "revision"), ("chat_template", "chat_template"), ("eos_token", "eos_token")):
        if raw.get(key) is not None:
            card[to] = raw[key]
    return card


def take(raw: dict, table: dict, defaults: dict, train: dict, names: dict) -> None:
    """Copy the keys of `table` into `train`, a missing one at the writer's default."""
    for key, to in table.items():
        value = raw.get(key, defaults.get(key))
        if value is not None:
            train[to] = value
        names[f"train.{to}"] = key


def hub(raw: dict, train: dict) -> None:
    """transformers names the hub repository after output_dir when push_to_hub has no hub_model_id."""
    if train.get("push_to_hub") and not train.get("hub_model_id") and raw.get("output_dir"):
        train["hub_model_id"] = Path(str(raw["output_dir"])).name


def warmup(raw: dict, train: dict) -> None:
    """warmup_ratio, or transformers 5's warmup_steps (below 1: a ratio of the total steps)."""
    steps = raw.get("warmup_steps")
    ratio = raw.get("warmup_ratio", steps if isinstance(steps, float) and steps < 1 else None)
    if ratio is not None:
        train["warmup_ratio"] = ratio
    elif steps:
        train.setdefault("trl", {})["warmup_steps"] = steps


def order(raw: dict, train: dict, names: dict, source: str) -> set[str]:
    """A published run drew its batches at random unless it asked for length groups (transformers
    4's group_by_length, 5's train_sampling_strategy); read as it is, it keeps its order, where
    distill's own recipes group rows by length unless told not to. Returns the keys it consumed
    (a strategy other than length groups goes on to TRL as written)."""
    strategy, legacy = raw.get("train_sampling_strategy"), raw.get("group_by_length") or False
    if not isinstance(legacy, bool):
        raise ConfigError(f"{source}: group_by_length: {legacy!r} must be true or false")
    if strategy is not None and strategy not in _SAMPLING:
        raise ConfigError(f"{source}: train_sampling_strategy: {strategy!r} must be one of {', '.join(_SAMPLING)}")
    if legacy and strategy not in (None, "group_by_length"):
        raise ConfigError(f"{source}: group_by_length: true and train_sampling_strategy: {strategy} disagree; "
                          "keep one of them")
    train["group_by_length"] = legacy or strategy == "group_by_length"
    names["train.group_by_length"] = "train_sampling_strategy" if strategy is not None else "group_by_length"
    return {"group_by_length"} | ({"train_sampling_strategy"} if strategy == "group_by_length" else set())


def rest(raw: dict, handled: set, sft_keys: set, train: dict) -> dict[str, str]:
    """Keys not mapped: those with no effect are returned (for one warning line); other SFTConfig
    arguments go to TRL as written (optim, adam_beta2, …), which honours them."""
    ignored = {}
    for key, value in raw.items():
        if key in handled:
            continue
        if key in NO_EFFECT:
            ignored[key] = NO_EFFECT[key]
        elif key in sft_keys:
            train.setdefault("trl", {})[key] = value
    return ignored
