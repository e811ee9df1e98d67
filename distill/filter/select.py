"""Selection: which verified samples of a problem to keep, each problem's pass rate, and
seeded quotas that bring the kept rows down to a target.

Quotas and the target sample uniformly without holding rows in memory: every candidate row
draws a 64-bit number from a hash of (seed, id, sample_idx); a group keeps its `quota` rows with
the smallest draws, and the whole set its `target` smallest among those. The same seed keeps
the same rows on any machine, any number of ranks, and after any resume.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

import numpy as np

from ..verify.format import completion_tokens


def draw(seed: int, problem_id: str, sample_idx: int) -> int:
    text = f"{seed}\x00{problem_id}\x00{sample_idx}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little", signed=True)


def pass_rates(rows: list[dict], ok: list[bool]) -> list[float]:
    """Per row: the share of its problem's samples (in this shard) that passed verification."""
    total: dict[str, int] = defaultdict(int)
    good: dict[str, int] = defaultdict(int)
    for row, passed in zip(rows, ok):
        total[row["id"]] += 1
        good[row["id"]] += passed
    return [good[row["id"]] / total[row["id"]] for row in rows]


def choose(rows: list[dict], ok: list[bool], mode: str, k: int) -> list[bool]:
    """Keep mask over `rows`: all verified samples, or the first / shortest `k` per problem."""
    if mode == "all":
        return list(ok)
    by_problem: dict[str, list[int]] = defaultdict(list)
    for i, (row, passed) in enumerate(zip(rows, ok)):
        if passed:
            by_problem[row["id"]].append(i)
    keep = [False] * len(rows)
    for indices in by_problem.values():
        if mode == "first":
            indices.sort(key=lambda i: rows[i]["sample_idx"])
        else:  # shortest; ties by sample order
            indices.sort(key=lambda i: (completion_tokens(rows[i]), rows[i]["sample_idx"]))
        for i in indices[:k]:
            keep[i] = True
    return keep


def quota_rows(value: float | int | None, target: int | None) -> int | None:
    """A quota as a row count: an int as it is, a float below 1 as a share of the target."""
    if value is None:
        return None
    if isinstance(value, float) and value < 1:
        return int(round(value * (target or 0)))
    return int(value)


def cutoffs(draws: dict[str, np.ndarray], quotas: dict, target: int | None) -> tuple[dict[str, float | int | None], int | None]:
    """The largest draw kept per group, and overall (None: no limit)."""
    caps: dict[str, float | int | None] = {}
    for group, values in draws.items():
        want = quota_rows(quotas.get(group), target)
        if want is None or len(values) <= want:
            caps[group] = None
        elif want == 0:  # a share of the target that rounds to no row
            caps[group] = float("-inf")
        else:
            caps[group] = int(np.partition(values, want - 1)[want - 1])
    overall = None
    if target is not None:
        passing = [v if caps[g] is None else v[v <= caps[g]] for g, v in draws.items()]
        pooled = np.concatenate(passing) if passing else np.array([], dtype=np.int64)
        if len(pooled) > target:
            overall = int(np.partition(pooled, target - 1)[target - 1])
    return caps, overall
