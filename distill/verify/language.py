"""Language consistency: the chain of thought should be written in the prompt's script.

R1's distillation data dropped reasoning that mixes languages (Chinese inside an English
prompt's thinking is the common case). Letters are counted by script; Greek is ignored (math
uses α, β, π in any language), and so are digits, symbols, LaTeX commands (\\boxed, \\frac) and
single-letter variables, which a Chinese chain of thought writes in Latin letters too.

Counting is cheap per character: the only letters that are ASCII are Latin ones, so ASCII
letters are counted in numpy on the code points (the runs of letters that the blanking of LaTeX
commands and single letters would take are found from their neighbours, without rewriting the
text), and the non-ASCII code points (a few × or α in most English reasoning) each distinct one
classified by script once. For a prompt in Latin script (nearly all of them), an ASCII text
passes without any of that, and another text only needs its distinct non-ASCII characters: only
letters of other scripts count against a row.
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


_ASCII_BYTES = bytes(range(128))


_NAMES = list(SCRIPTS)
_BLOCK = 256
_TABLE: dict = {}  # per code point: 1 + its script's index in SCRIPTS (0: none), and whether `re` calls it a word character


def _classify(points):
    """Script numbers (1 + index in SCRIPTS, 0 for none) and word-character flags of `points`
    (numpy, code points). Looked up in a table of every code point that is filled a block of
    256 at a time the first time a text holds one of them, by the very regexes that define
    the scripts (the whole table would take 0.1 s to fill; most texts meet a few blocks)."""
    import numpy as np

    if not _TABLE:
        _TABLE.update(ids=np.zeros(0x110000, dtype=np.uint8), word=np.zeros(0x110000, dtype=bool),
                      filled=np.zeros(0x110000 // _BLOCK, dtype=bool))
    ids, word, filled = _TABLE["ids"], _TABLE["word"], _TABLE["filled"]
    blocks = np.unique(points // _BLOCK)
    for block in blocks[~filled[blocks]].tolist():
        first = block * _BLOCK
        chars = "".join(map(chr, range(first, first + _BLOCK)))
        for number, pattern in reversed(list(enumerate(_run_patterns(), 1))):  # the first script named wins
            for run in pattern.finditer(chars):
                ids[first + run.start() : first + run.end()] = number
        for run in re.finditer(r"\w+", chars):
            word[first + run.start() : first + run.end()] = True
        filled[block] = True
    return ids[points], word[points]


@lru_cache(maxsize=1)
def _run_patterns():
    import regex

    return [regex.compile(f"(?:{p})+") for p in SCRIPTS.values()]


def _code_points(text: str):
    import numpy as np

    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _non_ascii_numbers(data: bytes):
    """The script numbers of the non-ASCII characters of UTF-8 `data`: one C pass drops its
    ASCII bytes (a non-ASCII character's bytes are never ASCII), the rest is looked up."""
    return _classify(_code_points(data.translate(None, _ASCII_BYTES).decode("utf-8", "surrogatepass")))[0]


def _chars_from(at, leads):
    """The code points of the UTF-8 characters whose first bytes are at `leads` of `at` (at
    most U+10FFFF: a position that is no first byte gives some code point, never an error)."""
    import numpy as np

    last = len(at) - 1
    b0, b1, b2, b3 = (at[np.minimum(leads + k, last)].astype(np.int64) for k in range(4))
    points = np.select(
        [b0 < 0x80, b0 < 0xE0, b0 < 0xF0],
        [b0, (b0 & 0x1F) << 6 | (b1 & 0x3F), (b0 & 0x0F) << 12 | (b1 & 0x3F) << 6 | (b2 & 0x3F)],
        (b0 & 0x07) << 18 | (b1 & 0x3F) << 12 | (b2 & 0x3F) << 6 | (b3 & 0x3F))
    return np.minimum(points, 0x10FFFF)


# per byte beside a letter: 0 a non-word ASCII character, 1 an ASCII word character (a digit
# or "_"; never a letter, as runs of letters are maximal), 2 a byte of a non-ASCII character
_BESIDE = bytes(1 if chr(c).isdigit() or c == 0x5F else 0 for c in range(128)) + b"\x02" * 128


def _ascii_letters_kept(data: bytes) -> int:
    """How many ASCII letters `_NOT_LANGUAGE.sub` leaves in the UTF-8 text, counted in numpy on
    its bytes instead of rewriting it (0.7 ms at 32 KB). On the maximal runs of ASCII letters,
    that regex takes exactly: a run right after a backslash (the command alternative is tried
    at the backslash and is greedy, and a backslash is never taken by an earlier match); and a
    run of one letter whose neighbours are both non-word characters to `re` (a longer run has a
    letter beside each of its letters; a text's ends count as non-word). Everything else stays."""
    import numpy as np

    padded = b" " + data + b" "  # beyond either end: a non-word character, as to `\\b`
    at = np.frombuffer(padded, dtype=np.uint8)
    letter = ((at | 0x20) - np.uint8(0x61)) < 26  # below 'a' wraps round; a non-ASCII byte stays >= 0x80
    bounds = np.flatnonzero(letter[1:] != letter[:-1]) + 1
    starts, ends = bounds[0::2], bounds[1::2]
    lengths = ends - starts
    command = at[starts - 1] == 0x5C
    singles = np.flatnonzero((lengths == 1) & ~command)
    starts, ends = starts[singles], ends[singles]
    beside = np.frombuffer(padded.translate(_BESIDE), dtype=np.uint8)
    before, after = beside[starts - 1], beside[ends]
    either = before | after
    blanked = either == 0
    # no ASCII word character beside it but a non-ASCII one (é, 中, ², or × which is no word
    # character): those characters are decoded and looked up, both sides at once (a side that
    # is ASCII is decoded too, and its answer dropped); after the letter its first byte, before
    # it its last one (its first is 1 to 3 bytes back, the one at or above 0xC0)
    wide = np.flatnonzero(either == 2)
    if len(wide):
        lead = starts[wide] - 2
        for back in (3, 4):
            lead = np.where(at[lead] >= 0xC0, lead, starts[wide] - back)
        word = _classify(_chars_from(at, np.concatenate((lead, ends[wide]))))[1]
        sides = np.concatenate((before[wide], after[wide])) == 2
        word = (word & sides).reshape(2, -1)
        blanked[wide] = ~(word[0] | word[1])
    return int(lengths.sum() - lengths[command].sum() - np.count_nonzero(blanked))


def _counts(data: bytes, numbers) -> dict[str, int]:
    import numpy as np

    found = np.bincount(numbers, minlength=len(_NAMES) + 1).tolist()
    counts = dict(zip(_NAMES, found[1:]))
    counts["latin"] += _ascii_letters_kept(data)
    return counts


def script_counts(text: str) -> dict[str, int]:
    """Letters per script, LaTeX commands and single-letter words left out (`_NOT_LANGUAGE`,
    counted without rewriting the text; the non-ASCII letters are the same before and after)."""
    data = text.encode("utf-8", "surrogatepass")
    return _counts(data, _non_ascii_numbers(data))


@lru_cache(maxsize=4096)  # a problem comes with n samples
def dominant_script(text: str) -> str | None:
    counts = script_counts(text)
    name, count = max(counts.items(), key=lambda kv: kv[1])
    return name if count else None


def foreign_share(text: str, script: str) -> tuple[float, int]:
    """Share of the letters of `text` not in `script`, and how many letters there are."""
    return _share(script_counts(text), script)


def _share(counts: dict[str, int], script: str) -> tuple[float, int]:
    total = sum(counts.values())
    return ((total - counts[script]) / total if total else 0.0), total


def has_foreign_letters(text: str) -> bool:
    """Whether `text` holds any letter of a script other than Latin."""
    return not text.isascii() and bool((_non_ascii_numbers(text.encode("utf-8", "surrogatepass")) > 1).any())


@register("language", isolated=True)  # linear, but it reads every letter: in parallel
def check_language(row: dict, options: dict) -> Verdict:
    prompt = dominant_script(row.get("problem") or "")
    if prompt is None:
        return Verdict(True)
    text = f"{row.get('reasoning') or ''}\n{row.get('response') or ''}"
    if prompt == "latin" and text.isascii():
        return Verdict(True)  # only letters of other scripts count against it, and none is ASCII
    data = text.encode("utf-8", "surrogatepass")
    numbers = _non_ascii_numbers(data)
    if prompt == "latin" and not (numbers > 1).any():  # latin is number 1
        return Verdict(True)  # no letter of another script: a share of 0
    foreign, letters = _share(_counts(data, numbers), prompt)
    if letters >= MIN_LETTERS and foreign > options.get("language_threshold", 0.05):
        return Verdict(False, "language_mixing")
    return Verdict(True)
