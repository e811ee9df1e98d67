"""Language consistency: the chain of thought should be written in the prompt's script.

R1's distillation data dropped reasoning that mixes languages (Chinese inside an English
prompt's thinking is the common case). Letters are counted by script; Greek is ignored (math
uses α, β, π in any language), and so are digits, symbols, LaTeX commands (\\boxed, \\frac) and
single-letter variables, which a Chinese chain of thought writes in Latin letters too.
"""

from __future__ import annotations

import re
from functools import lru_cache

from . import Verdict, register

SCRIPTS = {
    "latin": r"\p{Latin}",
    "cjk": r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]",
    "cyrillic": r"\p{Cyrillic}",
    "arabic": r"\p{Arabic}",
    "hebrew": r"\p{Hebrew}",
    "devanagari": r"\p{Devanagari}",
    "thai": r"\p{Thai}",
}
MIN_LETTERS = 20  # too few letters to say anything about a language


@lru_cache(maxsize=1)
def _patterns():
    import regex

    return {name: regex.compile(p) for name, p in SCRIPTS.items()}


_NOT_LANGUAGE = re.compile(r"\\[A-Za-z]+|\b[A-Za-z]\b")


def script_counts(text: str) -> dict[str, int]:
    text = _NOT_LANGUAGE.sub(" ", text)
    return {name: len(p.findall(text)) for name, p in _patterns().items()}


def dominant_script(text: str) -> str | None:
    counts = script_counts(text)
    name, count = max(counts.items(), key=lambda kv: kv[1])
    return name if count else None


@register("language", isolated=False)
def check_language(row: dict, options: dict) -> Verdict:
    prompt = dominant_script(row.get("problem") or "")
    if prompt is None:
        return Verdict(True)
    counts = script_counts(f"{row.get('reasoning') or ''}\n{row.get('response') or ''}")
    total = sum(counts.values())
    if total < MIN_LETTERS:
        return Verdict(True)
    foreign = (total - counts[prompt]) / total
    if foreign > options.get("language_threshold", 0.05):
        return Verdict(False, "language_mixing")
    return Verdict(True)
