"""A shard's rows judged as `distill filter` judges them: the cheap verifiers inline, the isolated
ones through the worker pool. The filter judges the traces it holds in memory this way, and
`distill eval` its benchmark samples, so a benchmark answer is judged as a trace is.

- `OPTION_KEYS`: the filter settings the verifiers read (`options` is them as a dict).
- `_verify_shard(rows, names, options, pool)`: every row's Verdict, in order.
- `row_timeout(row, names, options)`: a code row's own time limit (the pool's otherwise).
"""

from __future__ import annotations

import json

from ..prompting import split_think
from .registry import VERIFIERS, Verdict, applies, run

# filter settings that only change how fast it runs, not what it keeps
OPTION_KEYS = ("require_think", "reject_truncated", "timeout", "language_threshold", "repetition_ngram",
               "repetition_threshold", "min_tokens", "max_tokens", "code_timeout", "code_memory_mb",
               "code_sandbox")


# For rows held in memory (distill eval's samples): what isolated verifiers may read; the raw
# completion and the rest of the row stay here.
PAYLOAD = ("id", "problem", "answer", "reasoning", "response", "domain", "choices", "tests", "finish_reason", "think",
           "completion_tokens")


def _payload(row: dict) -> dict:
    return {k: row.get(k) for k in PAYLOAD}


def row_timeout(row: dict, names: tuple[str, ...], options: dict) -> float | None:
    """Code rows run every test in a fresh process: their limit grows with the number of tests."""
    if "code" not in names:
        return None
    try:
        spec = json.loads(row.get("tests") or "{}")
        cases = len(spec.get("inputs") or []) or 1
    except (ValueError, AttributeError):
        cases = 1
    return max(options["timeout"], cases * options["code_timeout"] + 5)


def _inline_checks(rows: list[dict], names: tuple[str, ...], options: dict,
                   verdicts: list[Verdict | None]) -> set[int]:
    """Run the verifiers that are cheap enough for this process; return the rows that still need
    the isolated verifiers of the pool. Rows with a verdict already (say, contaminated) are left."""
    inline = [n for n in names if not VERIFIERS[n].isolated]
    isolated = [n for n in names if VERIFIERS[n].isolated]
    for i, row in enumerate(rows):
        if "think" not in row:
            row["reasoning"], row["response"], row["think"] = split_think(row["completion"] or "")
        if verdicts[i] is None:
            verdicts[i] = run(inline, row, options)
    return {i for i, row in enumerate(rows) if verdicts[i].ok and any(applies(n, row) for n in isolated)}


def _tasks(key, rows: list[dict], pending: set[int], names: tuple[str, ...], options: dict):
    """The pool's tasks for `rows`: ((key, row index), verifiers, payload, options, timeout)."""
    isolated = [n for n in names if VERIFIERS[n].isolated]
    for i in sorted(pending):
        mine = tuple(n for n in isolated if applies(n, rows[i]))
        yield (key, i), mine, _payload(rows[i]), options, row_timeout(rows[i], mine, options)


def _verify_shard(rows: list[dict], names: tuple[str, ...], options: dict, pool) -> list[Verdict]:
    """Every verdict for one shard's rows: cheap checks inline, the rest through the pool."""
    verdicts: list[Verdict | None] = [None] * len(rows)
    pending = _inline_checks(rows, names, options, verdicts)
    if pending:
        for (_, i), verdict in pool.imap(_tasks(0, rows, pending, names, options)):
            verdicts[i] = verdict
            pending.discard(i)
    if pending:  # fail closed: a row nobody verified is never kept as verified
        raise RuntimeError(f"the verifier pool returned no verdict for {len(pending)} rows")
    return verdicts
