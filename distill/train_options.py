"""The training choices that depend on the machine rather than on the recipe alone: which
attention kernel, whether Liger kernels are used, and whether packing can be trusted with them.

Each function decides once, before the model loads, so a missing package is one line at the
start instead of an error (or silently wrong attention) after minutes of set-up.
"""

from __future__ import annotations

import importlib
import os

from .config import TrainConfig
from .errors import ConfigError, reason

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
