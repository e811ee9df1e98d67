"""The training choices that depend on the machine rather than on the recipe alone: which
attention kernel, whether Liger kernels are used, and whether packing can be trusted with them.

Each function decides once, before the model loads, so a missing package is one line at the
start instead of an error (or silently wrong attention) after minutes of set-up.
"""

from __future__ import annotations

import importlib
import os

from ..config import TrainConfig
from ..errors import ConfigError, reason

# Attention implementations that keep packed rows apart. flash_attention_* and flex read the
# sequence boundaries TRL's padding-free collator passes (cu_seq_lens / position_ids); sdpa and
# eager get a block-diagonal mask that transformers builds from position_ids that restart at 0
# (masking_utils.find_packed_sequence_indices, used when there is no attention_mask and no cache,
# which is how TRL trains).
PACKING_SAFE = ("flash_attention_2", "flash_attention_3", "flex_attention", "sdpa", "eager")


def _imports(module: str) -> bool:
    try:
        importlib.import_module(module)
    except Exception:  # noqa: BLE001 - a broken install (e.g. a CUDA mismatch) counts as absent
        return False
    return True


def attention(cfg: TrainConfig, on_gpu: bool) -> str:
    """The recipe's attn_implementation; else flash_attention_2 on a GPU with flash-attn installed;
    else sdpa. Packing with an attention that would let packed rows see each other is refused."""
    if cfg.attn_implementation:
        chosen = cfg.attn_implementation
        if chosen.startswith("flash_attention") and not (on_gpu and _imports("flash_attn")):
            raise ConfigError(
                f"train.attn_implementation: {chosen} needs a CUDA GPU and the flash-attn package "
                "(pip install flash-attn --no-build-isolation); or use sdpa"
            )
    else:
        chosen = "flash_attention_2" if on_gpu and _imports("flash_attn") else "sdpa"
    if cfg.packing and chosen not in PACKING_SAFE:
        raise ConfigError(
            f"train.packing: attention '{chosen}' does not keep packed rows apart; "
            f"use one of {', '.join(PACKING_SAFE)}, or set train.packing: false"
        )
    return chosen


def liger(cfg: TrainConfig, on_gpu: bool) -> bool:
    """Liger kernels, only when the recipe asks (TRL's use_liger_kernel, LLaMA-Factory's
    enable_liger_kernel, train.liger): switched on by itself it met known upstream failures
    (LoRA on Qwen3)."""
    if not cfg.liger:
        return False
    if cfg.liger and not _imports("liger_kernel"):
        raise ConfigError("train.liger: true needs the liger-kernel package: pip install liger-kernel "
                          "(or set train.liger: false)")
    if cfg.liger and not on_gpu:
        raise ConfigError("train.liger: Liger kernels are Triton GPU kernels; set train.liger: false on this machine")
    return cfg.liger


def check_reporters(cfg: TrainConfig) -> None:
    """Each train.report_to entry must have its package installed; else one line now, not an
    ImportError after the model has loaded."""
    import importlib.util

    for name in cfg.report_to:  # each reporter's package has its name (transformers imports it to report)
        if importlib.util.find_spec(name) is None:
            raise ConfigError(f"train.report_to: {name} needs the {name} package: pip install {name} "
                              f"(or remove {name} from train.report_to)")


def _offline() -> bool:
    return any(os.environ.get(v, "").strip().upper() in ("1", "ON", "YES", "TRUE")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def check_hub(cfg: TrainConfig) -> None:
    """push_to_hub needs the hub and a token that it accepts: check both before training, so an
    offline run fails in its first second rather than after the last step."""
    if not cfg.push_to_hub:
        return
    if _offline():
        raise ConfigError("train.push_to_hub: the hub is switched off here (HF_HUB_OFFLINE is set); "
                          "set train.push_to_hub: false and upload the student folder later")
    from huggingface_hub import HfApi, get_token

    token = get_token()
    if not token:
        raise ConfigError("train.push_to_hub: no Hugging Face token; run `hf auth login` or set HF_TOKEN "
                          "(or set train.push_to_hub: false)")
    try:
        HfApi().whoami(token=token)
    except Exception as e:  # noqa: BLE001 - offline, refused token, proxy: all one line
        raise ConfigError(f"train.push_to_hub: cannot reach the hub with this machine's token ({reason(e)}); "
                          "check the network and `hf auth whoami`, or set train.push_to_hub: false") from None


# optimizers transformers builds from another package, by name: (pattern, module, pip name, GPU only)
_OPTIMIZERS = (("galore", "galore_torch", "galore-torch", False), ("apollo", "apollo_torch", "apollo-torch", False),
               ("lomo", "lomo_optim", "lomo-optim", False), ("grokadamw", "grokadamw", "grokadamw", False),
               ("schedule_free", "schedulefree", "schedulefree", False),
               ("adamw_torch_4bit", "torchao", "torchao", False), ("adamw_torch_8bit", "torchao", "torchao", False),
               ("stable_adamw", "optimi", "torch-optimi", False), ("anyprecision", "torchdistx", "torchdistx", False),
               ("8bit", "bitsandbytes", "bitsandbytes", True), ("paged_", "bitsandbytes", "bitsandbytes", True),
               ("bnb", "bitsandbytes", "bitsandbytes", True), ("lion", "bitsandbytes", "bitsandbytes", True),
               ("ademamix", "bitsandbytes", "bitsandbytes", True), ("_xla", "torch_xla", "torch-xla", False),
               ("_npu", "torch_npu", "torch-npu", False))


def check_optimizer(name: str, on_gpu: bool) -> None:
    """An optimizer that needs a package (bitsandbytes' 8-bit and paged ones, GaLore, …) or a GPU
    is one line before any data or model loads, not a traceback after the model has."""
    for pattern, module, package, gpu in _OPTIMIZERS:
        if pattern not in name:
            continue
        if not _imports(module):
            raise ConfigError(f"train.trl.optim: {name} needs the {package} package: pip install {package} "
                              "(or use optim: adamw_torch)")
        if gpu and not on_gpu:
            raise ConfigError(f"train.trl.optim: {name} runs on a CUDA GPU only (bitsandbytes); use adamw_torch here")
        return


def check_trl_values(extra: dict) -> None:
    """The values of further SFTConfig arguments that TRL would refuse only after the model loads:
    those with fixed choices (packing_strategy, optim, lr_scheduler_type, …) are checked here."""
    import dataclasses
    import enum
    import typing

    from trl import SFTConfig

    fields = {f.name: f for f in dataclasses.fields(SFTConfig)}
    for key, value in extra.items():
        f = fields[key]
        choices = list((f.metadata or {}).get("choices") or [])
        for arg in typing.get_args(f.type) or (f.type,):
            if isinstance(arg, type) and issubclass(arg, enum.Enum):
                choices += [m.value for m in arg]
        if choices and value not in choices and not (value is None and f.default is None):
            shown = ", ".join(map(str, choices[:8])) + (", …" if len(choices) > 8 else "")
            raise ConfigError(f"train.trl.{key}: {str(value)[:40]!r} is not one of TRL's choices ({shown})")
