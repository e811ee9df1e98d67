"""Language consistency: the chain of thought should be written in the prompt's script.

R1's distillation data dropped reasoning that mixes languages (Chinese inside an English
prompt's thinking is the common case). Letters are counted by script; Greek is ignored (math
uses α, β, π in any language), and so are digits, symbols, LaTeX commands (\\boxed, \\frac) and
single-letter variables, which a Chinese chain of thought writes in Latin letters too.

For a prompt in Latin script (nearly all of them) only letters of the other scripts count
against a row, and none of those is ASCII: an ASCII text passes at once, and otherwise only its
non-ASCII code points (a few × or α in most English reasoning) are looked at, in numpy, each
distinct one classified once. Only a row that has some such letters, or a prompt in another
script, is counted letter by letter as before.
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


@lru_cache(maxsize=65536)
def _not_latin(point: int) -> bool:
    """Whether a code point is a letter of one of the scripts above other than Latin."""
    patterns, _ = _patterns()
    char = chr(point)
    return any(p.match(char) for name, p in patterns.items() if name != "latin")


def has_foreign_letters(text: str) -> bool:
    """Whether `text` holds any letter of a script other than Latin (exactly; fast)."""
    if text.isascii():
        return False
    import numpy as np

    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    return any(_not_latin(int(p)) for p in np.unique(points[points >= 0x80]))


@register("language", isolated=True)  # linear, but it reads every letter: in parallel
def check_language(row: dict, options: dict) -> Verdict:
    prompt = dominant_script(row.get("problem") or "")
    if prompt is None:
        return Verdict(True)
    text = f"{row.get('reasoning') or ''}\n{row.get('response') or ''}"
    if prompt == "latin" and not has_foreign_letters(text):
        return Verdict(True)  # no letter of another script: a share of 0
    foreign, letters = foreign_share(text, prompt)
    if letters >= MIN_LETTERS and foreign > options.get("language_threshold", 0.05):
        return Verdict(False, "language_mixing")
    return Verdict(True)
