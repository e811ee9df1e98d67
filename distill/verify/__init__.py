"""Verifiers: a registry of plain functions `(row, options) -> Verdict`.

`row` is a trace row plus `reasoning`, `response` and `think` (closed | unclosed | none) from
splitting the completion at `</think>`; `options` is the filter section as a dict. Verifiers
marked `isolated` run in killable worker processes (verify.pool), each call under a hard time
limit, on every core; all the built-in ones are. A verifier registered with `isolated=False`
runs where the row already is, for checks too cheap to be worth shipping a row for: in the
worker that read it (the filter's workers read their rows themselves), or in the process that
holds it (`distill eval`; a filter whose verifiers are all inline runs without workers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str | None = None  # why a row is rejected: a short snake_case word
    extracted: str | None = None  # the answer the verifier read from the response


@dataclass(frozen=True)
class Verifier:
    fn: Callable[[dict, dict], Verdict]
    isolated: bool  # run in a worker process with a hard time limit (may hang, or is heavy)
    domains: tuple[str, ...] | None  # rows it applies to; None: every row


VERIFIERS: dict[str, Verifier] = {}


def register(name: str, *, isolated: bool, domains: tuple[str, ...] | None = None):
    """Decorator: make `fn(row, options) -> Verdict` available as a verifier named `name`."""

    def add(fn: Callable[[dict, dict], Verdict]) -> Callable[[dict, dict], Verdict]:
        VERIFIERS[name] = Verifier(fn, isolated, domains)
        return fn

    return add


def applies(name: str, row: dict) -> bool:
    domains = VERIFIERS[name].domains
    return domains is None or row.get("domain") in domains


def run(names: list[str] | tuple[str, ...], row: dict, options: dict) -> Verdict:
    """Run verifiers in order; the first rejection wins, the last extracted answer is kept."""
    extracted = None
    for name in names:
        if not applies(name, row):
            continue
        verdict = VERIFIERS[name].fn(row, options)
        extracted = verdict.extracted or extracted
        if not verdict.ok:
            return Verdict(False, verdict.reason, extracted)
    return Verdict(True, None, extracted)


# Register the built-in verifiers.
from . import choice as _choice  # noqa: E402,F401
from . import code as _code  # noqa: E402,F401
from . import format as _format  # noqa: E402,F401
from . import language as _language  # noqa: E402,F401
from . import math as _math  # noqa: E402,F401
from . import repetition as _repetition  # noqa: E402,F401
