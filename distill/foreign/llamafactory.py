"""LLaMA-Factory training YAMLs as distill's recipe mapping.

Every argument LLaMA-Factory defines is known (keys.published(), with its default) beside the
transformers `Seq2SeqTrainingArguments` it inherits (from the installed transformers). A key is
honoured (mapped to distill), ignored in one summarising warning (it changes nothing in what
distill trains), passed to TRL (a Trainer argument TRL's SFTConfig has), or, set to anything
but LLaMA-Factory's default, refused as "not supported by distill (a LLaMA-Factory feature)".
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from . import common, keys, lfdata
from .detect import check_llamafactory

_OWNER = "a LLaMA-Factory feature"
_TOOLS = "LLaMA-Factory or transformers"
# transformers 4 keys that LLaMA-Factory files still carry
_LEGACY = {"warmup_ratio", "group_by_length", "evaluation_strategy", "use_flash_attention_2"}
# dataset attributes OpenThinker's recipes write inline, for datasets named by hub id
_INLINE = {"formatting": None, "messages": "columns", "system": "columns", "role_tag": "tags",
           "content_tag": "tags", "user_tag": "tags", "assistant_tag": "tags", "system_tag": "tags",
           "observation_tag": "tags", "function_tag": "tags"}
_ATTENTION = {"fa2": "flash_attention_2", "fa3": "flash_attention_3", "sdpa": "sdpa", "disabled": "eager",
              "eager": "eager", "auto": None}
# LLaMA-Factory's own keys that distill reads (below)
_HANDLED = {"model_name_or_path", "model_revision", "stage", "finetuning_type", "quantization_bit",
            "quantization_method", "quantization_type", "double_quantization", "lora_rank", "lora_alpha",
            "lora_dropout", "lora_target", "disable_gradient_checkpointing", "enable_liger_kernel", "packing",
            "neat_packing", "flash_attn", "report_to", "bf16", "fp16", "pure_bf16", "train_on_prompt",
            "mask_history", "dataset", "dataset_dir", "max_samples", "cutoff_len", "gradient_checkpointing",
            "mix_strategy", "interleave_probs", "warmup_ratio", "warmup_steps", "group_by_length",
            "train_sampling_strategy", "compute_dtype", "device_map", "model_max_length", "adapter_folder",
            "quantization_device_map", "export_dir"} | set(_INLINE)
_MIX = ("concat", "interleave_under", "interleave_over", "interleave_once")


@functools.lru_cache(maxsize=None)
def _valid() -> tuple[frozenset, dict, frozenset]:
    """(every key a LLaMA-Factory file may hold, defaults, the Trainer's keys)."""
    from transformers import Seq2SeqTrainingArguments

    trainer = keys.fields(Seq2SeqTrainingArguments)
    own = keys.llamafactory_defaults()
    # NO_EFFECT names the keys of forks too (OpenThoughts' global_batch_size)
    valid = trainer | set(own) | _LEGACY | set(_INLINE) | keys.older_releases() | set(common.NO_EFFECT)
    return frozenset(valid), {**keys.defaults(Seq2SeqTrainingArguments), **own}, frozenset(trainer)


def _method(raw: dict, source: str) -> str:
    method = raw.get("finetuning_type", "lora")  # LLaMA-Factory's default
    if method not in ("lora", "full"):
        raise keys.unsupported("finetuning_type", method, source, _OWNER, "use lora or full")
    bits, how = raw.get("quantization_bit"), raw.get("quantization_method", "bnb")
    if bits is None:
        return method
    if bits != 4 or how not in ("bnb", "bitsandbytes") or method != "lora":
        what = f"{bits}-bit {how} quantization" + (f" with {method} fine-tuning" if method != "lora" else "")
        raise ConfigError(f"{source}: not supported by distill ({_OWNER}): quantization_bit: {bits} "
                          f"(quantization_method: {how}) gives {what}; distill trains 4-bit bitsandbytes QLoRA only")
    if raw.get("quantization_type", "nf4") != "nf4":
        raise keys.unsupported("quantization_type", raw["quantization_type"], source, _OWNER, "use nf4")
    return "qlora"


def _lora(raw: dict, train: dict, names: dict) -> None:
    common.take(raw, {"lora_rank": "lora_r", "lora_dropout": "lora_dropout"},
                {"lora_rank": 8, "lora_dropout": 0.0}, train, names)
    train["lora_alpha"] = raw.get("lora_alpha") or 2 * train["lora_r"]  # LLaMA-Factory: twice the rank
    target = raw.get("lora_target", "all")
    targets = [t.strip() for t in target.split(",")] if isinstance(target, str) else list(target)
    train["lora_target_modules"] = "all-linear" if targets == ["all"] else targets
    names.update({"train.lora_alpha": "lora_alpha", "train.lora_target_modules": "lora_target"})


def _data(raw: dict, train: dict, base: Path, source: str) -> None:
    if not raw.get("dataset"):
        return
    inline: dict[str, Any] = {}
    for key, section in _INLINE.items():
        if raw.get(key) is not None:
            (inline.setdefault(section, {}) if section else inline)[key] = raw[key]
    info = lfdata.find_info(raw.get("dataset_dir"), base, source)
    names = raw["dataset"] if isinstance(raw["dataset"], list) else str(raw["dataset"]).split(",")
    train["data"] = [lfdata.entry(str(n).strip(), info, inline, source) for n in names if str(n).strip()]
    if raw.get("max_samples"):
        for item in train["data"]:
            item["limit"] = raw["max_samples"]
    mix = raw.get("mix_strategy", "concat")
    if mix not in _MIX:
        raise ConfigError(f"{source}: mix_strategy: {keys.short(mix)} must be one of {', '.join(_MIX)}")
    train["data_mix"] = mix
    probs = raw.get("interleave_probs")
    if probs is not None:
        values = [p.strip() for p in probs.split(",")] if isinstance(probs, str) else list(probs)
        try:
            train["data_mix_probs"] = [float(p) for p in values]
        except ValueError:
            raise ConfigError(f"{source}: interleave_probs: {keys.short(probs)} must be numbers, one per "
                              "dataset, e.g. 0.7,0.3") from None


def _dtype(raw: dict) -> str:
    return "float16" if raw.get("fp16") else "auto"


def _rest(raw: dict, train: dict, defaults: dict, trainer: frozenset, source: str) -> dict[str, str]:
    """Every key not read above: ignored (no effect), to TRL (a Trainer argument it has), silent at
    LLaMA-Factory's default, else refused."""
    from trl import SFTConfig

    sft = keys.fields(SFTConfig)
    mapped = set(common.TRAINER) | _HANDLED
    ignored = {}
    for key, value in raw.items():
        if key in mapped:
            continue
        if key in common.NO_EFFECT:
            ignored[key] = common.NO_EFFECT[key]
        elif key in trainer and key in sft:
            train.setdefault("trl", {})[key] = value
        elif value in (None, defaults.get(key)) or (value is False and not defaults.get(key)):
            continue
        elif key in trainer:  # a Seq2Seq-only argument (generation during evaluation)
            ignored[key] = "an evaluation setting"
        elif _multimodal(key):
            raise keys.unsupported(key, value, source, "a LLaMA-Factory multimodal feature",
                                   "distill trains text-only students")
        elif key in keys.llamafactory_defaults():
            raise keys.unsupported(key, value, source, _OWNER)
        else:
            raise keys.unsupported(key, value, source, "an older transformers or TRL argument")
    return ignored


def _multimodal(key: str) -> bool:
    return key.startswith(("image_", "video_", "audio_", "freeze_vision", "freeze_multi_modal", "train_mm")) \
        or key in ("media_dir", "use_audio_in_video", "crop_to_patches")


def from_llamafactory(raw: dict, source: str, base: Path) -> tuple[dict, list[str], dict]:
    """A LLaMA-Factory training YAML as (distill mapping, warnings, {distill key: recipe key})."""
    valid, defaults, trainer = _valid()
    check_llamafactory(raw, source)  # the stage first: a DPO file is named as one
    for key in raw:
        if key not in valid:
            raise keys.unknown(key, valid, source, _TOOLS)
    names: dict[str, str] = {}
    train: dict[str, Any] = {"method": _method(raw, source)}
    common.take(raw, common.TRAINER, defaults, train, names)
    common.warmup(raw, train)
    common.hub(raw, train)
    # LLaMA-Factory's own defaults from here on
    common.take(raw, {"cutoff_len": "max_length"}, {"cutoff_len": 2048}, train, names)
    _lora(raw, train, names)
    if raw.get("double_quantization") is False:
        train["qlora_double_quant"] = False
    train["gradient_checkpointing"] = not raw.get("disable_gradient_checkpointing", False)
    train["liger"] = bool(raw.get("enable_liger_kernel", False))
    # distill packs without attention across packed rows: neat_packing's way, which plain packing lacks
    train["packing"] = bool(raw.get("packing") or raw.get("neat_packing"))
    ordered = common.order(raw, train, names, source)
    if raw.get("flash_attn", "auto") not in _ATTENTION:
        raise ConfigError(f"{source}: flash_attn: {keys.short(raw['flash_attn'])} must be one of "
                          f"{', '.join(_ATTENTION)}")
    if _ATTENTION[raw.get("flash_attn", "auto")]:
        train["attn_implementation"] = _ATTENTION[raw["flash_attn"]]
    train["report_to"] = common.report(raw.get("report_to"))
    names.update({"train.report_to": "report_to", "train.liger": "enable_liger_kernel",
                  "train.attn_implementation": "flash_attn", "train.method": "finetuning_type",
                  "train.loss_on": "train_on_prompt"})
    train["dtype"] = _dtype(raw)
    # LLaMA-Factory supervises every assistant turn; mask_history the last one; train_on_prompt all text
    train["loss_on"] = "all" if raw.get("train_on_prompt") else "last" if raw.get("mask_history") else "assistant"
    _data(raw, train, base, source)
    ignored = _rest({k: v for k, v in raw.items() if k not in ordered}, train, defaults, trainer, source)
    return {"student": common.student(raw, source), "train": train}, keys.ignored(ignored, source), names
