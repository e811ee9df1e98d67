"""Published training recipes read as they are: open-r1 / TRL SFT YAMLs (flat `SFTConfig`,
`ModelConfig` and `ScriptArguments` keys) and LLaMA-Factory training YAMLs, turned into
distill's own recipe mapping (a student card inline plus a `train` section).

The valid keys come from the dataclasses that define them (TRL's, and transformers'
`Seq2SeqTrainingArguments` under LLaMA-Factory), so they follow the installed versions; only
LLaMA-Factory's own arguments are listed here, since LLaMA-Factory is not a dependency. A key
missing from a recipe takes the default of the tool that wrote the recipe, not distill's:
an open-r1 recipe without `learning_rate` trains at TRL's 2e-5.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .recipes import unknown_key_error

OPENR1, LLAMAFACTORY = "open-r1/TRL", "LLaMA-Factory"

# keys only a LLaMA-Factory file has (both formats share model_name_or_path and the Trainer keys)
_LF_MARKERS = {"stage", "finetuning_type", "cutoff_len", "template", "dataset", "dataset_dir", "lora_rank",
               "lora_target", "flash_attn", "enable_liger_kernel", "max_samples", "quantization_bit",
               "train_on_prompt", "neat_packing", "formatting"}
_TRL_MARKERS = {"model_name_or_path", "dataset_name", "dataset_mixture", "use_peft", "max_seq_length", "torch_dtype"}

# open-r1's additions to TRL's dataclasses (open_r1/configs.py) and keys of older TRL releases
# that published recipes still carry, with what they mean now
_TRL_ALIASES = {"torch_dtype": "dtype", "max_seq_length": "max_length", "use_liger": "use_liger_kernel",
                "dataset_configs": "dataset_config", "evaluation_strategy": "eval_strategy"}
_OPENR1_EXTRA = {"dataset_mixture", "chat_template", "system_prompt", "benchmarks", "callbacks",
                 "hub_model_revision", "overwrite_hub_revision", "push_to_hub_revision", "wandb_entity",
                 "wandb_project", "wandb_run_group", "wandb_log_unique_prompts", "warmup_ratio",
                 "overwrite_output_dir"}

# keys that change nothing in what distill trains: a warning each, then dropped
_NO_EFFECT = {
    "output_dir": "distill writes to --out",
    "overwrite_output_dir": "distill writes to --out and refuses a changed rerun",
    "resume_from_checkpoint": "use distill train --resume",
    "do_train": "distill train always trains", "do_eval": "distill trains without evaluation",
    "do_predict": "distill trains without evaluation",
    "eval_strategy": "distill trains without evaluation", "eval_steps": "distill trains without evaluation",
    "per_device_eval_batch_size": "distill trains without evaluation",
    "test_split_size": "distill trains without evaluation", "val_size": "distill trains without evaluation",
    "eval_dataset": "distill trains without evaluation", "dataset_test_split": "distill trains without evaluation",
    "benchmarks": "run the benchmarks yourself", "callbacks": "open-r1's hub callbacks are not run",
    "system_prompt": "open-r1 uses it for benchmarks only",
    "hub_model_revision": "open-r1's hub revisions are not used",
    "overwrite_hub_revision": "open-r1's hub revisions are not used",
    "push_to_hub_revision": "open-r1's hub revisions are not used",
    "save_strategy": "distill saves a checkpoint every save_steps steps, for --resume",
    "log_level": "distill prints its own progress", "logging_strategy": "distill logs every logging_steps",
    "logging_first_step": "distill prints its own progress", "disable_tqdm": "distill prints its own progress",
    "run_name": "names only the tracker's run", "wandb_entity": "set WANDB_ENTITY instead",
    "wandb_project": "set WANDB_PROJECT instead", "wandb_run_group": "set WANDB_RUN_GROUP instead",
    "wandb_log_unique_prompts": "GRPO only",
    "dataset_num_proc": "preprocessing parallelism; TRL's default is used",
    "preprocessing_num_workers": "preprocessing parallelism", "dataloader_num_workers": "loader parallelism",
    "overwrite_cache": "no LLaMA-Factory cache here", "plot_loss": "distill always writes student/loss.png",
    "ddp_timeout": "launcher setting", "deepspeed": "distill does not read DeepSpeed JSON; launch multi-GPU "
    "runs with accelerate (see README)", "global_batch_size": "not a training argument; the batch is "
    "per_device_train_batch_size x gradient_accumulation_steps x GPUs",
    "trust_remote_code": "student models load without remote code", "use_cpu": "distill picks the device",
    "save_only_model": "distill keeps optimizer state for --resume",
    "dataset_text_field": "distill trains on conversations", "model_init_kwargs": "distill loads the model",
    "do_sample": "generation setting", "max_new_tokens": "generation setting",
    "fsdp": "launcher setting; launch multi-GPU runs with accelerate (see README)",
    "fsdp_config": "launcher setting; launch multi-GPU runs with accelerate (see README)",
    "template": "distill renders with the student tokenizer's chat template (chat_template: to change it)",
}

_DTYPES = {"bfloat16": "auto", "bf16": "auto", "auto": "auto", "float16": "float16", "fp16": "float16",
           "float32": "float32", "fp32": "float32"}


def detect(raw: dict) -> str | None:
    """The recipe format of a YAML mapping: OPENR1, LLAMAFACTORY, or None for distill's own."""
    from .config import Recipe

    keys = set(raw)
    if keys & {f.name for f in dataclasses.fields(Recipe)} - {"name", "description"}:
        return None
    if keys & _LF_MARKERS:
        return LLAMAFACTORY
    if keys & _TRL_MARKERS:
        return OPENR1
    return None


