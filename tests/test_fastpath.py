"""The math verifier's fast path for plain numbers (verify/numbers.py) never changes a verdict:
wherever it answers, its verdict (kept or the reason, and the answer shown) is math-verify's.

Run over the labelled real model outputs (../shared/data), the hand-labelled rows of
test_labelled.py, and forms chosen to sit on the edges of its rules.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.prompting import split_think
from distill.verify.math import last_boxed, math_verdict
from distill.verify.numbers import quick_verdict

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _compare(pairs):
    """(claimed, differences) over (gold, completion) pairs: math-verify runs only where the fast
    path claims the row (that is where it could differ; elsewhere the row goes to math-verify)."""
    claimed, differences = 0, []
    for gold, completion in pairs:
        _, response, _ = split_think(completion)
        gold = str(gold).strip()
        fast = quick_verdict(gold, response, last_boxed(response))
        if fast is None:
            continue
        claimed += 1
        slow = math_verdict(gold, response, fast=False)
        if (fast.ok, fast.reason, fast.extracted) != (slow.ok, slow.reason, slow.extracted):
            differences.append(f"gold {gold!r}, response ending {response[-60:]!r}: fast {fast}, math-verify {slow}")
    return claimed, differences


@pytest.mark.skipif(not (SHARED / "math_cot_100_samples.jsonl").is_file(), reason="needs ../shared/data")
def test_labelled_sets_get_math_verifys_verdicts():
    pairs = [(r["answer"], r["response"]) for r in map(json.loads, open(SHARED / "math_cot_100_samples.jsonl"))]
    math_rows = len(pairs)
    pairs += [(r["answer"], r["solution"]) for r in map(json.loads, open(SHARED / "gsm8k_model_solutions.jsonl"))]
    claimed, differences = _compare(pairs)
    assert not differences, "\n".join(differences[:20])
    # the fast path must do its job too: most of these answers are plain numbers
    assert claimed >= 0.9 * len(pairs), (claimed, len(pairs), math_rows)


def test_hand_labelled_rows_get_math_verifys_verdicts():
    from test_labelled import HOSTILE, ROWS

    rows = [r for r in ROWS if r["domain"] == "math" and r["answer"] and str(r["answer"]).strip()]
    for r in rows:
        if r["label"] == HOSTILE:  # power towers: math-verify may take seconds; never claimed
            _, response, _ = split_think(r["completion"])
            assert quick_verdict(str(r["answer"]).strip(), response, last_boxed(response)) is None
    claimed, differences = _compare([(r["answer"], r["completion"]) for r in rows if r["label"] != HOSTILE])
    assert not differences, "\n".join(differences)
    assert claimed >= 15


GOLDS = ["18", "-7", "0", "3.0", "0.5", "2.50", "1000", "1,000", "1{,}000", "12,000.5", "-1,234", "1000000",
         r"\frac{1}{2}", r"\dfrac{3}{4}", r"-\frac{3}{4}", r"\frac{-3}{4}", "1/3", "-1/2", r"\frac{4}{2}", "0.333333",
         "0.3333333", "123456789012345678901", "999999", "1000001", "12,5", "1,00", "50\\%", "$18$", "18.",
         r"\text{18}", "1 000", "007"]
ANSWERS = ["18", "18.0", "18.00", "-7", "7", "0", "-0", "0.0", "3", "0.50", ".5", r"\frac12", r"\frac{1}{2}", "1/2",
           "1000", "1,000", "1{,}000", "1 000", "12000.5", "12,000.50", "-1234", "1,000,000", "1000000", "999,999",
           "0.333333", "0.33", "0.3333333", "1/3", r"\frac{1}{3}", r"\tfrac{3}{4}", "0.75", "-0.75", "2", "1000002",
           "123456789012345678901", "123456789012345678900", "12,5", "12.5", "50", r"50\%", r"\$18", "18.",
           r"18\text{ cm}", "x = 18", "007", r"\frac{-1}{2}"]
LAST_LINES = ["A: {a}", "So she pays {a}.", "Total: {a} dollars", "Thus {a}", "The result is {a}%", "It is {a} percent",
              "Hence 3 + {a}", "Hence 3 + {a} = 21", "We get = {a}", "The total is ${a}", "The total is $ {a}",
              "So x is {a} and y is 2", "Therefore {a} (rounded)", "Result **{a}**", "Result: {a}.\n\n",
              "The value is $x = {a}$", "Value [{a}] here", "So {a}\u00d72", "The answer is {a}", "Now {a},5",
              # lines that a match from the line before can reach into
              "{a}", "  {a}\n", "+ 1 = {a}", "% more, so {a}", "percent: {a}", "$6$ or so {a}", "and $6$ then {a}",
              "2 + 2 {a}"]
BEFORE = ["She buys 3 + 4 = 7 apples", "Costs are $5$ and", "The rate is 12", "It is $3$ percent", "Step one",
          "She has 16 - 3 = <<16-3=13>>13 eggs", "so 5", "$$x = 2$$ and", "x is 5 +", "It is $3$", "We have [4]"]


def test_edge_forms_get_math_verifys_verdicts():
    pairs = [(g, f"Work.\n\n\\boxed{{{a}}}") for g in GOLDS for a in ANSWERS]
    pairs += [(g, f"{before}\n" + line.format(a=a)) for g in GOLDS[:12] for a in ANSWERS[:24:3]
              for before in BEFORE for line in LAST_LINES]
    pairs += [(g, line.format(a=a)) for g in GOLDS[:6] for a in ANSWERS for line in LAST_LINES[:6]]
    claimed, differences = _compare(pairs)
    assert not differences, "\n".join(differences[:20])
    assert claimed >= len(pairs) // 4, (claimed, len(pairs))
