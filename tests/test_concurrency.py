"""One output folder, one configuration: two `distill filter` processes on one folder, as two
commands or two ranks, with other or the same settings."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from helpers import ROOT, run_cli, trace, write_traces

from distill.verify.sandbox import unavailable

pytestmark = pytest.mark.skipif(unavailable() is not None, reason=f"no code sandbox here: {unavailable()}")

SLOW = "import time\ntime.sleep(1.0)\ndef add(a, b):\n    return a + b\n"


def _traces(folder: Path, files: int = 2, rows: int = 5) -> Path:
    def row(i: int) -> dict:
        r = trace(f"p{i}", None, f"```python\n{SLOW}```", domain="code", sample_idx=0)
        r["tests"] = json.dumps({"asserts": ["assert add(2, 3) == 5"]})
        return r

    return write_traces(folder, [[row(f * rows + i) for i in range(rows)] for f in range(files)])


def _start(traces: Path, out: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "distill", "filter", str(traces), "--out", str(out),
                             "--set", "filter.verifiers=[code]", "--set", "filter.workers=1", *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the first filter ended before the test"
        time.sleep(0.05)


@pytest.mark.parametrize("rank", [None, 1])
def test_a_second_filter_with_other_settings_is_refused_while_the_first_runs(tmp_path, rank):
    traces, out = _traces(tmp_path / "traces"), tmp_path / "run"
    ranks = ["--rank", "0", "--world-size", "2"] if rank is not None else []
    first = _start(traces, out, *ranks)
    try:
        _wait_for(out / "recipe.resolved.yaml", first)  # it has claimed the folder; no file is done yet
        other = ["--rank", str(rank), "--world-size", "2"] if rank is not None else []
        second = run_cli("filter", traces, "--out", out, "--set", "filter.verifiers=[code]",
                         "--set", "filter.select=first", *other, timeout=120)
        assert first.poll() is None, "the first filter ended before the second was refused"
        assert second.returncode == 2, second.stderr
        assert second.stderr.strip().splitlines() == [
            f"error: {out}: its filter stage is running in another process with filter.select=all, now first; "
            f"rerun with the same settings, or use a new --out"]
    finally:
        _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert yaml.safe_load((out / "recipe.resolved.yaml").read_text())["filter"]["select"] == "all"
    if rank is None:  # one configuration's rows: every right program kept, by the first's settings
        assert pq.read_table(out / "filtered" / "data").num_rows == 10


@pytest.mark.parametrize("stage", ["generate", "train"])
def test_a_claim_is_refused_while_another_process_runs_the_stage_with_other_settings(tmp_path, stage):
    """The lock in runfolder.claim, which every stage uses: here held by a child process."""
    from distill import runfolder
    from distill.errors import ConfigError
    from distill.recipes import load_recipe

    key = {"generate": "generate.n", "train": "train.lora_r"}[stage]
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from distill import runfolder; from distill.recipes import load_recipe;"
         f"runfolder.claim(__import__('pathlib').Path(sys.argv[1]), load_recipe('quickstart', ['{key}=3']), '{stage}', "
         "started=False); print('claimed', flush=True); time.sleep(60)", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "claimed"
        with pytest.raises(ConfigError, match=f"its {stage} stage is running in another process with {key}=3, now "):
            runfolder.claim(tmp_path, load_recipe("quickstart", [f"{key}=5"]), stage, started=False)
        runfolder.claim(tmp_path, load_recipe("quickstart", [f"{key}=3"]), stage, started=False)  # same: joins
        runfolder.release(tmp_path, stage)
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone (killed, even): its lock went with it, and nothing has started
    runfolder.claim(tmp_path, load_recipe("quickstart", [f"{key}=5"]), stage, started=False)
    runfolder.release(tmp_path, stage)


def test_two_filters_with_the_same_settings_end_with_the_rows_of_one_and_nothing_stray(tmp_path):
    traces, out = _traces(tmp_path / "traces"), tmp_path / "run"
    first = _start(traces, out)
    _wait_for(out / "filtered" / "_pass1" / "_done" / "00000", first)
    # the second starts while the first is on its last file: it finishes after the first cleaned up
    both = [first, _start(traces, out)]
    results = [p.communicate(timeout=180) for p in both]
    assert [p.returncode for p in both] == [0, 0], [err for _, err in results]
    stage = out / "filtered"
    assert sorted(p.name for p in stage.iterdir() if p.name.startswith("_")) == ["_done", "_inputs.json"]
    rows = pq.read_table(stage / "data").to_pylist()
    assert sorted(r["id"] for r in rows) == sorted(f"p{i}" for i in range(10))
