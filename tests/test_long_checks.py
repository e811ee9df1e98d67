"""The language and repetition checks on real model outputs equal their plain definitions.

Both checks are computed in numpy without rewriting or splitting the text (see their modules);
here the numbers they judge by (letters per script, share of repeated word n-grams) and so
their verdicts are compared with the plain definitions (one regex pass per script after the
LaTeX blanking; a set of word tuples) on the real outputs of ../shared/data: every MATH response
and GSM8K solution as it is, and R1-length rows made of concatenated MATH responses, with the
Unicode symbols and the Chinese sentence that bench/filter_long.py puts in.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.verify.language import _NOT_LANGUAGE, _patterns, check_language, script_counts
from distill.verify.repetition import check_repetition, repeated_share, repeated_share_exact

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
OPTIONS = {"language_threshold": 0.05, "repetition_ngram": 10, "repetition_threshold": 0.2}
SYMBOLS = {"\\times": "×", "\\cdot": "·", "\\leq": "≤", "\\geq": "≥", "\\pi": "π"}
CHINESE = "我们先把每一部分分别计算出来，然后再把结果加在一起，这样就可以得到最后的答案。"


def _rows():
    math = [json.loads(line) for line in open(SHARED / "math_cot_100_samples.jsonl")]
    gsm = [json.loads(line) for line in open(SHARED / "gsm8k_model_solutions.jsonl")]
    rows = [{"problem": r["problem"], "reasoning": "", "response": r["response"]} for r in math]
    rows += [{"problem": r["question"], "reasoning": "", "response": r["solution"]} for r in gsm]
    for i, chars in enumerate([8_000] * 10 + [32_000] * 10 + [100_000] * 4):
        parts, j = [], i * 37
        while sum(map(len, parts)) < chars:
            parts.append(math[j % len(math)]["response"])
            j += 101
        reasoning = "\n\n".join(parts)
        if i % 2:
            for command, symbol in SYMBOLS.items():
                reasoning = reasoning.replace(command, symbol)
        if i % 3 == 0:  # Chinese in the middle, alone or repeated until it is more than 5% of the letters
            middle = len(reasoning) // 2
            reasoning = reasoning[:middle] + CHINESE * (1 if i % 2 else 300) + reasoning[middle:]
        if i % 4 == 1:  # a loop at the end
            reasoning += " " + " ".join(reasoning.split()[-200:]) * 8
        rows.append({"problem": math[i]["problem"], "reasoning": reasoning, "response": parts[-1]})
    return rows


def _plain_language(row):
    """check_language's verdict with letters counted by one regex pass per script."""
    patterns, _ = _patterns()

    def counts(text):
        text = _NOT_LANGUAGE.sub(" ", text)
        return {name: len(p.findall(text)) for name, p in patterns.items()}

    prompt = counts(row["problem"])
    script = max(prompt, key=prompt.get)
    if not prompt[script]:
        return True
    letters = counts(f"{row['reasoning']}\n{row['response']}")
    total = sum(letters.values())
    return not (total >= 20 and (total - letters[script]) / total > OPTIONS["language_threshold"])


@pytest.mark.skipif(not (SHARED / "math_cot_100_samples.jsonl").is_file(), reason="needs ../shared/data")
def test_checks_on_real_outputs_equal_the_plain_definitions():
    rows = _rows()
    rejected = {"language": 0, "repetition": 0}
    for row in rows:
        text = f"{row['reasoning']}\n{row['response']}"
        patterns, _ = _patterns()
        blanked = _NOT_LANGUAGE.sub(" ", text)
        assert script_counts(text) == {name: len(p.findall(blanked)) for name, p in patterns.items()}
        assert repeated_share(text, 10) == repeated_share_exact(text, 10)
        language = check_language(row, OPTIONS)
        assert language.ok == _plain_language(row)
        repetition = check_repetition(row, OPTIONS)
        assert repetition.ok == (repeated_share_exact(text, 10) <= OPTIONS["repetition_threshold"])
        rejected["language"] += not language.ok
        rejected["repetition"] += not repetition.ok
    # both checks meet rows they reject, not only rows they pass
    assert len(rows) == 6_100 and rejected["language"] >= 4 and rejected["repetition"] >= 6, rejected
