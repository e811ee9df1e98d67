"""Peak memory of `distill filter` against the number of rows: it should stay flat.

    python bench/filter_memory.py [--rows 100000 1000000] [--shard-rows 10000]

For each size, writes that many realistic math trace rows (the labelled model outputs of
../shared/data, each repeat with its own opening line, as in bench/filter_math.py) as shards of
--shard-rows, then runs `distill filter` on them in a child process with the default verifiers,
exact dedup and a target of half the rows (so the second pass's dedup scan and quota cut-off
run over everything), and reads the child's own peak resident memory (ru_maxrss of RUSAGE_SELF; the
verifier workers are separate processes, each capped at 4 GiB, that hold one batch of rows).
Prints one JSON line: peak MiB per size, and the ratio of the largest to the smallest.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from filter_math import labelled_rows  # noqa: E402

CHILD = r"""
import resource, sys, time
from pathlib import Path
from distill.filter.stage import run_filter
from distill.recipes import load_recipe
src, out, target = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
start = time.perf_counter()
result = run_filter(load_recipe(None, [f"filter.target={target}"]), src, out)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # this process only, KiB
print("RESULT", result["rows_in"], result["kept"], round(time.perf_counter() - start, 1), peak, flush=True)
"""


def write_rows(folder: Path, count: int, shard_rows: int) -> None:
    from distill import schema, shards

    base = labelled_rows()
    for s in range(0, count, shard_rows):
        rows = []
        for i in range(s, min(count, s + shard_rows)):
            r = base[i % len(base)]
            rows.append({"id": f"bench/{i}", "problem": r["problem"], "answer": r["answer"], "source": r["source"],
                         "domain": "math", "sample_idx": 0, "teacher": "labelled",
                         "completion": f"Attempt {i // len(base) + 1} at this problem.\n{r['completion']}",
                         "finish_reason": "stop"})
        shards.write_table(folder / shards.shard_name(s // shard_rows), schema.table(rows, schema.TRACE))


def measure(rows: int, shard_rows: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "traces"
        write_rows(src, rows, shard_rows)
        out = subprocess.run([sys.executable, "-c", CHILD, str(src), str(Path(tmp) / "run"), str(rows // 2)],
                             stdout=subprocess.PIPE, text=True, check=True).stdout
        line = next(x for x in out.splitlines() if x.startswith("RESULT"))
        _, rows_in, kept, seconds, peak = line.split()
        return {"rows": rows, "rows_in": int(rows_in), "kept": int(kept), "seconds": float(seconds),
                "peak_mib": round(int(peak) / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--shard-rows", type=int, default=10_000)
    args = parser.parse_args()
    results = [measure(n, args.shard_rows) for n in sorted(args.rows)]
    print(json.dumps({"bench": "filter_memory", "runs": results,
                      "peak_ratio": round(results[-1]["peak_mib"] / results[0]["peak_mib"], 2),
                      "date": time.strftime("%Y-%m-%d")}))


if __name__ == "__main__":
    main()
