"""Over a hundred hand-labelled trace rows through the real verifiers and the killable pool, with
the filter's default settings: every decision must match its label.

Labels are `KEEP` or the reason a row must be rejected (a set where more than one reason is
right, e.g. a power tower may be killed for time or judged wrong, but never kept or hung on).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.config import FilterConfig
from distill.verify.shard import OPTION_KEYS, _verify_shard
from distill.verify.pool import VerifyPool

KEEP = "kept"
BOXED = "Please reason step by step, and put your final answer within \\boxed{}."


def L(label, answer, completion, domain="math", problem=None, finish="stop", tests=None, choices=None, tokens=None):
    return {
        "label": label, "id": f"row{len(ROWS)}", "sample_idx": 0, "answer": answer, "completion": completion,
        "domain": domain, "problem": problem or f"Compute the requested quantity. {BOXED}",
        "finish_reason": finish, "tests": json.dumps(tests) if tests else None, "choices": choices,
        "completion_tokens": tokens, "source": "labelled",
    }


ROWS: list[dict] = []
add = ROWS.append
T = "<think>\nLet me work through this carefully, checking each step as I go.\n</think>\n\n"

# ---- math: equivalent forms are equal (41)
for gold, shown in [
    ("72", r"\boxed{72}"), ("0.5", r"\boxed{\frac{1}{2}}"), (r"\frac{1}{2}", r"\boxed{0.5}"),
    (r"\frac{1}{2}", r"\boxed{\dfrac12}"), ("1/2", r"\boxed{\tfrac{1}{2}}"), (r"-\frac{3}{4}", r"\boxed{-0.75}"),
    (r"2\sqrt{2}", r"\boxed{\sqrt{8}}"), (r"\sqrt{12}", r"\boxed{2\sqrt{3}}"), (r"\frac{\sqrt{2}}{2}", r"\boxed{\frac{1}{\sqrt{2}}}"),
    ("(0,1]", r"\boxed{(0, 1]}"), ("[-2, 5)", r"\boxed{[-2,5)}"), (r"(-\infty, 3)", r"\boxed{(-\infty,3)}"),
    (r"\{1,2\}", r"\boxed{\{2,1\}}"), ("1,2", r"\boxed{2, 1}"), ("(1,2)", r"\boxed{(1, 2)}"), ("(3, -1, 2)", r"\boxed{(3,-1,2)}"),
    ("5", r"\boxed{\text{5}}"), (r"10\text{ cm}", r"\boxed{10}"), ("10", r"\boxed{10 \text{ cm}}"),
    (r"30^\circ", r"\boxed{30}"), ("30", r"\boxed{30^\circ}"), (r"50\%", r"\boxed{50}"), ("50", r"\boxed{50\%}"),
    ("1000", r"\boxed{1,000}"), ("1000000", r"\boxed{1{,}000{,}000}"), ("12,000", r"\boxed{12000}"),
    (r"\$18", r"\boxed{18}"), ("18", r"\boxed{\$18}"), ("x=3", r"\boxed{3}"), ("3", r"\boxed{x=3}"),
    (r"\frac{\pi}{2}", r"\boxed{\frac{\pi}{2}}"), (r"\infty", r"\boxed{\infty}"), ("x^2+2x+1", r"\boxed{(x+1)^2}"),
    (r"\text{(B)}", r"\boxed{B}"), ("0.25", r"\boxed{\frac{1}{4}}"), ("3.0", r"\boxed{3}"), ("-7", r"\boxed{-7}"),
]:
    add(L(KEEP, gold, T + f"So the result is {shown}."))
# the answer is read from the last box after </think>, else "final answer is", else the final number
add(L(KEEP, "18", T + r"First \boxed{16}, then correcting myself: \boxed{18}."))
add(L(KEEP, "18", T + "So the final answer is 18."))
add(L(KEEP, "3", T + "The final answer is $3$. I hope it is correct."))
add(L(KEEP, "18", T + "She makes 9 * 2 = 18 dollars.\n#### 18"))
add(L(KEEP, "26", "13 * 2 = 26\nA: 26"))  # GSM8K-style solution without a think block
add(L(KEEP, "6", T + "The answer: 6"))
add(L("wrong_answer", "5", r"<think>\boxed{5} is tempting but wrong</think>" + "\n\nSo the answer is \\boxed{4}."))

# ---- math: wrong answers (13)
for gold, shown in [
    ("72", r"\boxed{73}"), ("1/3", r"\boxed{0.33}"), ("0.333", r"\boxed{1/3}"), (r"\frac{1}{2}", r"\boxed{2}"),
    (r"2\sqrt{2}", r"\boxed{\sqrt{2}}"), ("(0,1]", r"\boxed{[0,1]}"), (r"\{1,2\}", r"\boxed{\{1,3\}}"),
    ("(1,2)", r"\boxed{(2,1)}"), ("30", r"\boxed{60^\circ}"), ("1000", r"\boxed{100}"), ("-7", r"\boxed{7}"),
    (r"\frac{\pi}{2}", r"\boxed{\pi}"), ("x^2+2x+1", r"\boxed{(x-1)^2}"),
]:
    add(L("wrong_answer", gold, T + f"So the result is {shown}."))
add(L("no_answer", "12", T + "I could not finish this one."))
add(L("no_gold", None, T + r"\boxed{3}"))
add(L("no_gold", "  ", T + r"\boxed{3}"))

# ---- pathological answers: rejected within the time limit, the run goes on (6)
HOSTILE = {"wrong_answer", "timeout", "no_answer"}
add(L(HOSTILE, "5", T + r"\boxed{9^{9^{9^{9}}}}"))
add(L(HOSTILE, "5", T + r"\boxed{10^{10^{10^{10^{10}}}}}"))
add(L(HOSTILE, "5", T + r"\boxed{100000!}"))
add(L(HOSTILE, "5", T + r"\boxed{(10^{6})!!}"))
add(L(HOSTILE, "3000", T + "\\boxed{" + "+".join(["1"] * 3000) + "}"))  # not a final answer, too long to parse
add(L(HOSTILE, "5", T + "\\boxed{" + "{" * 500 + "5" + "}" * 500 + "}"))

# ---- format faults (9)
add(L("truncated", "72", T + r"\boxed{72}", finish="length"))
add(L("truncated", "72", "<think>\nstill going and going", finish="length"))
add(L("think_unclosed", "72", "<think>\nI think it is \\boxed{72}"))
add(L("empty_response", "72", "<think>\nthe answer is 72\n</think>\n\n"))
add(L("empty_response", "72", "<think>\nthe answer is 72\n</think>   \n "))
add(L("empty_response", "72", ""))
add(L(KEEP, "72", "Reasoning without tags.\n\\boxed{72}"))  # require_think is off by default
add(L(KEEP, "72", "forced-prefix style</think>\n\n\\boxed{72}"))  # "<think>\n" was part of the prompt
add(L("empty_response", "hello", "<think>\nchat\n</think>\n\n", domain="general"))

# ---- language consistency (8)
ZH = "首先我们计算每天剩下的鸡蛋数量然后乘以价格得到每天的收入所以答案是十八美元"
add(L("language_mixing", "18", f"<think>\nJanet has 16 eggs. {ZH} So 9 eggs are sold.\n</think>\n\n\\boxed{{18}}"))
add(L("language_mixing", "18", f"<think>\nLet me think. {ZH * 3}\n</think>\n\n\\boxed{{18}}"))
add(L("language_mixing", "18", "<think>\nСначала считаем яйца, потом умножаем на цену, получаем восемнадцать.\n</think>\n\n\\boxed{18}"))
add(L(KEEP, "18", f"<think>\n{ZH}\n</think>\n\n\\boxed{{18}}", problem="珍妮的鸭子每天下16个蛋，她每天能赚多少钱？"))
add(L("language_mixing", "18", "<think>\nJanet has 16 eggs, she eats 3 and bakes with 4, so 9 are left to sell at two dollars.\n</think>\n\n\\boxed{18}",
      problem="珍妮的鸭子每天下16个蛋，她每天能赚多少钱？"))
add(L(KEEP, "18", "<think>\nLet α = 16 − 3 − 4 = 9 eggs; with π irrelevant here, 9 × 2 = 18 dollars in total.\n</think>\n\n\\boxed{18}"))
add(L(KEEP, "18", "<think>\nShe sells the rest (残り) at two dollars each, nine eggs, eighteen dollars total today.\n</think>\n\n\\boxed{18}"))
add(L(KEEP, "2", "<think>\n1+1\n</think>\n\n\\boxed{2}"))  # too few letters to judge

# ---- degenerate repetition (5)
LOOP = "Wait, let me recompute the number of eggs left after breakfast and baking. " * 30
add(L("repetition", "18", f"<think>\n{LOOP}\n</think>\n\n\\boxed{{18}}"))
add(L("repetition", "18", f"<think>\nStart. {'so the answer is eighteen and ' * 80}\n</think>\n\n\\boxed{{18}}"))
add(L("repetition", "18", f"<think>\nfine\n</think>\n\n{'The total is eighteen dollars, as computed above. ' * 40}\\boxed{{18}}"))
add(L(KEEP, "18", "<think>\n" + " ".join(f"Step {i}: add {i} eggs to the basket of size {i * 3}." for i in range(40)) + "\n</think>\n\n\\boxed{18}"))
add(L(KEEP, "18", "<think>\nLet x = 9. Then 2x = 18. Check: x = 9 and 2x = 18, so 2x = 18 holds.\n</think>\n\n\\boxed{18}"))

# ---- multiple choice, GPQA-style (14)
Q = "Which particle mediates the electromagnetic force?\n\nA. gluon\nB. photon\nC. W boson\nD. graviton"
for label, answer, response in [
    (KEEP, "B", r"\boxed{B}"), (KEEP, "B", r"The answer is \boxed{(B)}"), (KEEP, "B", "The answer is (B)."),
    (KEEP, "B", "Answer: B"), (KEEP, "B", "**Answer: B**"), (KEEP, "B", "After all that:\nB"),
    (KEEP, "B", r"\boxed{\text{photon}}"), (KEEP, "photon", r"\boxed{B}"),
    ("wrong_answer", "B", r"\boxed{A}"), ("wrong_answer", "B", "The answer is (D)."),
    ("wrong_answer", "B", r"\boxed{\text{gluon}}"), ("no_answer", "B", "It is one of the bosons."),
    ("gold_unparsable", "E", r"\boxed{B}"),
]:
    add(L(label, answer, T + response, domain="science", problem=Q))
add(L(KEEP, "C", T + r"\boxed{C}", domain="science", problem="Pick one.", choices=["red", "green", "blue", "white"]))

# ---- code (8)
STDIO = {"inputs": ["1 2\n", "10 -3\n"], "outputs": ["3\n", "7\n"]}
ASSERTS = {"asserts": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]}
add(L(KEEP, None, T + "```python\na, b = map(int, input().split())\nprint(a + b)\n```", domain="code", tests=STDIO))
add(L("wrong_output", None, T + "```python\na, b = map(int, input().split())\nprint(a - b)\n```", domain="code", tests=STDIO))
add(L(KEEP, None, T + "```python\ndef add(a, b):\n    return a + b\n```", domain="code", tests=ASSERTS))
add(L("tests_failed", None, T + "```python\ndef add(a, b):\n    return a * b\n```", domain="code", tests=ASSERTS))
add(L("no_code", None, T + "def add(a, b): return a + b", domain="code", tests=ASSERTS))
add(L("no_tests", None, T + "```python\nprint(1)\n```", domain="code"))
add(L("code_timeout", None, T + "```python\nwhile True:\n    pass\n```", domain="code", tests=ASSERTS))
add(L("tests_failed", None, T + "```python\nimport socket\nsocket.create_connection(('1.1.1.1', 80))\n```",
      domain="code", tests=ASSERTS))

# ---- general chat (non-reasoning: format checks only) (3)
add(L(KEEP, None, "Paris is the capital of France.", domain="general", problem="What is the capital of France?"))
add(L(KEEP, None, "<think>\nsimple\n</think>\n\nParis.", domain="general", problem="What is the capital of France?"))
add(L("truncated", None, "Paris is the capital of", domain="general", finish="length", problem="Capital of France?"))


def _decide(rows, **changes):
    cfg = FilterConfig(timeout=3.0, code_timeout=2.0, **changes)
    options = {k: getattr(cfg, k) for k in OPTION_KEYS}
    with VerifyPool(workers=2, timeout=cfg.timeout) as pool:
        return _verify_shard([dict(r) for r in rows], cfg.verifiers, options, pool)


def test_there_are_over_a_hundred_labelled_rows():
    assert len(ROWS) >= 100


def test_every_decision_matches_its_label():
    verdicts = _decide(ROWS)
    wrong = []
    for row, verdict in zip(ROWS, verdicts):
        label = row["label"]
        got = KEEP if verdict.ok else verdict.reason
        expected = label if isinstance(label, set) else {label}
        if got not in expected:
            wrong.append(f"{row['id']}: expected {sorted(expected)}, got {got} ({row['completion'][-60:]!r})")
    assert not wrong, "\n".join(wrong)


LENGTHS = [L(KEEP, "4", T + r"\boxed{4}", tokens=t) for t in (5, 50, 500, 5000)]


@pytest.mark.parametrize("bounds,expected", [
    ({}, [KEEP] * 4),
    ({"min_tokens": 10}, ["too_short", KEEP, KEEP, KEEP]),
    ({"max_tokens": 1000}, [KEEP, KEEP, KEEP, "too_long"]),
    ({"min_tokens": 10, "max_tokens": 100}, ["too_short", KEEP, "too_long", "too_long"]),
])
def test_length_bounds(bounds, expected):
    verdicts = _decide(LENGTHS, **bounds)
    assert [KEEP if v.ok else v.reason for v in verdicts] == expected


def test_require_think_spares_general_rows():
    rows = [L(KEEP, None, "Paris.", domain="general"), L("no_think", "4", r"\boxed{4}")]
    verdicts = _decide(rows, require_think=True)
    assert [KEEP if v.ok else v.reason for v in verdicts] == [KEEP, "no_think"]


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "math_cot_100_samples.jsonl").is_file(), reason="needs ../shared/data")
def test_real_labelled_model_outputs_agree_with_their_graders(tmp_path):
    """800 MATH responses and 5,276 GSM8K solutions with published correctness labels: the
    filter must agree with them at least as often as a plain math-verify loop does (799, 5,276)."""
    from helpers import write_traces

    from distill.filter.stage import run_filter
    from distill.recipes import load_recipe

    rows, labels = [], {}
    for line in (SHARED / "math_cot_100_samples.jsonl").read_text().splitlines():
        r = json.loads(line)
        rows.append({"id": r["id"], "sample_idx": int(r["sample_idx"]), "problem": r["problem"], "answer": r["answer"],
                     "completion": r["response"], "source": "math_cot", "domain": "math", "finish_reason": "stop"})
        labels[(r["id"], int(r["sample_idx"]))] = str(r["grader_correct"]) == "True"
    for i, line in enumerate((SHARED / "gsm8k_model_solutions.jsonl").read_text().splitlines()):
        r = json.loads(line)
        rows.append({"id": f"{r['id']}/{r['model']}", "sample_idx": i, "problem": r["question"], "answer": r["answer"],
                     "completion": r["solution"], "source": "gsm8k_solutions", "domain": "math", "finish_reason": "stop"})
        labels[(rows[-1]["id"], i)] = str(r["is_correct"]) == "True"
    src = write_traces(tmp_path / "in", [rows[s : s + 1000] for s in range(0, len(rows), 1000)])
    recipe = load_recipe(None, ["filter.verifiers=[format,math]", "filter.dedup=false", "filter.timeout=5"])
    run_filter(recipe, src, tmp_path / "out")
    import pyarrow.dataset as pads

    kept = {(r["id"], r["sample_idx"]) for r in
            pads.dataset(tmp_path / "out" / "filtered" / "data", format="parquet").to_table(columns=["id", "sample_idx"]).to_pylist()}
    agree = {"math_cot": 0, "gsm8k_solutions": 0}
    for row in rows:
        key = (row["id"], row["sample_idx"])
        agree[row["source"]] += (key in kept) == labels[key]
    assert agree["math_cot"] >= 799 and agree["gsm8k_solutions"] == 5276, agree
