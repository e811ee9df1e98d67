"""The language and repetition checks on R1-length reasoning, against the math verdict.

    python bench/filter_long.py [--tokens 2000 8000 25000] [--rows 40] [--filter-rows 1000]

Rows are real model reasoning: MATH responses from ../shared/data/math_cot_100_samples.jsonl
concatenated (each a different problem) up to the length asked, at 4 characters a token (8k
tokens: 32 KB; 25k tokens: 100 KB), the last response as the answer after `</think>` and its
problem's gold answer. Every other row writes ×, ·, ≤, ≥ and π as Unicode symbols instead of
LaTeX commands, as R1 often does, and one row in ten has a Chinese sentence in its reasoning
(a language-mixing candidate), so the checks meet the cases they treat differently.

For each length, in this process (one core; CPU time, best of 3 passes, every cache of
verdicts emptied before each pass): microseconds per row of the language check, the repetition
check, the math verdict as the filter runs it (with its plain-number fast path) and
math-verify's verdict alone; the plain definitions the two checks replaced (letter-by-letter
script counts, a set of word tuples) for comparison; and rows/s and MB/s of language +
repetition. Then `distill filter` with its default verifiers over --filter-rows rows of each
length, 2 workers: rows/s and MB/s per core.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SYMBOLS = {"\\times": "×", "\\cdot": "·", "\\leq": "≤", "\\geq": "≥", "\\pi": "π"}
CHINESE = "我们先把每一部分分别计算出来，然后再把结果加在一起，这样就可以得到最后的答案。"


def long_rows(count: int, chars: int, data: Path = DATA) -> list[dict]:
    responses = [json.loads(line) for line in open(data / "math_cot_100_samples.jsonl")]
    rows = []
    for i in range(count):
        parts, size, j = [], 0, i * 37
        while size < chars:
            r = responses[j % len(responses)]
            parts.append(r["response"])
            size += len(r["response"]) + 2
            j += 101  # another problem each time (100 problems × 8 samples)
        last = responses[(j - 101) % len(responses)]
        # the same problems come round again every 800 rows: an opening line keeps rows unique
        reasoning = f"Attempt {i // len(responses) + 1}.\n\n" + "\n\n".join(parts[:-1])
        if i % 2:
            for command, symbol in SYMBOLS.items():
                reasoning = reasoning.replace(command, symbol)
        if i % 10 == 3:
            middle = len(reasoning) // 2
            reasoning = reasoning[:middle] + CHINESE + reasoning[middle:]
        rows.append({"id": f"long/{i}", "problem": responses[i * 37 % len(responses)]["problem"],
                     "answer": last["answer"], "reasoning": reasoning, "response": parts[-1], "domain": "math",
                     "completion": f"<think>\n{reasoning}\n</think>\n\n{parts[-1]}"})
    return rows


def clear_caches() -> None:
    """Forget every answer judged so far (distill's and math-verify's own caches), so that each
    pass pays for its verdicts as the first sample of a problem does."""
    from math_verify import parser

    from distill.verify import math as vmath
    from distill.verify import numbers

    for cached in (vmath._parse_gold, vmath._boxed_verdict, numbers.plain_number, parser.parse_latex_cached,
                   parser.parse_expr_cached, parser.extract_latex):
        cached.cache_clear()


def per_row_us(fn, rows: list[dict], rounds: int = 3) -> float:
    """Best of `rounds` passes over the rows (the machine is shared: the least disturbed pass),
    CPU time of this process, caches of verdicts emptied before each."""
    fn(rows[0])
    best = float("inf")
    for _ in range(rounds):
        clear_caches()
        start = time.process_time()
        for row in rows:
            fn(row)
        best = min(best, time.process_time() - start)
    return best / len(rows) * 1e6


def checks(rows: list[dict]) -> dict:
    from distill.verify.language import _NOT_LANGUAGE, _patterns, check_language, dominant_script
    from distill.verify.math import check_math, math_verdict
    from distill.verify.repetition import check_repetition, repeated_share_exact

    options = {"language_threshold": 0.05, "repetition_ngram": 10, "repetition_threshold": 0.2}

    def text(row):
        return f"{row['reasoning']}\n{row['response']}"

    def old_language(row):  # the plain definition: every letter matched by regex, per script
        prompt = dominant_script(row["problem"])
        if prompt is None:
            return None
        patterns, any_letter = _patterns()
        blanked = _NOT_LANGUAGE.sub(" ", text(row))
        total = len(any_letter.findall(blanked))
        return (total - len(patterns[prompt].findall(blanked))) / total if total else 0.0, total

    us = {
        "language": per_row_us(lambda r: check_language(r, options), rows),
        "repetition": per_row_us(lambda r: check_repetition(r, options), rows),
        "math_as_run": per_row_us(lambda r: check_math(r, options), rows),
        "math_verify_only": per_row_us(lambda r: math_verdict(r["answer"], r["response"], fast=False), rows),
        "language_letter_by_letter": per_row_us(old_language, rows, rounds=1),
        "repetition_word_tuples": per_row_us(lambda r: repeated_share_exact(text(r), 10), rows, rounds=1),
    }
    mean_bytes = sum(len(text(r).encode()) for r in rows) / len(rows)
    both = us["language"] + us["repetition"]
    return {
        "us_per_row": {k: round(v, 1) for k, v in us.items()},
        "language_plus_repetition": {
            "rows_per_s": round(1e6 / both, 1), "mb_per_s": round(mean_bytes / both, 1),
            "share_of_math_verify": round(both / us["math_verify_only"], 3),
            "share_of_math_as_run": round(both / us["math_as_run"], 3),
            "speedup_over_plain_definitions": round(
                (us["language_letter_by_letter"] + us["repetition_word_tuples"]) / both, 1)},
        "verdicts": {"language_mixing": sum(not check_language(r, options).ok for r in rows),
                     "repetition": sum(not check_repetition(r, options).ok for r in rows)},
    }


def whole_filter(rows: list[dict], workers: int) -> dict:
    from distill import schema, shards
    from distill.filter.stage import run_filter
    from distill.recipes import load_recipe

    with tempfile.TemporaryDirectory() as tmp:
        traces = Path(tmp) / "traces"
        trace_rows = [{**r, "sample_idx": 0, "source": "long", "teacher": "labelled", "finish_reason": "stop"}
                      for r in rows]
        for s in range(0, len(trace_rows), 100):
            shards.write_table(traces / shards.shard_name(s // 100), schema.table(trace_rows[s : s + 100], schema.TRACE))
        start = time.perf_counter()
        result = run_filter(load_recipe(None, [f"filter.workers={workers}"]), traces, Path(tmp) / "run")
        seconds = time.perf_counter() - start
    megabytes = sum(len(r["completion"].encode()) for r in rows) / 1e6
    return {"rows": len(rows), "seconds": round(seconds, 2), "rows_per_s_per_core": round(len(rows) / seconds / workers, 1),
            "mb_per_s_per_core": round(megabytes / seconds / workers, 2), "kept": result["kept"],
            "reasons": result.get("reasons")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, nargs="+", default=[2000, 8000, 25000])
    parser.add_argument("--rows", type=int, default=40, help="rows per length for the per-check timings")
    parser.add_argument("--filter-rows", type=int, default=1000, help="rows per length through `distill filter`")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data", type=Path, default=DATA, help="folder with the labelled JSONL files")
    args = parser.parse_args()
    import logging

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    results = []
    for tokens in args.tokens:
        rows = long_rows(max(args.rows, args.filter_rows), tokens * 4, args.data)
        entry = {"tokens": tokens, "kb_per_row": round(sum(len(r["completion"]) for r in rows) / len(rows) / 1000, 1),
                 **checks(rows[: args.rows])}
        if args.filter_rows:
            entry["filter"] = whole_filter(rows[: args.filter_rows], args.workers)
        results.append(entry)
        print(json.dumps(entry), flush=True)
    print(json.dumps({"bench": "filter_long", "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
                      "results": results}))


if __name__ == "__main__":
    main()