def is_distill_key(dotted: str) -> bool:
    """Does `--set KEY=…` address distill's recipe (student…, train…) rather than the file's keys?"""
    from .config import Recipe

    return dotted.split(".")[0] in {f.name for f in dataclasses.fields(Recipe)}


def _defaults(*classes) -> dict:
    out = {}
    for cls in classes:
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                out.setdefault(f.name, f.default)
    return out


@functools.lru_cache(maxsize=None)
def _trl() -> tuple[frozenset, frozenset, dict]:
    """(every key an open-r1 recipe may hold, SFTConfig's keys, TRL's defaults)."""
    from trl import ModelConfig, ScriptArguments, SFTConfig

    sft = frozenset(f.name for f in dataclasses.fields(SFTConfig))
    other = {f.name for cls in (ModelConfig, ScriptArguments) for f in dataclasses.fields(cls)}
    valid = sft | other | _OPENR1_EXTRA | set(_TRL_ALIASES) | {"group_by_length"}  # transformers 4's key
    return frozenset(valid), sft, _defaults(SFTConfig, ModelConfig)


# LLaMA-Factory's own arguments (src/llamafactory/hparams: model, data, finetuning args), plus
# the dataset attributes OpenThinker's recipes write inline
_LF_OWN = set("""
model_name_or_path adapter_name_or_path adapter_folder cache_dir use_fast_tokenizer resize_vocab
split_special_tokens add_tokens add_special_tokens new_special_tokens_config init_special_tokens model_revision
low_cpu_mem_usage rope_scaling flash_attn shift_attn mixture_of_depths use_unsloth use_unsloth_gc
enable_liger_kernel moe_aux_loss_coef disable_gradient_checkpointing use_reentrant_gc upcast_layernorm
upcast_lmhead_output train_from_scratch infer_backend offload_folder use_kv_cache infer_dtype hf_hub_token
ms_hub_token om_hub_token print_param_status trust_remote_code quantization_method quantization_bit
quantization_type double_quantization quantization_device_map image_max_pixels image_min_pixels video_max_pixels
video_min_pixels video_fps video_maxlen export_dir export_size export_device export_quantization_bit
export_hub_model_id vllm_maxlen vllm_gpu_util vllm_enforce_eager compute_dtype device_map model_max_length
template dataset eval_dataset dataset_dir media_dir cutoff_len train_on_prompt mask_history streaming
buffer_size mix_strategy interleave_probs overwrite_cache preprocessing_batch_size preprocessing_num_workers
max_samples eval_num_beams ignore_pad_token_for_loss val_size eval_on_each_dataset packing neat_packing
tool_format default_system enable_thinking tokenized_path
freeze_trainable_layers freeze_trainable_modules freeze_extra_modules additional_target lora_alpha lora_dropout
lora_rank lora_target loraplus_lr_ratio loraplus_lr_embedding use_rslora use_dora pissa_init pissa_iter
pissa_convert create_new_adapter pure_bf16 stage finetuning_type use_llama_pro use_adam_mini use_galore
use_apollo use_badam use_swanlab use_muon use_dft_loss freeze_vision_tower compute_accuracy disable_shuffling
early_stopping_steps plot_loss include_effective_tokens_per_second ray_num_workers overwrite_output_dir
global_batch_size do_sample max_new_tokens
messages formatting role_tag content_tag user_tag assistant_tag system_tag observation_tag function_tag system
""".split())
_LF_TAGS = {"messages", "system", "role_tag", "content_tag", "user_tag", "assistant_tag", "system_tag",
            "observation_tag", "function_tag", "formatting"}


