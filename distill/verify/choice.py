"""Multiple choice (GPQA-style): the option the response chose, by letter or by its text,
against the gold letter (or gold option text)."""

from __future__ import annotations

import re

from .registry import Verdict, register

LETTERS = "ABCDEFGHIJ"
_OPTION_LINE = re.compile(r"^\s*\(?([A-J])[\.\):]\s+(.+?)\s*$", re.M)
_LETTER = re.compile(r"^\(?([A-J])\)?(?:[\.\):]|\s|$)")
_ANOTHER = re.compile(r"^\s*(?:,|/|&|\bor\b|\band\b|\\lor|\\vee)\s*\(?[A-J]\)?(?![A-Za-z])", re.I)
_STATED = re.compile(
    r"(?:answer|choice|option)\s*(?:is|:)?\s*(?:\*\*)?\s*(?:\\text\{)?\(?([A-J])\)?(?![A-Za-z])", re.I
)


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[\s$\\{}]+", " ", text).lower().strip(" .").split())


def options_of(row: dict) -> dict[str, str]:
    """Letter → option text: the row's `choices`, else options written in the question."""
    if row.get("choices"):
        return {LETTERS[i]: str(c) for i, c in enumerate(row["choices"])}
    return {letter: text for letter, text in _OPTION_LINE.findall(row.get("problem") or "")}


def _as_letter(text: str, options: dict[str, str]) -> str | None:
    text = re.sub(r"\\text\{(.*?)\}", r"\1", text.strip())
    m = _LETTER.match(text)
    if m and m.group(1) in (options or LETTERS):
        rest = text[m.end():]
        # "B or C", "A, B": more than one option named is no choice at all
        if _ANOTHER.match(rest):
            return None
        return m.group(1)
    wanted = _norm(text)
    matches = [letter for letter, option in options.items() if _norm(option) == wanted]
    return matches[0] if len(matches) == 1 else None


def chosen(response: str, options: dict[str, str]) -> str | None:
    """The letter a response settles on: its last \\boxed{}, then "the answer is (X)", then a
    closing line that is only a letter or an option's text."""
    from .math import last_boxed

    boxed = last_boxed(response)
    if boxed:
        return _as_letter(boxed, options)
    stated = _STATED.findall(response)
    if stated:
        return stated[-1].upper()
    lines = [line for line in response.strip().splitlines() if line.strip()]
    return _as_letter(lines[-1], options) if lines else None


@register("choice", isolated=True, domains=("science",))
def check_choice(row: dict, options: dict) -> Verdict:
    gold = row.get("answer")
    if gold is None or not str(gold).strip():
        return Verdict(False, "no_gold")
    opts = options_of(row)
    gold_letter = _as_letter(str(gold), opts)
    if gold_letter is None:
        return Verdict(False, "gold_unparsable")
    letter = chosen(row.get("response") or "", opts)
    if letter is None:
        return Verdict(False, "no_answer")
    return Verdict(letter == gold_letter, None if letter == gold_letter else "wrong_answer", letter)
