"""Teacher engines: a registry of plain functions.

A backend is `open(teacher, settings) -> generate`, where `generate(prompts, seed, on_batch)`
returns one sample dict per (prompt, sample_idx): {prompt_index, sample_idx, completion,
finish_reason, prompt_tokens, completion_tokens}. Heavy imports live inside each backend.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

from ..config import PromptTemplate, TeacherCard
from ..errors import ConfigError


@dataclass(frozen=True)
class GenSettings:
    """Everything that decides what the teacher writes; recorded as `gen_config` on each row."""

    backend: str
    n: int
    temperature: float
    top_p: float
    max_tokens: int
    seed: int
    template: PromptTemplate
    batch_size: int = 16  # throughput only; not part of gen_config

    def gen_config(self) -> str:
        d = asdict(self)
        d.pop("batch_size")
        return json.dumps(d, sort_keys=True, ensure_ascii=False)


Sample = dict
GenerateFn = Callable[..., list[Sample]]
OpenFn = Callable[[TeacherCard, GenSettings], GenerateFn]

# name -> "module:function", imported on first use so `distill --help` stays light.
BACKENDS: dict[str, str] = {
    "hf": "distill.backends.hf:open_backend",
    "fake": "distill.backends.fake:open_backend",
}


def register(name: str, target: str) -> None:
    """Add a backend: `target` is "module:function" returning a generate function."""
    BACKENDS[name] = target


def resolve_name(name: str) -> str:
    """`auto` picks the best engine that is installed (vLLM arrives with its own issue)."""
    if name == "auto":
        return "hf"
    if name not in BACKENDS:
        raise ConfigError(f"unknown generate.backend '{name}' (known: auto, {', '.join(BACKENDS)})")
    return name


def open_backend(teacher: TeacherCard, settings: GenSettings) -> GenerateFn:
    module, _, fn = BACKENDS[settings.backend].partition(":")
    return getattr(importlib.import_module(module), fn)(teacher, settings)