# LLaMA-Factory features distill does not have: an error when switched on
_LF_UNSUPPORTED = {k: "a LLaMA-Factory feature" for k in (
    "use_dora", "use_rslora", "pissa_init", "use_galore", "use_apollo", "use_badam", "use_llama_pro",
    "use_adam_mini", "use_muon", "use_unsloth", "shift_attn", "mixture_of_depths", "rope_scaling",
    "adapter_name_or_path", "train_from_scratch", "mask_history", "additional_target", "loraplus_lr_ratio",
    "use_dft_loss", "streaming", "tokenized_path", "resize_vocab", "add_tokens", "add_special_tokens")}


@functools.lru_cache(maxsize=None)
def _lf() -> tuple[frozenset, dict]:
    from transformers import Seq2SeqTrainingArguments

    valid = frozenset({f.name for f in dataclasses.fields(Seq2SeqTrainingArguments)} | _LF_OWN
                      | {"warmup_ratio", "group_by_length"})  # transformers 4 keys LLaMA-Factory files still carry
    return valid, _defaults(Seq2SeqTrainingArguments)


def _report(value: Any) -> list:
    if value in (None, "none", ["none"]):
        return []
    return [value] if isinstance(value, str) else list(value)


def _student(raw: dict, source: str) -> dict:
    model = raw.get("model_name_or_path")
    if not model:
        raise ConfigError(f"{source}: no model_name_or_path (the student model to train); add it, "
                          "or --set model_name_or_path=MODEL")
    card = {"name": Path(str(model)).name or str(model), "model": str(model)}
    for key, to in (("model_revision", "revision"), ("chat_template", "chat_template"), ("eos_token", "eos_token")):
        if raw.get(key) is not None:
            card[to] = raw[key]
    return card


def _dtype(raw: dict) -> str:
    """fp16 stays fp16; bf16 (the published recipes' GPU setting) becomes distill's `auto`: bf16 on a
    GPU that has it, fp32 on a CPU, where TRL itself would refuse bf16."""
    if raw.get("fp16") is True or raw.get("dtype") in ("float16", "fp16"):
        return "float16"
    name = raw.get("dtype")
    if raw.get("bf16") is True or name is None:
        return "auto"
    return _DTYPES.get(str(name), str(name))


def _resolve_aliases(raw: dict, aliases: dict, source: str) -> dict:
    out = dict(raw)
    for old, new in aliases.items():
        if old in out:
            value = out.pop(old)
            if new == "dataset_config" and isinstance(value, list):  # old TRL: a list of configs
                if len(value) != 1:
                    raise ConfigError(f"{source}: dataset_configs: distill takes one config per dataset; "
                                      "use dataset_mixture for several")
                value = value[0]
            if new in out and out[new] != value:
                raise ConfigError(f"{source}: {old} and {new} are the same setting with two values; keep one")
            out[new] = value
    return out


def _mixture(value: Any, source: str) -> tuple[list, int]:
    if not isinstance(value, dict) or not isinstance(value.get("datasets"), list):
        raise ConfigError(f"{source}: dataset_mixture must be a mapping with a `datasets:` list")
    for key in value:
        if key not in ("datasets", "seed", "test_split_size"):
            raise unknown_key_error(str(key), ["datasets", "seed", "test_split_size"], source, "dataset_mixture")
    entries = []
    for i, d in enumerate(value["datasets"]):
        if not isinstance(d, dict) or "id" not in d:
            raise ConfigError(f"{source}: dataset_mixture.datasets.{i} must be a mapping with an `id`")
        for key in d:
            if key not in ("id", "config", "split", "columns", "weight"):
                raise unknown_key_error(str(key), ["id", "config", "split", "columns", "weight"], source,
                                        f"dataset_mixture.datasets.{i}")
        entry = {"source": d["id"], "config": d.get("config"), "split": d.get("split", "train")}
        for key in ("columns", "weight"):
            if d.get(key) is not None:
                entry[key] = d[key]
        entries.append(entry)
    return entries, value.get("seed", 0)


