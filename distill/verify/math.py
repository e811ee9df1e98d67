"""Math answers checked with math-verify against the gold answer.

The answer is read from the response (the text after `</think>`): the last `\\boxed{}` first;
without one, math-verify's own extraction ("final answer is …", then the last expression).
A gold and an answer that are both plain numbers are decided exactly without sympy first
(verify/numbers.py), with the verdict math-verify would give.
math-verify's SIGALRM timeouts are switched off: this runs in a worker process that the pool
kills when it overruns, which also stops C-level work that an alarm cannot interrupt.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from .registry import Verdict, register
from .numbers import quick_verdict

logging.getLogger("math_verify").setLevel(logging.CRITICAL)  # it logs whole inputs on failure


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{…} (or \\fbox{…}), braces matched; None if there is none."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        # \boxed 5 (no braces) is valid LaTeX for a single token
        rest = text[start + len("\\boxed") :].strip().split()
        return rest[0].rstrip(".,;$") if rest else None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j].strip()
    return None  # unbalanced: treat as no box


@lru_cache(maxsize=4096)
def _parse_gold(gold: str):
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    configs = [LatexExtractionConfig(), ExprExtractionConfig()]
    parsed = parse(f"${gold}$", extraction_config=configs, parsing_timeout=None)
    return parsed or parse(gold, extraction_config=configs, parsing_timeout=None)


def _parse_answer(response: str):
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    boxed = last_boxed(response)
    configs = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    if boxed:  # an empty \boxed{} (a model echoing the instruction) is no answer: read on
        return parse(f"\\boxed{{{boxed}}}", extraction_config=configs, parsing_timeout=None), boxed
    parsed = parse(response, extraction_config=configs, parsing_timeout=None)
    shown = parsed[-1] if parsed and isinstance(parsed[-1], str) else (str(parsed[0]) if parsed else None)
    return parsed, shown


@register("math", isolated=True, domains=("math",))
def check_math(row: dict, options: dict) -> Verdict:
    gold = row.get("answer")
    if gold is None or not str(gold).strip():
        return Verdict(False, "no_gold")
    return math_verdict(str(gold).strip(), row["response"])


def math_verdict(gold: str, response: str, fast: bool = True) -> Verdict:
    """The verdict for a non-empty gold; `fast=False` skips the fast path (for the test that
    checks it never changes a verdict)."""
    boxed = last_boxed(response)
    if fast:
        verdict = quick_verdict(gold, response, boxed)
        if verdict is not None:
            return verdict
    if boxed:  # the verdict then depends on the gold and the box alone
        return _boxed_verdict(gold, boxed) if fast else _boxed_verdict.__wrapped__(gold, boxed)
    return _verdict(gold, response)


# Samples of one problem mostly box the same answer: math-verify judges each (gold, box) once
# per worker. Its verdicts are pure functions of the two strings.
@lru_cache(maxsize=8192)
def _boxed_verdict(gold: str, boxed: str) -> Verdict:
    return _verdict(gold, f"\\boxed{{{boxed}}}")


def _verdict(gold: str, response: str) -> Verdict:
    from math_verify import verify

    gold_parsed = _parse_gold(gold)
    if not gold_parsed:
        return Verdict(False, "gold_unparsable")
    parsed, shown = _parse_answer(response)
    if shown is not None and len(shown) > 200:  # the answer column is for reading, not a copy of the text
        shown = shown[:197] + "..."
    if not parsed:
        return Verdict(False, "no_answer", shown)
    ok = verify(gold_parsed, parsed, timeout_seconds=None)
    return Verdict(True, None, shown) if ok else Verdict(False, "wrong_answer", shown)
