"""Degenerate repetition: a chain of thought that loops on the same words.

The measure is the share of word n-grams (n = filter.repetition_ngram, 10 by default) that
repeat an earlier one; looping generations score far above reasoning that merely reuses a
formula. Texts shorter than a few n-grams are not judged.

R1 reasoning runs to 100 KB a row, so the words are never made into Python strings: the text's
bytes (ASCII) or UTF-16 code units go into numpy and the words (runs between `str.split()`'s
whitespace) are found by one lookup and one comparison pass. A long text is first judged on
its words' signatures (length and first character): n-grams of signatures repeat wherever
n-grams of words do, so a share of repeated signature n-grams at or below the threshold settles
it for a few passes over the words. Otherwise each word gets a 64-bit polynomial hash from
prefix sums over its characters, each n-gram the same kind of hash over its words' values, and
the distinct n-grams are counted by sorting (`repeated_share_exact` is the plain definition it
equals: a hash collision, about one chance in 10^10 for a 100 KB row, would count one n-gram
as repeated).
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


# per ASCII byte: 1 inside a word, 0 whitespace to `str.split()` (for `bytes.translate`)
_INSIDE = bytes(0 if chr(c).isspace() else 1 for c in range(128)) + b"\x01" * 128


@lru_cache(maxsize=1)
def _inside_units():
    """Per UTF-16 code unit: inside a word (not whitespace to `str.split()`). Whitespace is all
    in the Basic Multilingual Plane and no surrogate, so a character's units are all inside or
    it is one unit of whitespace."""
    import numpy as np

    return np.array([not chr(c).isspace() for c in range(0x10000)], dtype=bool)


_POWERS: dict = {}  # base -> its powers modulo 2**64 so far: grown, never recomputed per row


def _powers(base: int, count: int):
    import numpy as np

    have = _POWERS.get(base)
    if have is None or len(have) < count:
        size = max(count, 1 << 16, 2 * (0 if have is None else len(have)))
        powers = np.full(size, base, dtype=np.uint64)
        powers[0] = 1
        have = _POWERS[base] = np.cumprod(powers, dtype=np.uint64)  # wraps modulo 2**64, as meant (no warning on arrays)
    return have[:count]


def repeated_share(text: str, n: int) -> float:
    if len(text) < SHORT:  # numpy's fixed cost per call is more than the plain way's work
        return repeated_share_exact(text, n)
    return repeated_share_numpy(text, n)


def _words(text: str):
    """The text as numbers (bytes of ASCII text, UTF-16 code units of any other: a word's
    numbers are equal iff the words are) and where its words (`str.split()`'s) start and end
    in them."""
    import numpy as np

    padded = f" {text} "  # a space at either end: every word has two boundaries, found alike
    if padded.isascii():  # a byte a character, classified by one C pass
        data = padded.encode("ascii")
        values = np.frombuffer(data, dtype=np.uint8)
        inside = np.frombuffer(data.translate(_INSIDE), dtype=bool)
    else:  # UTF-16 code units (half the memory of code points), classified by one lookup
        values = np.frombuffer(padded.encode("utf-16-le", "surrogatepass"), dtype=np.uint16)
        inside = np.take(_inside_units(), values)
    # where inside flips between padded[k] and padded[k + 1]: k is where a word starts or ends
    # in the text itself; they alternate start, end, start, …
    bounds = np.flatnonzero(inside[1:] != inside[:-1])
    return values[1:-1], bounds[0::2], bounds[1::2]


def _share(words, n: int) -> float:
    """The share of n-grams of `words` (one integer a word) that repeat an earlier one."""
    import numpy as np

    prefix, inverse = _prefix_hashes(words, GRAM_BASE)
    count = len(words) - n + 1
    # each n-gram hashed like a word over its words' hashes: a few passes whatever n is
    grams = (prefix[n:] - prefix[:count]) * inverse[:count]
    grams.sort()
    distinct = 1 + int(np.count_nonzero(grams[1:] != grams[:-1]))
    return 1.0 - distinct / count


def _word_hashes(values, starts, ends):
    import numpy as np

    prefix, inverse = _prefix_hashes(values, WORD_BASE)
    # a word's hash, the same wherever it stands: its span of the prefix sums, shifted back;
    # plus its length, or a trailing NUL (value 0) would add nothing ("a" and "a\0")
    hashes = (prefix[ends] - prefix[starts]) * inverse[starts]
    hashes += np.subtract(ends, starts).view(np.uint64) * np.uint64(GRAM_BASE)
    return hashes


def _word_signatures(values, starts, ends):
    """Each word's length and first number (byte or code unit) in one integer: a function of
    the word, so n-grams of signatures repeat at least wherever n-grams of words do; it costs a
    few passes over the words instead of the hashes' passes over every character."""
    import numpy as np

    signatures = np.subtract(ends, starts).view(np.uint64)
    signatures <<= np.uint64(16)
    signatures |= values[starts]
    return signatures


def repeated_share_numpy(text: str, n: int) -> float:
    values, starts, ends = _words(text)
    if len(starts) < 3 * n:
        return 0.0
    return _share(_word_hashes(values, starts, ends), n)


def repeats_above(text: str, n: int, threshold: float) -> bool:
    """Whether repeated_share(text, n) > threshold. A long text is first judged on its words'
    signatures: their share of repeated n-grams is never less than the words' own, and in
    reasoning that does not loop it is about the same, so a share at or below the threshold
    settles it; otherwise the words are hashed and counted exactly."""
    if len(text) < SHORT:
        return repeated_share_exact(text, n) > threshold
    values, starts, ends = _words(text)
    if len(starts) < 3 * n:
        return 0.0 > threshold
    if _share(_word_signatures(values, starts, ends), n) <= threshold:
        return False
    return _share(_word_hashes(values, starts, ends), n) > threshold


def _prefix_hashes(values, base: int):
    """Prefix sums of values[i] × base**i modulo 2**64, and the powers base**-i: the span
    values[a:b] hashes to (prefix[b] - prefix[a]) × base**-a, the same wherever it stands."""
    import numpy as np

    prefix = np.zeros(len(values) + 1, dtype=np.uint64)
    np.cumsum(np.multiply(values, _powers(base, len(values)), dtype=np.uint64), dtype=np.uint64, out=prefix[1:])
    return prefix, _powers(_INVERSE[base], len(values))


_INVERSE = {base: pow(base, -1, 1 << 64) for base in (WORD_BASE, GRAM_BASE)}


@register("repetition", isolated=True)  # reads every word: in parallel
def check_repetition(row: dict, options: dict) -> Verdict:
    text = f"{row.get('reasoning') or ''}\n{row.get('response') or ''}"
    if repeats_above(text, options.get("repetition_ngram", 10), options.get("repetition_threshold", 0.2)):
        return Verdict(False, "repetition")
    return Verdict(True)
