"""open-r1 / TRL SFT recipes (flat `SFTConfig`, `ModelConfig` and `ScriptArguments` keys, with
open-r1's and the alignment handbook's additions) as distill's recipe mapping.

TRL's keys come from the installed TRL, so they follow its version. A key missing from a recipe
takes TRL's default, not distill's: an open-r1 recipe without `learning_rate` trains at 2e-5.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..errors import unknown_key_error
from . import common, keys
from .detect import check_trl

# keys of older TRL/transformers releases that published recipes still carry, with what they mean now
ALIASES = {"torch_dtype": "dtype", "max_seq_length": "max_length", "use_liger": "use_liger_kernel",
           "dataset_configs": "dataset_config", "evaluation_strategy": "eval_strategy",
           "use_flash_attention_2": "attn_implementation"}
_TOOLS = "TRL, transformers, open-r1 or alignment-handbook"

# the rest of what TRL's SFTConfig and ModelConfig say that distill has too
_TRAIN = {**common.TRAINER, "gradient_checkpointing": "gradient_checkpointing", "max_length": "max_length",
          "packing": "packing", "attn_implementation": "attn_implementation", "use_liger_kernel": "liger",
          "lora_r": "lora_r", "lora_alpha": "lora_alpha", "lora_dropout": "lora_dropout",
          "lora_target_modules": "lora_target_modules"}
# ModelConfig features distill does not have: fine at TRL's default, refused otherwise
_UNSUPPORTED = {"use_dora": "DoRA", "use_rslora": "rank-stabilised LoRA", "load_in_8bit": "8-bit loading",
                "lora_modules_to_save": "extra trained modules", "lora_target_parameters": "parameter targets",
                "use_bnb_nested_quant": "nested quantization", "chat_template_path": "use chat_template",
                "bnb_4bit_quant_storage": "quantized storage", "bnb_4bit_quant_type": "4-bit NF4 only",
                "dataset_streaming": "streamed datasets", "vision_model": "vision-language models",
                "tokenizer_name_or_path": "a tokenizer other than the model's", "use_loftq": "LoftQ initialisation",
                "auto_insert_empty_system_msg": "inserted system turns", "text_column": "plain-text training",
                "truncation_side": "left truncation", "image_resize": "vision-language models",
                "lora_task_type": "LoRA task types other than CAUSAL_LM", "ignore_bias_buffers": "DDP bias buffers",
                "model_code_revision": "remote code", "base_model_revision": "base-model revisions"}
# read by common.student, _dtype and from_trl itself
_READ = {"report_to", "warmup_ratio", "warmup_steps", "dtype", "bf16", "fp16", "use_peft", "load_in_4bit",
         "assistant_only_loss", "completion_only_loss", "dataset_mixture", "dataset_mixer", "dataset_splits",
         "dataset_name", "dataset_config", "dataset_train_split", "model_name_or_path", "model_revision",
         "chat_template", "eos_token"}
_DTYPES = {"bfloat16": "auto", "bf16": "auto", "auto": "auto", "float16": "float16", "fp16": "float16",
           "float32": "float32", "fp32": "float32"}


@functools.lru_cache(maxsize=None)
def _trl() -> tuple[frozenset, frozenset, dict]:
    """(every key an open-r1 recipe may hold, SFTConfig's keys, TRL's defaults)."""
    from trl import ModelConfig, ScriptArguments, SFTConfig

    sft = frozenset(keys.fields(SFTConfig))
    published = keys.published()
    valid = (sft | keys.fields(ModelConfig, ScriptArguments) | set(published["open-r1"]["keys"])
             | set(published["alignment-handbook"]["keys"]) | set(ALIASES) | {"group_by_length"}
             | set().union(*keys.stage_keys().values()) | keys.older_releases() | set(common.NO_EFFECT))
    return frozenset(valid), sft, keys.defaults(SFTConfig, ModelConfig, ScriptArguments)


def _dtype(raw: dict) -> str:
    """fp16 stays fp16; bf16 (the published recipes' GPU setting) becomes distill's `auto`: bf16 on a
    GPU that has it, fp32 on a CPU, where TRL itself would refuse bf16."""
    if raw.get("fp16") is True or raw.get("dtype") in ("float16", "fp16"):
        return "float16"
    name = raw.get("dtype")
    if raw.get("bf16") is True or name is None:
        return "auto"
    return _DTYPES.get(str(name), str(name))


def _aliases(raw: dict, source: str) -> dict:
    out = dict(raw)
    for old, new in ALIASES.items():
        if old not in out:
            continue
        value = out.pop(old)
        if old == "use_flash_attention_2":  # the alignment handbook's boolean
            value = "flash_attention_2" if value else None
        if new == "dataset_config" and isinstance(value, list):  # old TRL: a list of configs
            if len(value) != 1:
                raise ConfigError(f"{source}: dataset_configs: distill takes one config per dataset; "
                                  "use dataset_mixture for several")
            value = value[0]
        if new in out and out[new] != value and value is not None:
            raise ConfigError(f"{source}: {old} and {new} are the same setting with two values; keep one")
        if value is not None:
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


def _mixer(raw: dict, source: str) -> list:
    """The alignment handbook's older `dataset_mixer: {id: share}` with `dataset_splits`: the
    split whose name has `train` in it is the training one."""
    mixer = raw["dataset_mixer"]
    if not isinstance(mixer, dict) or not mixer:
        raise ConfigError(f"{source}: dataset_mixer must map dataset ids to shares, e.g. {{org/name: 0.5}}")
    splits = raw.get("dataset_splits") or ["train"]
    train_splits = [s for s in splits if "train" in str(s)] or [splits[0]]
    entries = []
    for name, share in mixer.items():
        if not isinstance(share, (int, float)) or isinstance(share, bool) or share <= 0:
            raise ConfigError(f"{source}: dataset_mixer.{name}: {share!r} must be a positive share")
        for split in train_splits:
            entry = {"source": str(name), "split": str(split)}
            if share < 1:
                entry["weight"] = share
            entries.append(entry)
    return entries


def _check_values(raw: dict, defaults: dict, source: str) -> None:
    for key, what in _UNSUPPORTED.items():
        if key in raw and raw[key] not in (None, False, defaults.get(key)):
            raise keys.unsupported(key, raw[key], source, f"a TRL feature: {what}")


def from_trl(raw: dict, source: str, path: Path | None = None) -> tuple[dict, list[str], dict]:
    """An open-r1 / TRL SFT recipe as (distill mapping, warnings, {distill key: recipe key})."""
    valid, sft_keys, defaults = _trl()
    check_trl(raw, source, path, set(sft_keys))  # the stage first: a GRPO file is named as one
    for key in raw:
        if key not in valid:
            raise keys.unknown(key, valid, source, _TOOLS)
    raw = _aliases(raw, source)
    _check_values(raw, defaults, source)
    names: dict[str, str] = {"train.report_to": "report_to"}
    train: dict[str, Any] = {"report_to": common.report(raw.get("report_to", defaults.get("report_to")))}
    common.take(raw, _TRAIN, defaults, train, names)
    common.warmup(raw, train)
    common.hub(raw, train)
    ordered = common.order(raw, train, names, source)
    train["dtype"] = _dtype(raw)
    train["method"] = ("qlora" if raw.get("load_in_4bit") else "lora") if raw.get("use_peft") else "full"
    # TRL puts the loss on the whole conversation of a `messages` row unless assistant_only_loss is
    # set, and then on every assistant turn
    train["loss_on"] = "assistant" if raw.get("assistant_only_loss") else "all"
    if raw.get("dataset_mixture"):  # open-r1 takes the mixture when both are given
        train["data"], train["data_seed"] = _mixture(raw["dataset_mixture"], source)
    elif raw.get("dataset_mixer"):
        train["data"] = _mixer(raw, source)
    elif raw.get("dataset_name"):
        train["data"] = [{"source": raw["dataset_name"], "config": raw.get("dataset_config"),
                          "split": raw.get("dataset_train_split", "train")}]
    handled = set(_TRAIN) | set(_UNSUPPORTED) | _READ | ordered
    for key, value in raw.items():  # open-r1's and the handbook's other additions change the data
        if key not in handled | sft_keys | set(common.NO_EFFECT) and value not in (None, False):
            owner = "an older TRL or transformers argument" if key in keys.older_releases() and key not in \
                set(keys.published()["open-r1"]["keys"]) | set(keys.published()["alignment-handbook"]["keys"]) \
                else "an open-r1 or alignment-handbook feature"
            raise keys.unsupported(key, value, source, owner)
    ignored = common.rest(raw, handled, set(sft_keys), train)
    mixture = raw.get("dataset_mixture")
    if isinstance(mixture, dict) and mixture.get("test_split_size") is not None:
        ignored["dataset_mixture.test_split_size"] = common.NO_EFFECT["test_split_size"]
    warnings = keys.ignored(ignored, source)
    if train["loss_on"] == "all":  # read as published, but never silently: the prompt becomes a target
        warnings.append(f"{source}: assistant_only_loss is not set, so the loss is on the whole conversation, "
                        "prompt included, as TRL does; --set assistant_only_loss=true puts it on the answers only")
    return {"student": common.student(raw, source), "train": train}, warnings, names
