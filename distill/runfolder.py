"""The run folder's record of what made it: `recipe.resolved.yaml`, written before any stage
writes, and the guard that refuses to continue a stage under a changed configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from . import shards
from .config import Recipe
from .recipes import to_dict
from .errors import ConfigError

RESOLVED = "recipe.resolved.yaml"

# The recipe parts that decide each stage's output. Throughput-only knobs are left out, so a
# resumed run may change them (a smaller batch after an out-of-memory, more workers).
STAGE_KEYS = {
    "generate": ("teacher", "data", "generate"),
    "filter": ("filter",),
    "train": ("student", "train"),
    "eval": ("eval",),
}
_IGNORED = {"generate.batch_size", "filter.workers", "eval.batch_size", "eval.workers", "teacher.description",
            "student.description", "generate.max_cost"}
# a served teacher's endpoint settings decide where and how fast, not what is written
_IGNORED |= {f"teacher.engine.{k}" for k in (
    "base_url", "api_key_env", "concurrency", "timeout", "max_retries", "backoff", "max_backoff", "rpm", "tpm",
    "empty_retries", "drain", "stream", "prices", "poll")}


def _first_difference(old: Any, new: Any, path: str) -> tuple[str, Any, Any] | None:
    if path in _IGNORED:
        return None
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            diff = _first_difference(old.get(key), new.get(key), f"{path}.{key}" if path else key)
            if diff:
                return diff
        return None
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            diff = _first_difference(a, b, f"{path}.{i}")
            if diff:
                return diff
        return None
    return None if old == new else (path, old, new)


def _short(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    return text if len(text) <= 60 else text[:57] + "..."


def claim(out: Path, recipe: Recipe, stage: str, started: bool) -> None:
    """Record `recipe` in `out/recipe.resolved.yaml` for `stage`.

    `started` says whether the stage already has work in `out`; then its configuration must
    be unchanged, or the rows of two configurations would be mixed silently.
    """
    out.mkdir(parents=True, exist_ok=True)
    path = out / RESOLVED
    current = to_dict(recipe)
    if not path.is_file():
        _write(path, current)
        return
    try:
        stored = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        raise ConfigError(f"{path}: damaged; delete it only if you also delete the stage folders") from None
    diff = None
    for key in STAGE_KEYS[stage]:
        diff = diff or _first_difference(stored.get(key), current.get(key), key)
    if diff and started:
        where, old, new = diff
        raise ConfigError(
            f"{out}: its {stage} stage was started with {where}={_short(old)}, now {_short(new)}; "
            f"rerun with the same settings, or use a new --out"
        )
    if diff or not stored:
        for key in STAGE_KEYS[stage]:
            stored[key] = current.get(key)
        stored.setdefault("name", current["name"])
        _write(path, stored)


def _write(path: Path, data: dict) -> None:
    shards.write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100))


def check_scale_out(rank: int, world_size: int) -> None:
    if world_size < 1:
        raise ConfigError(f"--world-size must be at least 1, got {world_size}")
    if not 0 <= rank < world_size:
        raise ConfigError(f"--rank must be in 0..{world_size - 1} for --world-size {world_size}, got {rank}")
