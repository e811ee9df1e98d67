"""Engines that sample a model (the teacher for generate, the student for eval): a registry of
plain functions.

A backend is `open_backend(teacher, settings) -> run`, and `run(work, progress, on_shard)`
generates every shard of `work` (an iterable of `(shard_index, prompt_rows)`) and calls
`on_shard(index, samples)` as soon as a shard is complete, in any order. A sample is
{prompt_index, sample_idx, completion, finish_reason, prompt_tokens, completion_tokens}.
`progress` (ui.GenProgress) takes counts as work finishes. Heavy imports live in each backend.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

from ..config import PromptTemplate, TeacherCard
from ..errors import ConfigError

Sample = dict
Work = Iterable[tuple[int, list[dict]]]
OnShard = Callable[[int, list[Sample]], None]
RunFn = Callable[[Work, object, OnShard], None]


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
    adapter: str | None = None  # a LoRA adapter folder applied on the model (vllm, hf backends)

    def template_hash(self) -> str:
        text = json.dumps(asdict(self.template), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def gen_config(self) -> str:
        d = asdict(self)
        d.pop("batch_size")
        if d["adapter"] is None:  # absent unless set: traces written before it existed still resume
            d.pop("adapter")
        d["template_hash"] = self.template_hash()
        return json.dumps(d, sort_keys=True, ensure_ascii=False)


def shard_seed(seed: int, index: int) -> int:
    """One seed per shard (transformers backend): a redone shard samples what it did before."""
    return (seed * 1_000_003 + index) % (2**63)


def prompt_seed(seed: int, prompt_id: str) -> int:
    """One seed per prompt (vLLM, HTTP): a prompt's samples do not depend on its batch."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{prompt_id}".encode()).digest()[:4], "big") >> 1


# name -> "module:function", imported on first use so `distill --help` stays light.
BACKENDS: dict[str, str] = {
    "vllm": "distill.engines.vllm:open_backend",
    "openai": "distill.engines.openai:open_backend",
    "hf": "distill.engines.hf:open_backend",
    "fake": "distill.engines.fake:open_backend",  # tests only
}


def register(name: str, target: str) -> None:
    """Add a backend: `target` is "module:function" returning a run function."""
    BACKENDS[name] = target


def vllm_usable() -> bool:
    """Whether vLLM is installed and imports (a broken install falls back to transformers)."""
    if importlib.util.find_spec("vllm") is None:
        return False
    try:
        importlib.import_module("vllm")
    except Exception:  # noqa: BLE001 - any import failure means: not usable here
        return False
    return True


def resolve_name(recipe_backend: str, teacher: TeacherCard, key: str = "generate.backend") -> str:
    """The engine to use: the recipe's choice, else the teacher card's, else vLLM when it
    imports, else transformers."""
    name = recipe_backend if recipe_backend != "auto" else teacher.backend
    if name == "auto":
        return "vllm" if vllm_usable() else "hf"
    if name not in BACKENDS:
        known = ", ".join(n for n in BACKENDS if n != "fake")
        raise ConfigError(f"unknown {key} '{name}' (known: auto, {known})")
    return name


def open_backend(teacher: TeacherCard, settings: GenSettings) -> RunFn:
    module, _, fn = BACKENDS[settings.backend].partition(":")
    return getattr(importlib.import_module(module), fn)(teacher, settings)
