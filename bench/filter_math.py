"""`distill filter` vs a plain loop calling `math_verify.parse`/`verify` on the same rows.

    python bench/filter_math.py [--rows 20000] [--workers 0]

The rows are real model outputs with correctness labels from ../shared/data
(math_cot_100_samples.jsonl: MATH problems × 8 responses; gsm8k_model_solutions.jsonl: GSM8K
test × 4 models), repeated with fresh ids up to --rows, written as trace shards. Each repeat gets
its own opening line, so no two responses are the same text (as in real traces, and so that
math-verify's own caches cannot answer a repeat for free). The plain loop
parses the gold answer and the response and verifies, one row at a time, in this process;
distill filters the same shards in its worker pool: with `--checks math` (the default, the same
work as the loop) the format and math verifiers and no dedup; with `--checks all` its defaults
(format, math, language, repetition, length, exact dedup), which also drop rows the labels call
correct: exact duplicate samples, and answers whose reasoning drifts into other scripts.
Prints rows/s of each, the ratio, rows/s per core, and how often each agrees with the labels.
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


def labelled_rows(data: Path = DATA) -> list[dict]:
    rows = []
    for line in open(data / "math_cot_100_samples.jsonl"):
        r = json.loads(line)
        rows.append({"problem": r["problem"], "answer": r["answer"], "completion": r["response"],
                     "label": bool(r["grader_correct"]), "source": "math_cot"})
    for line in open(data / "gsm8k_model_solutions.jsonl"):
        r = json.loads(line)
        rows.append({"problem": r["question"], "answer": r["answer"], "completion": r["solution"],
                     "label": bool(r["is_correct"]), "source": "gsm8k_solutions"})
    return rows


def write_traces(folder: Path, rows: list[dict], count: int, shard_rows: int = 1000) -> list[dict]:
    from distill import schema, shards

    out = []
    for i in range(count):
        r = rows[i % len(rows)]
        completion = f"Attempt {i // len(rows) + 1} at this problem.\n{r['completion']}"
        out.append({"id": f"bench/{i}", "problem": r["problem"], "answer": r["answer"], "source": r["source"],
                    "domain": "math", "sample_idx": 0, "teacher": "labelled", "completion": completion,
                    "finish_reason": "stop", "prompt_tokens": None, "completion_tokens": None, "gen_config": None,
                    "label": r["label"]})
    for s in range(0, count, shard_rows):
        shards.write_table(folder / shards.shard_name(s // shard_rows),
                           schema.table(out[s : s + shard_rows], schema.TRACE))
    return out


def plain_loop(rows: list[dict]) -> tuple[float, list[bool]]:
    from math_verify import parse, verify

    start, cpu = time.perf_counter(), time.process_time()
    verdicts = []
    for r in rows:
        gold = parse(f"${r['answer']}$")
        answer = parse(r["completion"].split("</think>")[-1])
        verdicts.append(bool(gold and answer and verify(gold, answer)))
    PLAIN_CPU[:] = [time.process_time() - cpu]
    return time.perf_counter() - start, verdicts


PLAIN_CPU: list[float] = []


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, from /proc (workers are not our children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


WORKER_CPU: list[float] = []
FILTER_PROCESS_CPU: list[float] = []
FORKSERVER_CPU: list[float] = []


def _count_worker_cpu() -> None:
    """Record each verifier worker's CPU time as the pool closes: rows per worker CPU-second is
    what shows whether the work itself scales with cores, whatever else shares them."""
    from distill.verify import pool

    close = pool.VerifyPool.close
    if getattr(close, "counting", False):
        return

    def counting_close(self) -> None:
        from multiprocessing import forkserver

        for worker in self.workers:
            try:
                WORKER_CPU.append(_cpu_seconds(worker.process.pid))
            except (OSError, IndexError):
                pass
        try:  # the forkserver imports math-verify and warms it once for every worker: its CPU counts too
            FORKSERVER_CPU[:] = [_cpu_seconds(forkserver._forkserver._forkserver_pid)]
        except (OSError, IndexError, TypeError):
            FORKSERVER_CPU[:] = [0.0]
        close(self)

    counting_close.counting = True
    pool.VerifyPool.close = counting_close


def ours(folder: Path, out: Path, workers: int, checks: str) -> tuple[float, dict]:
    from distill.filter.stage import run_filter
    from distill.recipes import load_recipe

    _count_worker_cpu()
    WORKER_CPU.clear()

    sets = [f"filter.workers={workers}"]
    if checks in ("math", "noop"):  # noop: see bench/filter_scaling.py --ceiling
        sets += [f"filter.verifiers=[format,{checks}]", "filter.dedup=false"]
    recipe = load_recipe(None, sets)
    start, cpu = time.perf_counter(), time.process_time()
    run_filter(recipe, folder, out)
    seconds = time.perf_counter() - start
    FILTER_PROCESS_CPU[:] = [time.process_time() - cpu]
    import pyarrow.dataset as pads

    kept = set(pads.dataset(out / "filtered" / "data", format="parquet").to_table(columns=["id"]).column("id").to_pylist())
    return seconds, kept


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--checks", choices=["math", "all"], default="math")
    parser.add_argument("--data", type=Path, default=DATA, help="folder with the labelled JSONL files")
    args = parser.parse_args()
    import logging

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as tmp:
        rows = write_traces(Path(tmp) / "traces", labelled_rows(args.data), args.rows)
        t_ours, kept = ours(Path(tmp) / "traces", Path(tmp) / "run", args.workers, args.checks)
        t_plain, verdicts = plain_loop(rows)
    cores = args.workers or os.cpu_count()
    agree_ours = sum((r["id"] in kept) == r["label"] for r in rows)
    agree_plain = sum(v == r["label"] for v, r in zip(verdicts, rows))
    result = {
        "bench": "filter_math", "rows": len(rows), "cores": cores, "checks": args.checks,
        "distill": {"seconds": round(t_ours, 1), "rows_per_s": round(len(rows) / t_ours, 1),
                    "rows_per_s_per_core": round(len(rows) / t_ours / cores, 1), "agrees_with_labels": agree_ours,
                    # replaced workers (killed for time) are not counted: none are in this data
                    "rows_per_worker_cpu_s": round(len(rows) / sum(WORKER_CPU), 1) if WORKER_CPU else None,
                    # CPU seconds of the filter process, its forkserver and its workers together:
                    # less disturbed than wall time on a shared machine
                    "filter_process_cpu_s": round(FILTER_PROCESS_CPU[0], 2),
                    "forkserver_cpu_s": round(sum(FORKSERVER_CPU), 2),
                    "cpu_s": round(FILTER_PROCESS_CPU[0] + sum(WORKER_CPU) + sum(FORKSERVER_CPU), 2)},
        "plain_loop": {"seconds": round(t_plain, 1), "rows_per_s": round(len(rows) / t_plain, 1),
                       "cpu_s": round(PLAIN_CPU[0], 2), "agrees_with_labels": agree_plain},
        "ratio": round(t_plain / t_ours, 3),
        "cpu_ratio": round(PLAIN_CPU[0] / (FILTER_PROCESS_CPU[0] + sum(WORKER_CPU) + sum(FORKSERVER_CPU)), 3)
        if WORKER_CPU else None,
        "load_average": os.getloadavg()[0],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
