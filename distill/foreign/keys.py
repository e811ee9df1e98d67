"""Which arguments the published tools define, and the one-line errors about them.

published_keys.json lists what no installed package can tell us: LLaMA-Factory's own
arguments over its history (each with its latest default; old names stay, since published files
still carry them), open-r1's and the alignment handbook's additions to TRL, and for each TRL
trainer other than SFT the keys that mark a file as that trainer's. tests/corpus/collect.py
rebuilds it from the projects' repositories; TRL's and transformers' own dataclasses are read
from the installed versions.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError


@functools.lru_cache(maxsize=None)
def published() -> dict:
    return json.loads((Path(__file__).parent / "published_keys.json").read_text())


def llamafactory_defaults() -> dict:
    """LLaMA-Factory's own arguments (model, data, finetuning, … dataclasses) -> default."""
    return published()["llamafactory"]["keys"]


def older_releases() -> frozenset:
    """Arguments of older transformers and TRL releases that the installed ones dropped."""
    return frozenset(published().get("older-releases", {}).get("keys", ()))


def stage_keys() -> dict[str, frozenset]:
    """TRL trainer name -> the keys only that trainer's config has (not SFT's)."""
    return {stage: frozenset(keys) for stage, keys in published()["trl"]["stages"].items()}


def fields(*classes) -> set[str]:
    return {f.name for cls in classes for f in dataclasses.fields(cls)}


def defaults(*classes) -> dict:
    out: dict = {}
    for cls in classes:
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                out.setdefault(f.name, f.default)
            elif f.default_factory is not dataclasses.MISSING:
                out.setdefault(f.name, f.default_factory())
    return out


def short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def unknown(key: str, valid, source: str, tools: str) -> ConfigError:
    """A key no tool defines: the three nearest real ones at most, never the whole list."""
    near = difflib.get_close_matches(str(key), sorted(valid), n=3, cutoff=0.75)
    hint = f" (did you mean {', '.join(near)}?)" if near else ""
    return ConfigError(f"{source}: unknown key '{short(key, 60)[1:-1]}': no {tools} argument has this name{hint}; "
                       "remove it")


def unsupported(key: str, value: Any, source: str, what: str, fix: str = "remove it") -> ConfigError:
    """A real argument of the file's tool that distill cannot honour at this value; `what` says
    whose feature it is ("a LLaMA-Factory feature")."""
    return ConfigError(f"{source}: not supported by distill ({what}): {key}: {short(value)}; {fix}")


def ignored(keys: dict[str, str], source: str) -> list[str]:
    """One warning line for every setting that changes nothing in what distill trains."""
    if not keys:
        return []
    names = sorted(keys)
    listed = ", ".join(names[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else "")
    return [f"{source}: {len(names)} setting{'s' if len(names) != 1 else ''} with no effect on what distill "
            f"trains, ignored: {listed} (docs/recipes.md says why)"]
