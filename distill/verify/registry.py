"""The verifier registry: `Verdict`, `register` and `run` (the package's __init__ re-exports
them and imports the built-in verifiers, which register themselves here)."""

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
