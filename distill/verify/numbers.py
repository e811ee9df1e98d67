"""An exact fast path for the math verifier: gold and answer both plain numbers.

Most answers to word problems are a number, and math-verify spends almost all of its time on
them parsing LaTeX into sympy (about 0.3 ms a row) to compare two numbers. `quick_verdict`
decides such rows without sympy and returns None for everything else, which then goes to
math-verify as before. It may never give another verdict than math-verify would; the rules
below follow what math-verify 0.9 does (tests/test_fastpath.py runs both on the labelled sets):

- The numbers it reads: integers, decimals, `1,000` / `1{,}000` thousands groups, `\\frac{a}{b}`
  (`\\dfrac`, `\\tfrac`) and `a/b` with whole a and b, an optional minus sign. Anything else (a
  percent sign, units, `\\text{}`, spaces inside, `1,00`, `12,5`, a trailing `.`) is left to
  math-verify, which reads some of those differently (`12,5` is the set {5, 12} there).
- The answer is the last `\\boxed{}` when there is one, as in `math.py`. Without a box it is what
  math-verify's own extraction would pick: when the response has no `\\boxed`, no word "answer"
  (which would bring in math-verify's anchored patterns) and no display math (`$$`, `\\[`), its
  lowest-priority patterns decide and the rightmost match wins. Those patterns are run here, from
  math-verify itself, but only over the last line, when no match can reach into it from the
  lines before; the row is claimed only when the winning match there is a plain number.
- Equal when the two values are exactly equal; unequal when both are whole numbers and differ
  (math-verify compares integers exactly), or when they differ by more than 1e-5 relative
  (math-verify rounds floats to 6 decimals or compares to 15 digits). Values in between (a
  rounded decimal against a fraction) go to math-verify.
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import lru_cache

from .registry import Verdict

_INTEGER = r"(?:0|[1-9]\d{0,2}(?:(?:,|\{,\})\d{3})+|[1-9]\d*)"
_DECIMAL = re.compile(rf"(-?){_INTEGER}(\.\d+)?")
_WHOLE = r"(?:0|[1-9]\d*)"
_FRACTION = re.compile(rf"(-?)\\[dt]?frac\{{(-?{_WHOLE})\}}\{{([1-9]\d*)\}}|(-?{_WHOLE})/([1-9]\d*)")
MAX_CHARS = 32  # longer numbers are rare and not worth a proof of how sympy treats them
MAX_SIZE = 10**9  # beyond this, non-integers go to math-verify (float precision)


@lru_cache(maxsize=65536)  # a gold answer comes with every sample of its problem
def plain_number(text: str) -> tuple[Fraction, bool] | None:
    """(value, whole) for a number as a gold answer or a box holds it; None if not a plain one."""
    text = text.strip()
    if not text or len(text) > MAX_CHARS:
        return None
    if _DECIMAL.fullmatch(text):
        digits = text.replace("{,}", "").replace(",", "")
        return Fraction(digits), "." not in digits
    m = _FRACTION.fullmatch(text)
    if m:
        sign, top, bottom = (m.group(1), m.group(2), m.group(3)) if m.group(2) is not None else ("", m.group(4), m.group(5))
        value = Fraction(int(top), int(bottom))
        return (-value if sign else value), False
    return None


def same(a: tuple[Fraction, bool], b: tuple[Fraction, bool]) -> bool | None:
    """Whether math-verify calls the two numbers equal; None where only it can say."""
    (x, x_whole), (y, y_whole) = a, b
    if x == y:
        return True
    if x_whole and y_whole:
        return False
    size = max(abs(x), abs(y), 1)
    if size < MAX_SIZE and abs(x - y) > Fraction(1, 100_000) * size:
        return False
    return None


# ---------------------------------------------------------------- answers without a box

_ANSWER_WORD = re.compile(r"(?i:answer)")  # math-verify's anchor, with its case folding
_PERCENT_WORDS = ("%", "percent", "Percent", "pct", "Pct")  # math-verify's, after \\s*


@lru_cache(maxsize=1)
def _patterns():
    """math-verify's lowest-priority extraction patterns (LaTeX environments, expressions,
    numbers): the ones that decide when no box and no "answer" anchor is present."""
    from math_verify.parser import ExprExtractionConfig, LatexExtractionConfig, lazy_expr_regex, lazy_latex_regex

    latex = [p for p, priority in lazy_latex_regex(LatexExtractionConfig(boxed_match_priority=0)) if priority == 300]
    expr = [p for p, priority in lazy_expr_regex(ExprExtractionConfig()) if priority == 300]
    number = [p for p in expr if "integer3" in p.groupindex and "expr" not in p.groupindex]
    if len(latex) != 1 or len(expr) != 2 or len(number) != 1:  # another math-verify: no fast path
        return None
    return latex + expr, number[0]


def _last_line(text: str) -> int | None:
    """Where the last line starts (its line break; 0 for a single line), when no match of those
    patterns can reach into it from the lines before; else None. A match crosses a line break
    only as an expression or number (digits, operators, spaces), a percent word after a number
    or environment, or display math: a last line that starts with a letter, no percent word, and
    holds no `$`, backslash or bracket (so no environment, chained or not) is out of their reach."""
    at = text.rstrip().rfind("\n")
    if at < 0:
        return 0
    line = text[at + 1 :]
    if any(c in line for c in "$\\[]"):
        return None
    first = line.lstrip()[:1]
    if not (first.isascii() and first.isalpha()) or line.lstrip().startswith(_PERCENT_WORDS):
        return None
    return at


def unboxed_number(response: str) -> tuple[str, tuple[Fraction, bool]] | None:
    """The number math-verify would extract from a response without a box, with the text it
    shows for it; None when that is not certain to be a plain number."""
    if "\\boxed" in response or "\\fbox" in response or "$$" in response or "\\[" in response:
        return None
    if _ANSWER_WORD.search(response):
        return None
    found = _patterns()
    if found is None:
        return None
    patterns, number_pattern = found
    start = _last_line(response)
    if start is None:
        return None
    matches = [(m.end(), -m.start(), p is number_pattern, m) for p in patterns for m in p.finditer(response, start)]
    if not matches:
        return None  # the winner, if any, lies before the tail
    best = max(matches, key=lambda t: (t[0], t[1]))
    if not best[2] or sum((t[0], t[1]) == (best[0], best[1]) for t in matches) > 1:
        return None  # an expression or LaTeX wins (or ties): math-verify parses it
    groups = best[3].groupdict()
    if groups.get("percent"):
        return None
    # math-verify's reading of the number: separators out, leading zeros off, decimal comma
    integer = next((v for k, v in groups.items() if k.startswith("integer") and v), "")
    decimal = next((v for k, v in groups.items() if k.startswith("decimal") and v), "")
    integer = integer.replace(",", "").replace(" ", "").lstrip("0") or "0"
    shown = integer + decimal.replace(",", ".")
    if len(shown) > MAX_CHARS:
        return None
    return shown, (Fraction(shown), "." not in shown)


def quick_verdict(gold: str, response: str, boxed: str | None) -> Verdict | None:
    """The math verdict for a plain-number gold and answer, exactly as math-verify would give
    it; None when the row needs math-verify. `boxed` is the last box's content (or None)."""
    expected = plain_number(gold)
    if expected is None:
        return None
    if boxed:
        shown, answer = boxed, plain_number(boxed)
        if answer is None:
            return None
    else:
        if boxed is not None:  # an empty box: math-verify reads on past it
            return None
        found = unboxed_number(response)
        if found is None:
            return None
        shown, answer = found
    equal = same(expected, answer)
    if equal is None:
        return None
    return Verdict(True, None, shown) if equal else Verdict(False, "wrong_answer", shown)
