"""Degenerate repetition: a chain of thought that loops on the same words.

The measure is the share of word n-grams (n = filter.repetition_ngram, 10 by default) that
repeat an earlier one; looping generations score far above reasoning that merely reuses a
formula. Texts shorter than a few n-grams are not judged.

R1 reasoning runs to 100 KB a row, so the words are never made into Python strings: the text's
code points go into numpy, each word (a run between `str.split()`'s whitespace) gets a 64-bit
polynomial hash from prefix sums, each n-gram a hash of its words' hashes, and the distinct
n-grams are counted by sorting (`repeated_share_exact` is the plain definition it equals: a
hash collision, about one chance in 10^10 for a 100 KB row, would count one n-gram as repeated).
"""

from __future__ import annotations

from functools import lru_cache

from .registry import Verdict, register

SHORT = 2000  # characters: below this the plain definition is cheaper
WORD_BASE = 0x100000001B3  # odd: invertible modulo 2**64
GRAM_BASE = 0x9E3779B97F4A7C15


def repeated_share_exact(text: str, n: int) -> float:
    words = text.split()
    if len(words) < 3 * n:
        return 0.0
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams)


@lru_cache(maxsize=1)
def _space_table():
    """Whether each code point up to U+3000 (the last one) is whitespace to `str.split()`."""
    import numpy as np

    table = np.array([chr(c).isspace() for c in range(0x3001)] + [False], dtype=bool)
    return table


_POWERS: dict = {}  # base -> its powers modulo 2**64 so far: grown, never recomputed per row


def _powers(base: int, count: int):
    import numpy as np

    have = _POWERS.get(base)
    if have is None or len(have) < count:
        size = max(count, 1 << 16, 2 * (0 if have is None else len(have)))
        powers = np.full(size, base, dtype=np.uint64)
        powers[0] = 1
        with np.errstate(over="ignore"):
            have = _POWERS[base] = np.cumprod(powers, dtype=np.uint64)  # wraps modulo 2**64, as meant
    return have[:count]


def repeated_share(text: str, n: int) -> float:
    if len(text) < SHORT:  # numpy's fixed cost per call is more than the plain way's work
        return repeated_share_exact(text, n)
    return repeated_share_numpy(text, n)


def repeated_share_numpy(text: str, n: int) -> float:
    import numpy as np

    table = _space_table()
    if text.isascii():  # a byte a character: a quarter of the memory to go through
        points = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
        inside = ~table[:256][points]
    else:
        points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        inside = ~table[np.minimum(points, len(table) - 1)]
    if not len(points):
        return 0.0
    # word boundaries: where inside flips, plus the ends when a word touches them; they
    # alternate start, end, start, …
    bounds = np.flatnonzero(inside[1:] != inside[:-1]) + 1
    if inside[0]:
        bounds = np.concatenate(([0], bounds))
    if inside[-1]:
        bounds = np.concatenate((bounds, [len(points)]))
    starts, ends = bounds[0::2], bounds[1::2]
    if len(starts) < 3 * n:
        return 0.0
    with np.errstate(over="ignore"):
        powers = _powers(WORD_BASE, len(points) + 1)
        inverse = _powers(pow(WORD_BASE, -1, 1 << 64), len(points) + 1)
        prefix = np.zeros(len(points) + 1, dtype=np.uint64)
        np.cumsum(np.multiply(points, powers[:-1], dtype=np.uint64), dtype=np.uint64, out=prefix[1:])
        # a word's hash, the same wherever it stands: its span of the prefix sums, shifted back
        words = (prefix[ends] - prefix[starts]) * inverse[starts]
        count = len(words) - n + 1
        grams = words[:count].copy()
        for j in range(1, n):
            grams *= np.uint64(GRAM_BASE)
            grams += words[j : j + count]
    grams.sort()
    distinct = 1 + int(np.count_nonzero(grams[1:] != grams[:-1]))
    return 1.0 - distinct / count


@register("repetition", isolated=True)  # reads every word: in parallel
def check_repetition(row: dict, options: dict) -> Verdict:
    text = f"{row.get('reasoning') or ''}\n{row.get('response') or ''}"
    if repeated_share(text, options.get("repetition_ngram", 10)) > options.get("repetition_threshold", 0.2):
        return Verdict(False, "repetition")
    return Verdict(True)
