"""The run folder's record of what made it: `recipe.resolved.yaml`, written before any stage
writes, and the guard that refuses to continue a stage under a changed configuration, or to run
it beside another process (a rank, a second command) that claimed other settings.

Locks (`flock`, released by the kernel however a process ends, so a killed run never blocks its
rerun): a claim holds `.locks/_claim` exclusively while it reads and writes the
configuration; every process running a stage then holds `.locks/STAGE` shared until it exits.
A claim that cannot take that lock exclusively knows the stage is running elsewhere."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from . import shards
from .config import Recipe
from .recipes import to_dict
from .errors import ConfigError, UserError

RESOLVED = "recipe.resolved.yaml"
BASE = "base"  # RUN/base/eval: the untrained student's scores, beside RUN/eval (the trained one's)

# The recipe parts that decide each stage's output. Throughput-only knobs are left out, so a
# resumed run may change them (a smaller batch after an out-of-memory, more workers).
STAGE_KEYS = {
    "generate": ("teacher", "data", "generate"),
    "filter": ("filter",),
    "train": ("student", "train"),
    "eval": ("eval",),
    "base": ("student", "eval"),  # the untrained student on the eval section's benchmarks
}
LOCKS = ".locks"
_HELD: dict[str, int] = {}  # stage lock path -> the descriptor this process holds it by
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


def _lock(fd: int, how: int, path: Path) -> bool:
    """flock; False when LOCK_NB finds it held. Opened read-write: NFS emulates flock with
    POSIX locks, whose exclusive kind needs a file open for writing."""
    try:
        fcntl.flock(fd, how)
        return True
    except BlockingIOError:
        return False
    except OSError as e:
        raise UserError(f"{path}: cannot lock it ({e.strerror}): the run folder's file system must support "
                        f"flock, or two processes could mix their rows; use a local or NFSv4 folder") from None


@contextmanager
def _claiming(out: Path):
    path = out / LOCKS / "_claim"
    path.parent.mkdir(exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _lock(fd, fcntl.LOCK_EX, path)  # one claim at a time; each takes milliseconds
        yield
    finally:
        os.close(fd)


def _running_elsewhere(out: Path, stage: str) -> bool:
    """Take this stage's lock shared for the rest of this process; say whether another process
    holds it (runs the stage) now."""
    path = out / LOCKS / stage
    key = str(path.resolve())
    fd = _HELD.pop(key, None)
    if fd is None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _lock(fd, fcntl.LOCK_UN, path)  # our own hold must not count as another process's
        others = not _lock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, path)
        _lock(fd, fcntl.LOCK_SH, path)  # no one else claims meanwhile: we hold the claim lock
    except UserError:
        os.close(fd)
        raise
    _HELD[key] = fd
    return others


def claim(out: Path, recipe: Recipe, stage: str, started: bool) -> None:
    """Record `recipe` in `out/recipe.resolved.yaml` for `stage`, and mark the stage as running
    in this process until it exits.

    `started` says whether the stage already has work in `out`; then, or while another process
    runs the stage, its configuration must be unchanged, or the rows of two configurations
    would be mixed silently.
    """
    out.mkdir(parents=True, exist_ok=True)
    with _claiming(out):
        elsewhere = _running_elsewhere(out, stage)
        try:
            _claim(out, recipe, stage, started, elsewhere)
        except ConfigError:
            release(out, stage)
            raise


def release(out: Path, stage: str) -> None:
    """This process no longer runs `stage` in `out` (the lock also goes when the process ends)."""
    fd = _HELD.pop(str((Path(out) / LOCKS / stage).resolve()), None)
    if fd is not None:
        os.close(fd)


def _claim(out: Path, recipe: Recipe, stage: str, started: bool, elsewhere: bool) -> None:
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
    if diff and (started or elsewhere):
        where, old, new = diff
        how = "is running in another process" if elsewhere else "was started"
        raise ConfigError(
            f"{out}: its {stage} stage {how} with {where}={_short(old)}, now {_short(new)}; "
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
