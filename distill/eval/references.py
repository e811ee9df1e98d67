"""The R1 paper's scores for its six distilled students (references.yaml), and which of them a
model under evaluation should be compared with."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

FILE = Path(__file__).with_name("references.yaml")


@lru_cache(maxsize=1)
def load() -> dict:
    return yaml.safe_load(FILE.read_text())


def _short(name: str | None) -> str | None:
    """`deepseek-ai/DeepSeek-R1-Distill-Qwen-7B`, `/models/DeepSeek-R1-Distill-Qwen-7B/` → the
    lowercased last part, so a hub id and a local copy of it match."""
    if not name:
        return None
    return name.rstrip("/").rsplit("/", 1)[-1].lower() or None


def match(model: str | None, base: str | None = None, recipe: str | None = None) -> dict | None:
    """The reference entry for a model, with `matched` saying why:

    - `model`: the model is one of the published students (its hub id or folder name);
    - `recipe`: it was trained with the bundled recipe that reproduces one (e.g. r1-distill-qwen-7b);
    - `base`: it was trained from the same base model as one (e.g. Qwen/Qwen2.5-Math-7B).
    """
    entries = load()["models"]
    for how, wanted, key in (("model", _short(model), "name"), ("recipe", recipe and recipe.lower(), "recipe"),
                             ("base", _short(base), "base")):
        if not wanted:
            continue
        for entry in entries:
            if wanted in {_short(entry[key]), _short(entry.get("hub")) if key == "name" else None}:
                return {**entry, "matched": how, "source": load()["source"]}
    return None
