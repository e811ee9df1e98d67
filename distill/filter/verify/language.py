"""Language consistency: the chain of thought should be written in the prompt's script.

R1's distillation data dropped reasoning that mixes languages (Chinese inside an English
prompt's thinking is the common case). Letters are counted by script; Greek is ignored (math
uses α, β, π in any language), and so are digits, symbols, LaTeX commands (\\boxed, \\frac) and
single-letter variables, which a Chinese chain of thought writes in Latin letters too.

Counting is cheap per character: the only letters that are ASCII are Latin ones, so ASCII
letters are counted on the bytes (after LaTeX commands and single letters are blanked out), and
the non-ASCII code points (a few × or α in most English reasoning) in numpy, each distinct one
classified by script once. For a prompt in Latin script (nearly all of them), an ASCII text
passes without any of that: only letters of other scripts count against a row.
"""

from __future__ import annotations

import re
from functools import lru_cache

from .registry import Verdict, register

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


_ASCII_LETTERS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@lru_cache(maxsize=65536)
def script_of(point: int) -> str | None:
    """The script (of SCRIPTS) a code point is a letter of, or None."""
    char = chr(point)
    return next((name for name, p in _patterns()[0].items() if p.match(char)), None)


def _non_ascii_counts(text: str) -> dict[str, int]:
    """Letters per script among the non-ASCII characters of `text`."""
    import numpy as np

    counts = dict.fromkeys(SCRIPTS, 0)
    if text.isascii():
        return counts
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    values, freq = np.unique(points[points >= 0x80], return_counts=True)
    for point, count in zip(values.tolist(), freq.tolist()):
        script = script_of(point)
        if script is not None:
            counts[script] += count
    return counts


def script_counts(text: str) -> dict[str, int]:
    """Letters per script, LaTeX commands and single-letter words left out (they are ASCII:
    the non-ASCII letters are the same before and after)."""
    text = _NOT_LANGUAGE.sub(" ", text)
    data = text.encode("utf-8", "surrogatepass")  # a non-ASCII character's bytes are never ASCII letters
    counts = _non_ascii_counts(text)
    counts["latin"] += len(data) - len(data.translate(None, _ASCII_LETTERS))
    return counts


@lru_cache(maxsize=4096)  # a problem comes with n samples
def dominant_script(text: str) -> str | None:
    counts = script_counts(text)
    name, count = max(counts.items(), key=lambda kv: kv[1])
    return name if count else None


def foreign_share(text: str, script: str) -> tuple[float, int]:
    """Share of the letters of `text` not in `script`, and how many letters there are."""
    counts = script_counts(text)
    total = sum(counts.values())
    return ((total - counts[script]) / total if total else 0.0), total


def has_foreign_letters(text: str) -> bool:
    """Whether `text` holds any letter of a script other than Latin."""
    return any(count for name, count in _non_ascii_counts(text).items() if name != "latin")


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