def _mixture_warnings(raw: dict, source: str) -> list[str]:
    mixture = raw.get("dataset_mixture")
    if isinstance(mixture, dict) and mixture.get("test_split_size") is not None:
        return [f"{source}: dataset_mixture.test_split_size has no effect here ({_NO_EFFECT['test_split_size']}); "
                "ignored"]
    return []


def _check_keys(raw: dict, valid: frozenset, source: str) -> None:
    for key in raw:
        if key not in valid:
            raise unknown_key_error(str(key), sorted(valid), source, "")


def _unsupported(raw: dict, keys: dict, defaults: dict, source: str) -> None:
    """Keys distill cannot honour: fine at their default, an error when set to anything else."""
    for key, what in keys.items():
        if key in raw and raw[key] != defaults.get(key) and raw[key] not in (None, False):
            raise ConfigError(f"{source}: {key}: {raw[key]!r} is not supported by distill ({what}); remove it")


# Trainer arguments both formats write, and the TrainConfig field each becomes
_TRAINER = {"learning_rate": "learning_rate", "num_train_epochs": "epochs", "max_steps": "max_steps",
            "per_device_train_batch_size": "batch_size", "gradient_accumulation_steps": "grad_accum",
            "lr_scheduler_type": "lr_scheduler", "lr_scheduler_kwargs": "lr_scheduler_kwargs",
            "weight_decay": "weight_decay", "max_grad_norm": "max_grad_norm", "seed": "seed",
            "logging_steps": "logging_steps", "save_steps": "save_steps", "save_total_limit": "save_total_limit",
            "push_to_hub": "push_to_hub", "hub_model_id": "hub_model_id"}
# the rest of what TRL's SFTConfig and ModelConfig say that distill has too
_TRL_TRAIN = {**_TRAINER, "gradient_checkpointing": "gradient_checkpointing", "max_length": "max_length",
              "packing": "packing", "attn_implementation": "attn_implementation", "use_liger_kernel": "liger",
              "lora_r": "lora_r", "lora_alpha": "lora_alpha", "lora_dropout": "lora_dropout",
              "lora_target_modules": "lora_target_modules"}
_TRL_UNSUPPORTED = {"use_dora": "DoRA", "use_rslora": "rank-stabilised LoRA", "load_in_8bit": "8-bit loading",
                    "lora_modules_to_save": "extra trained modules", "lora_target_parameters": "parameter targets",
                    "use_bnb_nested_quant": "nested quantization", "chat_template_path": "use chat_template",
                    "bnb_4bit_quant_storage": "quantized storage", "bnb_4bit_quant_type": "4-bit NF4 only"}
# read by _student, _dtype and from_trl itself
_TRL_READ = {"report_to", "warmup_ratio", "warmup_steps", "dtype", "bf16", "fp16", "use_peft", "load_in_4bit",
             "assistant_only_loss", "completion_only_loss", "dataset_mixture", "dataset_name", "dataset_config",
             "dataset_train_split", "model_name_or_path", "model_revision", "chat_template", "eos_token",
             "lora_task_type", "dataset_streaming", "ignore_bias_buffers"}


_SAMPLING = ("random", "sequential", "group_by_length", "batch_rebalance")  # transformers 5's samplers


def _order(raw: dict, train: dict, names: dict, source: str) -> set[str]:
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


def _take(raw: dict, table: dict, defaults: dict, train: dict, names: dict) -> None:
    """Copy the keys of `table` into `train`, a missing one at the writer's default."""
    for key, to in table.items():
        value = raw.get(key, defaults.get(key))
        if value is not None:
            train[to] = value
        names[f"train.{to}"] = key


def _rest(raw: dict, handled: set, sft_keys: frozenset, train: dict, source: str, other: str | None) -> list[str]:
    """Keys not mapped: a warning for those with no effect, TRL for other SFTConfig arguments,
    and for the rest `other` (a warning text), or an error when None."""
    warnings = []
    for key, value in raw.items():
        if key in handled:
            continue
        if key in _NO_EFFECT:
            warnings.append(f"{source}: {key} has no effect here ({_NO_EFFECT[key]}); ignored")
        elif key in sft_keys:  # any other SFTConfig argument goes to TRL as written (optim, adam_beta2, …)
            train.setdefault("trl", {})[key] = value
        elif other is not None:
            warnings.append(f"{source}: {key} {other}; ignored")
        else:
            raise ConfigError(f"{source}: {key} is not supported by distill; remove it")
    return warnings


