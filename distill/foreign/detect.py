"""Which tool wrote a YAML file, and whether it is a supervised fine-tuning recipe at all.

The stage is decided before any key is checked: a DPO or GRPO file is refused for what it is,
in one line naming it, not for the first key SFT lacks.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import ConfigError
from .keys import stage_keys

OPENR1, LLAMAFACTORY = "open-r1/TRL", "LLaMA-Factory"

# keys only a LLaMA-Factory file has (both formats share model_name_or_path and the Trainer keys)
_LF_MARKERS = {"stage", "finetuning_type", "cutoff_len", "template", "dataset", "dataset_dir", "lora_rank",
               "lora_target", "flash_attn", "enable_liger_kernel", "max_samples", "quantization_bit",
               "train_on_prompt", "neat_packing", "formatting", "export_dir", "infer_backend", "eval_dataset",
               "adapter_name_or_path"}
_TRL_MARKERS = {"model_name_or_path", "dataset_name", "dataset_mixture", "dataset_mixer", "use_peft",
                "max_seq_length", "torch_dtype", "dataset_prompt_column"}
# LLaMA-Factory's v1 configuration (examples/v1): a different layout altogether
_LF_V1 = {"model_class", "train_dataset", "dist_config", "kernel_config", "quant_config", "micro_batch_size",
          "peft_config", "sample_backend"}
# accelerate's launcher configs sit beside published recipes (recipes/accelerate_configs)
_ACCELERATE = {"compute_environment", "distributed_type", "num_processes", "machine_rank", "num_machines"}

# open-r1's GRPO script arguments and older TRL releases' preference keys, beside the installed TRL's
_EXTRA_MARKS = {
    "GRPO": {"reward_funcs", "reward_weights", "cosine_min_value_wrong", "cosine_max_value_wrong",
             "cosine_min_value_correct", "cosine_max_value_correct", "cosine_max_len", "repetition_n_grams",
             "repetition_max_penalty", "code_language", "code_eval_test_batch_size", "code_eval_scoring_mode",
             "parallel_code_exec_per_proc", "e2b_router_url", "morph_router_url", "code_provider", "ioi_provider",
             "max_completion_len", "soft_punish_cache", "max_prompt_length", "num_generations"},
    "DPO": {"max_prompt_length", "beta"},
}
_LF_STAGES = {"pt": "pre-training (stage: pt)", "rm": "reward modelling (stage: rm)", "ppo": "PPO (stage: ppo)",
              "dpo": "DPO (stage: dpo)", "kto": "KTO (stage: kto)"}
# the trainer a file is for, from where its projects keep it (recipes/MODEL/grpo/…), when its keys tie
_PATH_STAGES = {"grpo": "GRPO", "dpo": "DPO", "orpo": "ORPO", "kto": "KTO", "rloo": "RLOO", "ppo": "PPO",
                "reward": "reward modelling", "rm": "reward modelling", "simpo": "CPO"}


def detect(raw: dict) -> str | None:
    """The recipe format of a YAML mapping: OPENR1, LLAMAFACTORY, or None for distill's own."""
    from ..config import Recipe

    keys = set(raw)
    if keys & {f.name for f in dataclasses.fields(Recipe)} - {"name", "description"}:
        return None
    if keys & (_LF_MARKERS | _LF_V1):
        return LLAMAFACTORY
    if keys & (_TRL_MARKERS | _ACCELERATE) or keys & set().union(*stage_keys().values()):
        return OPENR1
    return None


def is_distill_key(dotted: str) -> bool:
    """Does `--set KEY=…` address distill's recipe (student…, train…) rather than the file's keys?"""
    from ..config import Recipe

    return dotted.split(".")[0] in {f.name for f in dataclasses.fields(Recipe)}


def _refuse(source: str, what: str) -> ConfigError:
    return ConfigError(f"{source}: this is {what}, not a supervised fine-tuning recipe; distill trains SFT only")


def check_llamafactory(raw: dict, source: str) -> None:
    """Refuse what is not an SFT training file: other stages, inference, export, prediction, v1."""
    if set(raw) & _LF_V1 or isinstance(raw.get("model"), (str, dict)):
        raise ConfigError(f"{source}: LLaMA-Factory's v1 config layout (model:, train_dataset:, dist_config:) "
                          "is not read by distill; write the file in the v0 layout (model_name_or_path:, dataset:)")
    stage = str(raw.get("stage", "sft")).lower()
    if stage in _LF_STAGES:
        loss = raw.get("pref_loss")
        extra = f" with pref_loss: {loss}" if stage == "dpo" and loss not in (None, "sigmoid") else ""
        raise _refuse(source, f"a LLaMA-Factory {_LF_STAGES[stage]}{extra} file")
    if stage != "sft":
        raise ConfigError(f"{source}: stage: {stage} is not a LLaMA-Factory stage distill knows; distill trains "
                          "stage: sft only")
    if raw.get("export_dir"):
        raise _refuse(source, "a LLaMA-Factory export (merge or quantize) file")
    if raw.get("do_predict") and not raw.get("do_train"):
        raise _refuse(source, "a LLaMA-Factory prediction file (do_predict)")
    if not raw.get("dataset") and "stage" not in raw and not raw.get("do_train"):
        raise _refuse(source, "a LLaMA-Factory inference file (no stage, no dataset)")


def check_trl(raw: dict, source: str, path: Path | None, sft_keys: set[str]) -> None:
    """Refuse accelerate configs and the recipes of TRL's other trainers (GRPO, DPO, …), by the keys
    only those trainers have; where several trainers share them, the file's folder decides."""
    keys = set(raw)
    if keys & _ACCELERATE and "model_name_or_path" not in keys:
        raise _refuse(source, "an accelerate launcher config (pass it to `accelerate launch --config_file`)")
    if "dataset_prompt_column" in keys and "num_generations" in keys and not keys & {"reward_funcs", "beta"}:
        raise _refuse(source, "an open-r1 pass-rate filtering config (it generates to score problems)")
    marks_of = {stage: marks | _EXTRA_MARKS.get(stage, set()) for stage, marks in stage_keys().items()}
    scores = {stage: len((keys - sft_keys) & marks) for stage, marks in marks_of.items()}
    best = max(scores.values(), default=0)
    if best == 0:
        return
    tied = [stage for stage, n in scores.items() if n == best]
    folders = [p.lower() for p in path.parts] if path is not None else []
    by_path = [_PATH_STAGES[p] for p in folders if p in _PATH_STAGES and _PATH_STAGES[p] in scores]
    if by_path and scores[by_path[-1]]:
        tied = [by_path[-1]]
    stage = " or ".join(tied[:3])  # keys several trainers share, and no folder to tell them apart
    marks = sorted((keys - sft_keys) & set().union(*(marks_of[s] for s in tied[:3])))
    raise _refuse(source, f"a TRL {stage} recipe ({', '.join(marks[:3])} {'is' if len(marks) == 1 else 'are'} "
                          f"{stage} settings)")
