"""The real quickstart, killed with kill -9 during each stage in turn, against an uninterrupted run.

    python bench/quickstart_kills.py --out /tmp/qk        # about 25 minutes on 2 CPU cores

Not a speed benchmark: the check of issue 6's "killed during each stage in turn and rerun
finishes with the same outputs as an uninterrupted run", with the real SmolLM2, vLLM and
math-verify (the test suite does the same with a tiny model, in-process, in seconds).

One run folder is started with `distill run --recipe quickstart`, killed from outside once
generate has written 2 shards, rerun and killed once the filter has finished 1 input file,
rerun and killed 30 s into training, rerun and killed once eval has written 1 shard, rerun and
killed once the base student's eval (base/eval/) has written 1 shard, then rerun to the end. A second folder runs uninterrupted. The script prints, per output, whether the two
agree, and exits non-zero when any differs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def distill_run(out: Path) -> subprocess.Popen:
    log = open(out.parent / f"{out.name}.log", "a")
    return subprocess.Popen([sys.executable, "-m", "distill", "run", "--recipe", "quickstart", "--out", str(out)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def count(folder: Path) -> int:
    return len(os.listdir(folder)) if folder.is_dir() else 0


def kill_when(proc: subprocess.Popen, ready, finished: Path, stage: str) -> None:
    """kill -9 the run (the engine's processes die with it) once `ready()`; the stage must not
    have finished by then."""
    while proc.poll() is None and not ready():
        time.sleep(0.05)
    if proc.poll() is not None:
        raise SystemExit(f"{stage}: the run ended (exit {proc.returncode}) before the kill")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    status = "unfinished" if not finished.exists() else "FINISHED ALREADY (the kill came too late)"
    print(f"killed during {stage}: {status}", flush=True)


def outputs(run: Path) -> dict:
    import pyarrow.parquet as pq
    from safetensors.numpy import load_file

    def rows(folder: Path) -> list[dict]:
        return sorted(pq.ParquetDataset(folder).read().to_pylist(), key=lambda r: (r["id"], r["sample_idx"]))

    drop = ("teacher", "gen_config")  # eval names the model by its folder, which differs
    return {
        "traces": rows(run / "traces" / "data"),
        "filtered (kept)": rows(run / "filtered" / "data"),
        "filtered (rejected)": rows(run / "filtered" / "rejected"),
        "student weights": load_file(run / "student" / "adapter_model.safetensors"),
        "eval samples": [{k: v for k, v in r.items() if k not in drop}
                         for r in pq.read_table(run / "eval" / "arithmetic-test" / "scored.parquet").to_pylist()],
        "scores": json.loads((run / "eval" / "scores.json").read_text())["benchmarks"],
        "base eval samples": [{k: v for k, v in r.items() if k not in drop} for r in
                              pq.read_table(run / "base" / "eval" / "arithmetic-test" / "scored.parquet").to_pylist()],
        "base scores": json.loads((run / "base" / "eval" / "scores.json").read_text())["benchmarks"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="scratch folder (emptied first)")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    killed, reference = args.out / "killed", args.out / "reference"

    start = time.monotonic()
    proc = distill_run(killed)
    kill_when(proc, lambda: count(killed / "traces" / "_done") >= 2, killed / "traces" / "manifest.json", "generate")
    proc = distill_run(killed)
    kill_when(proc, lambda: count(killed / "filtered" / "_pass1" / "_done") >= 1,
              killed / "filtered" / "manifest.json", "filter")
    proc = distill_run(killed)
    began: list[float] = []

    def thirty_seconds_into_training() -> bool:
        if (killed / "student").is_dir() and not began:
            began.append(time.monotonic())
        return bool(began) and time.monotonic() - began[0] > 30

    kill_when(proc, thirty_seconds_into_training, killed / "student" / "train_summary.json", "train")
    proc = distill_run(killed)
    kill_when(proc, lambda: count(killed / "eval" / "arithmetic-test" / "_done") >= 1,
              killed / "eval" / "scores.json", "eval")
    proc = distill_run(killed)
    kill_when(proc, lambda: count(killed / "base" / "eval" / "arithmetic-test" / "_done") >= 1,
              killed / "base" / "eval" / "scores.json", "the base student's eval")
    proc = distill_run(killed)
    if proc.wait() != 0:
        raise SystemExit(f"the last rerun failed: see {killed}.log")
    print(f"killed five times and rerun: {time.monotonic() - start:.0f} s", flush=True)

    start = time.monotonic()
    if distill_run(reference).wait() != 0:
        raise SystemExit(f"the uninterrupted run failed: see {reference}.log")
    print(f"uninterrupted: {time.monotonic() - start:.0f} s", flush=True)

    got, want = outputs(killed), outputs(reference)
    differ = 0
    for key in want:
        if key == "student weights":
            import numpy as np

            gap = max(float(np.abs(got[key][n] - want[key][n]).max()) for n in want[key])
            same = got[key].keys() == want[key].keys() and gap < 1e-5
            detail = f"largest difference {gap:.2e}"
        else:
            same = got[key] == want[key]
            detail = f"{len(want[key])} rows" if isinstance(want[key], list) else ""
        differ += not same
        print(f"{key:22s} {'same' if same else 'DIFFERENT'}  {detail}", flush=True)
    for name, s in want["scores"].items():
        print(f"scores: {name} pass@1 {s['pass@1']} ± {s['pass@1_se']} (uninterrupted), "
              f"{got['scores'][name]['pass@1']} ± {got['scores'][name]['pass@1_se']} (killed four times)")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
