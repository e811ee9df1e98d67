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

    patterns = {name: regex.compile(p) for name, p in SCRIPTS.items()}
    inner = "".join(p[1:-1] if p.startswith("[") else p for p in SCRIPTS.values())
    return patterns, regex.compile(f"[{inner}]")  # the second: a letter of any of them


_NOT_LANGUAGE = re.compile(r"\\[A-Za-z]+|\b[A-Za-z]\b")


def script_counts(text: str) -> dict[str, int]:
    text = _NOT_LANGUAGE.sub(" ", text)
    return {name: len(p.findall(text)) for name, p in _patterns()[0].items()}


@lru_cache(maxsize=4096)  # a problem comes with n samples
def dominant_script(text: str) -> str | None:
    counts = script_counts(text)
    name, count = max(counts.items(), key=lambda kv: kv[1])
    return name if count else None


def foreign_share(text: str, script: str) -> tuple[float, int]:
    """Share of the letters of `text` not in `script`, and how many letters there are (two
    passes over the text, not one per script)."""
    patterns, any_letter = _patterns()
    text = _NOT_LANGUAGE.sub(" ", text)
    total = len(any_letter.findall(text))
    return ((total - len(patterns[script].findall(text))) / total if total else 0.0), total


@register("language", isolated=True)  # linear, but it reads every letter: in parallel
def check_language(row: dict, options: dict) -> Verdict:
    prompt = dominant_script(row.get("problem") or "")
    if prompt is None:
        return Verdict(True)
    foreign, letters = foreign_share(f"{row.get('reasoning') or ''}\n{row.get('response') or ''}", prompt)
    if letters >= MIN_LETTERS and foreign > options.get("language_threshold", 0.05):
        return Verdict(False, "language_mixing")
    return Verdict(True)
