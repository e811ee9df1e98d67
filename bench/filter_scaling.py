"""How `distill filter` scales with cores: the same rows at 1, 2, 4, … workers.

    python bench/filter_scaling.py [--rows 100000] [--workers 1,2,4,8,16] [--data DIR]

The rows are bench/filter_math.py's (real labelled outputs from ../shared/data, made unique),
filtered with the format and math verifiers and no dedup, once per worker count, each into a
fresh run folder. The plain math-verify loop runs once, on the first --baseline-rows rows, for
the ratio. Prints, per worker count: rows/s, rows/s per worker, the speed-up over one worker and
its efficiency (speed-up / workers), rows per CPU-second of the whole machine (workers and
the filter process: whether the work itself scales), and the ratio to the plain loop. On a machine with fewer cores
than workers, the larger counts only share the cores: run it where the cores are.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from pathlib import Path

import filter_math as fm


def machine_cpu_seconds() -> float:
    """Busy CPU time of the whole machine so far (every process: workers, the filter process, us)."""
    user, nice, system, _idle, _iowait, irq, softirq, *_ = map(int, open("/proc/stat").readline().split()[1:])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--baseline-rows", type=int, default=20_000)
    parser.add_argument("--workers", default="1,2,4,8,16")
    parser.add_argument("--data", type=Path, default=fm.DATA)
    parser.add_argument("--out", type=Path, help="also write the result JSON here")
    args = parser.parse_args()
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    counts = [int(w) for w in args.workers.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        rows = fm.write_traces(Path(tmp) / "traces", fm.labelled_rows(args.data), args.rows)
        t_plain, _ = fm.plain_loop(rows[: args.baseline_rows])
        plain_rate = min(args.rows, args.baseline_rows) / t_plain
        for workers in counts:
            cpu = machine_cpu_seconds()
            seconds, kept = fm.ours(Path(tmp) / "traces", Path(tmp) / f"run-{workers}", workers, "math")
            cpu = machine_cpu_seconds() - cpu
            agree = sum((r["id"] in kept) == r["label"] for r in rows)
            rate = len(rows) / seconds
            results.append({"workers": workers, "seconds": round(seconds, 2), "rows_per_s": round(rate, 1),
                            "rows_per_s_per_worker": round(rate / workers, 1),
                            "rows_per_cpu_s": round(len(rows) / cpu, 1),
                            "ratio_to_plain_loop": round(rate / plain_rate, 3), "agrees_with_labels": agree})
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