def from_trl(raw: dict, source: str) -> tuple[dict, list[str], dict]:
    """An open-r1 / TRL SFT recipe as (distill mapping, warnings, {distill key: recipe key})."""
    valid, sft_keys, defaults = _trl()
    _check_keys(raw, valid, source)
    raw = _resolve_aliases(raw, _TRL_ALIASES, source)
    _unsupported(raw, _TRL_UNSUPPORTED, defaults, source)
    names: dict[str, str] = {"train.report_to": "report_to"}
    train: dict[str, Any] = {"report_to": _report(raw.get("report_to", defaults.get("report_to")))}
    _take(raw, _TRL_TRAIN, defaults, train, names)
    warmup = raw.get("warmup_ratio", raw.get("warmup_steps") if isinstance(raw.get("warmup_steps"), float) else None)
    if warmup is not None:  # transformers 5 reads a warmup_steps below 1 as a ratio
        train["warmup_ratio"] = warmup
    elif raw.get("warmup_steps"):
        train.setdefault("trl", {})["warmup_steps"] = raw["warmup_steps"]
    ordered = _order(raw, train, names, source)
    train["dtype"] = _dtype(raw)
    train["method"] = ("qlora" if raw.get("load_in_4bit") else "lora") if raw.get("use_peft") else "full"
    # TRL puts the loss on the whole conversation of a `messages` row unless assistant_only_loss is set
    train["loss_on"] = "assistant" if raw.get("assistant_only_loss") else "all"
    if raw.get("dataset_mixture"):  # open-r1 takes the mixture when both are given
        train["data"], train["data_seed"] = _mixture(raw["dataset_mixture"], source)
    elif raw.get("dataset_name"):
        train["data"] = [{"source": raw["dataset_name"], "config": raw.get("dataset_config"),
                          "split": raw.get("dataset_train_split", "train")}]
    handled = set(_TRL_TRAIN) | set(_TRL_UNSUPPORTED) | _TRL_READ | ordered
    warnings = _mixture_warnings(raw, source) + _rest(raw, handled, sft_keys, train, source, None)
    if train["loss_on"] == "all":  # read as published, but never silently: the prompt becomes a target
        warnings.append(f"{source}: assistant_only_loss: not set, so the loss is on the whole conversation, prompt "
                        "included, as TRL does; --set assistant_only_loss=true puts it on the answer only")
    return {"student": _student(raw, source), "train": train}, warnings, names


def _lf_dataset_info(dataset_dir: str | None, base: Path) -> dict:
    """LLaMA-Factory's dataset_info.json (the names `dataset:` refers to), when there is one."""
    import json

    for folder in ([base / dataset_dir, Path(dataset_dir)] if dataset_dir else [base / "data", Path("data")]):
        info = folder / "dataset_info.json"
        if info.is_file():
            try:
                return {"_dir": folder, **json.loads(info.read_text())}
            except (OSError, ValueError) as e:
                raise ConfigError(f"{info}: not readable JSON ({e})") from None
    return {}


def _lf_entry(name: str, info: dict, inline: dict) -> dict:
    """One LLaMA-Factory dataset (a dataset_info.json name, a hub id or a file) as a train.data entry."""
    attrs = info.get(name)
    entry: dict[str, Any] = {"source": name}
    columns, tags = dict(inline.get("columns", {})), dict(inline.get("tags", {}))
    if isinstance(attrs, dict):
        if attrs.get("file_name"):
            entry["source"] = str(Path(info["_dir"]) / attrs["file_name"])
        elif attrs.get("hf_hub_url"):
            entry["source"] = attrs["hf_hub_url"]
            if attrs.get("subset"):
                entry["config"] = attrs["subset"]
        if attrs.get("split"):
            entry["split"] = attrs["split"]
        columns.update(attrs.get("columns", {}))
        tags.update(attrs.get("tags", {}))
    for key in ("messages", "system", "prompt", "response"):
        if columns.get(key):
            entry[key] = columns[key]
    if tags.get("role_tag"):
        entry["role_tag"] = tags["role_tag"]
    if tags.get("content_tag"):
        entry["content_tag"] = tags["content_tag"]
    roles = {tags[t]: role for t, role in (("user_tag", "user"), ("assistant_tag", "assistant"),
                                            ("system_tag", "system")) if tags.get(t)}
    if roles:
        entry["roles"] = roles
    return entry


