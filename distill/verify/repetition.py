"""Degenerate repetition: a chain of thought that loops on the same words.

The measure is the share of word n-grams (n = filter.repetition_ngram, 10 by default) that
repeat an earlier one; looping generations score far above reasoning that merely reuses a
formula. Texts shorter than a few n-grams are not judged.
"""

from __future__ import annotations

from . import Verdict, register


def repeated_share(text: str, n: int) -> float:
    words = text.split()
    if len(words) < 3 * n:
        return 0.0
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams)


@register("repetition", isolated=True)  # reads every word: in parallel
def check_repetition(row: dict, options: dict) -> Verdict:
    text = f"{row.get('reasoning') or ''}\n{row.get('response') or ''}"
    if repeated_share(text, options.get("repetition_ngram", 10)) > options.get("repetition_threshold", 0.2):
        return Verdict(False, "repetition")
    return Verdict(True)
