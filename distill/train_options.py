"""The training choices that depend on the machine rather than on the recipe alone: which
attention kernel, whether Liger kernels are used, and whether packing can be trusted with them.

Each function decides once, before the model loads, so a missing package is one line at the
start instead of an error (or silently wrong attention) after minutes of set-up.
"""

from __future__ import annotations

import importlib

from .config import TrainConfig
from .errors import ConfigError

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
    """Liger kernels: the recipe's choice, or on when liger-kernel imports and a GPU is used."""
    if cfg.liger is None:
        return on_gpu and _imports("liger_kernel")
    if cfg.liger and not _imports("liger_kernel"):
        raise ConfigError("train.liger: true needs the liger-kernel package: pip install liger-kernel "
                          "(or set train.liger: false)")
    if cfg.liger and not on_gpu:
        raise ConfigError("train.liger: Liger kernels are Triton GPU kernels; set train.liger: false on this machine")
    return cfg.liger
