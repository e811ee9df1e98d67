"""How `distill filter` scales with cores: the same rows at 1, 2, 4, … workers.

    python bench/filter_scaling.py [--rows 100000] [--workers 1,2,4,8,16] [--data DIR]

The rows are bench/filter_math.py's (real labelled outputs from ../shared/data, made unique),
filtered with the format and math verifiers and no dedup, once per worker count, each into a
fresh run folder. The plain math-verify loop runs once, on the first --baseline-rows rows, for
the ratio. Prints, per worker count: rows/s, rows/s per worker, the speed-up over one worker and
its efficiency (speed-up / workers), rows per CPU-second of the whole machine (workers and
the filter process: whether the work itself scales), the filter process's own CPU time and the
rows/s it could coordinate at most (rows / that time: with N workers the filter scales only
while N workers' rows/s stay below it), and the ratio to the plain loop.

What the machine itself allows: with `--machine-baseline`, N copies of the plain loop run at once
in N processes (no coordination at all) for each worker count N, and their summed rows/s is
printed beside distill's. On shared or virtual machines N busy cores rarely give N times one
core; distill's rows/s over that sum says how close it comes to what the cores can do. On a
machine with fewer cores than workers, the larger counts only share the cores: run it where
the cores are.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from pathlib import Path

import filter_math as fm

from distill.verify import Verdict, register


@register("noop", isolated=True)  # at import: the pool's forkserver imports this module, workers see it
def noop(row: dict, options: dict) -> Verdict:
    """A verifier that costs nothing: rows/s through the pool with it are distill's own ceiling."""
    return Verdict(True)


def machine_cpu_seconds() -> float:
    """Busy CPU time of the whole machine so far (every process: workers, the filter process, us)."""
    user, nice, system, _idle, _iowait, irq, softirq, *_ = map(int, open("/proc/stat").readline().split()[1:])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _plain_copy(rows: list[dict], queue) -> None:
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    seconds, _ = fm.plain_loop(rows)
    queue.put(seconds)


def machine_baseline(rows: list[dict], copies: int, per_copy: int) -> float:
    """Summed rows/s of `copies` plain loops running at once, each on its own `per_copy` rows."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    chunks = [rows[(i * per_copy) % len(rows):][:per_copy] or rows[:per_copy] for i in range(copies)]
    procs = [ctx.Process(target=_plain_copy, args=(chunk, queue)) for chunk in chunks]
    for proc in procs:
        proc.start()
    times = [queue.get() for _ in procs]
    for proc in procs:
        proc.join()
    return sum(len(c) for c in chunks) / max(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--baseline-rows", type=int, default=20_000)
    parser.add_argument("--workers", default="1,2,4,8,16")
    parser.add_argument("--data", type=Path, default=fm.DATA)
    parser.add_argument("--out", type=Path, help="also write the result JSON here")
    parser.add_argument("--ceiling", action="store_true",
                        help="verify with a no-op verifier in the workers: rows/s is then what the filter process "
                             "itself can move (read, hand out, collect, write), whatever the cores")
    parser.add_argument("--machine-baseline", action="store_true",
                        help="also run N plain loops at once per worker count N (what the cores allow)")
    args = parser.parse_args()
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    counts = [int(w) for w in args.workers.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        rows = fm.write_traces(Path(tmp) / "traces", fm.labelled_rows(args.data), args.rows)
        t_plain, _ = fm.plain_loop(rows[: args.baseline_rows])
        plain_rate = min(args.rows, args.baseline_rows) / t_plain
        for workers in counts:
            cpu, own = machine_cpu_seconds(), fm._cpu_seconds(os.getpid())
            seconds, kept = fm.ours(Path(tmp) / "traces", Path(tmp) / f"run-{workers}", workers,
                                    "noop" if args.ceiling else "math")
            cpu, own = machine_cpu_seconds() - cpu, fm._cpu_seconds(os.getpid()) - own
            agree = sum((r["id"] in kept) == r["label"] for r in rows)
            rate = len(rows) / seconds
            results.append({"workers": workers, "seconds": round(seconds, 2), "rows_per_s": round(rate, 1),
                            "rows_per_s_per_worker": round(rate / workers, 1),
                            "rows_per_cpu_s": round(len(rows) / cpu, 1),
                            # the filter process alone: the most rows/s it could hand out were the workers free
                            "filter_process_cpu_s": round(own, 2),
                            "filter_process_ceiling_rows_per_s": round(len(rows) / own, 1),
                            "ratio_to_plain_loop": round(rate / plain_rate, 3), "agrees_with_labels": agree})
            if args.machine_baseline:
                copies = machine_baseline(rows, workers, min(args.baseline_rows, len(rows)))
                results[-1]["plain_loops_at_once_rows_per_s"] = round(copies, 1)
                results[-1]["distill_over_plain_loops_at_once"] = round(rate / copies, 3)
            print(json.dumps(results[-1]), flush=True)
    base = results[0]["rows_per_s"] / results[0]["workers"]
    for r in results:
        r["speedup_per_worker_of_first"] = round(r["rows_per_s"] / base, 2)
        r["efficiency"] = round(r["rows_per_s"] / base / r["workers"], 3)
    summary = {"bench": "filter_scaling", "rows": len(rows), "cpu_count": os.cpu_count(),
               "plain_loop_rows_per_s": round(plain_rate, 1), "runs": results}
    print(json.dumps(summary))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