def from_llamafactory(raw: dict, source: str, base: Path) -> tuple[dict, list[str], dict]:
    """A LLaMA-Factory training YAML as (distill mapping, warnings, {distill key: recipe key})."""
    valid, defaults = _lf()
    _check_keys(raw, valid, source)
    if raw.get("stage", "sft") != "sft":
        raise ConfigError(f"{source}: stage: {raw['stage']} is not supervised fine-tuning; "
                          "distill trains stage: sft only")
    method = raw.get("finetuning_type", "lora")  # LLaMA-Factory's default
    if method not in ("lora", "full"):
        raise ConfigError(f"{source}: finetuning_type: {method} is not supported by distill (use lora or full)")
    if raw.get("quantization_bit") not in (None, 4):
        raise ConfigError(f"{source}: quantization_bit: {raw['quantization_bit']} is not supported (4-bit QLoRA only)")
    _unsupported(raw, _LF_UNSUPPORTED, {}, source)
    names: dict[str, str] = {}
    train: dict[str, Any] = {"method": "qlora" if raw.get("quantization_bit") == 4 else method}
    _take(raw, {**_TRAINER, "warmup_ratio": "warmup_ratio"}, defaults, train, names)
    # LLaMA-Factory's own defaults from here on
    _take(raw, {"cutoff_len": "max_length", "lora_rank": "lora_r", "lora_dropout": "lora_dropout"},
          {"cutoff_len": 2048, "lora_rank": 8, "lora_dropout": 0.0}, train, names)
    train["lora_alpha"] = raw.get("lora_alpha") or 2 * train["lora_r"]
    names["train.lora_alpha"] = "lora_alpha"
    target = raw.get("lora_target", "all")
    targets = [t.strip() for t in target.split(",")] if isinstance(target, str) else list(target)
    train["lora_target_modules"] = "all-linear" if targets == ["all"] else targets
    names["train.lora_target_modules"] = "lora_target"
    train["gradient_checkpointing"] = not raw.get("disable_gradient_checkpointing", False)
    train["liger"] = bool(raw.get("enable_liger_kernel", False))
    train["packing"] = bool(raw.get("packing") or raw.get("neat_packing"))
    ordered = _order(raw, train, names, source)
    attn = {"fa2": "flash_attention_2", "sdpa": "sdpa", "disabled": "eager", "eager": "eager"}
    if raw.get("flash_attn") in attn:
        train["attn_implementation"] = attn[raw["flash_attn"]]
    train["report_to"] = _report(raw.get("report_to"))
    names.update({"train.report_to": "report_to", "train.liger": "enable_liger_kernel",
                  "train.attn_implementation": "flash_attn", "train.method": "finetuning_type"})
    train["dtype"] = "float16" if raw.get("fp16") else "auto"
    train["loss_on"] = "all" if raw.get("train_on_prompt") else "assistant"
    inline = {"columns": {k: raw[k] for k in ("messages", "system") if raw.get(k)},
              "tags": {k: raw[k] for k in ("role_tag", "content_tag", "user_tag", "assistant_tag", "system_tag")
                       if raw.get(k)}}
    if raw.get("dataset"):
        info = _lf_dataset_info(raw.get("dataset_dir"), base)
        datasets = raw["dataset"] if isinstance(raw["dataset"], list) else str(raw["dataset"]).split(",")
        train["data"] = [_lf_entry(name.strip(), info, inline) for name in datasets if name.strip()]
        if raw.get("max_samples"):
            for entry in train["data"]:
                entry["limit"] = raw["max_samples"]
    handled = {"model_name_or_path", "model_revision", "stage", "finetuning_type", "quantization_bit",
               "quantization_method", "lora_alpha", "lora_target", "disable_gradient_checkpointing",
               "enable_liger_kernel", "packing", "neat_packing", "flash_attn", "report_to", "bf16", "fp16",
               "pure_bf16", "train_on_prompt", "dataset", "dataset_dir", "max_samples", "cutoff_len", "lora_rank",
               "lora_dropout", "gradient_checkpointing", "warmup_ratio"}
    handled |= set(_TRAINER) | _LF_TAGS | set(_LF_UNSUPPORTED) | ordered
    warnings = _rest(raw, handled, _trl()[1], train, source, "is a LLaMA-Factory setting distill does not use")
    return {"student": _student(raw, source), "train": train}, warnings, names
