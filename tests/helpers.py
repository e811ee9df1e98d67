"""Test helpers: YAML writers, a CLI runner, and trace rows written by hand."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def write_yaml(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_cli(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m distill ARGS` as a user would, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "distill", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


def start_cli(*args: str) -> subprocess.Popen:
    """Start `python -m distill ARGS` in the background, output discarded: for kill -9 tests."""
    return subprocess.Popen([sys.executable, "-m", "distill", *map(str, args)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for_done(proc: subprocess.Popen, folder: Path, count: int, timeout: float) -> None:
    """Wait until `folder` holds `count` done markers, with `proc` still running (else fail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if folder.is_dir() and len(os.listdir(folder)) >= count:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "finished before the kill"


def kill_9(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


R1_TEMPLATE = {
    "system": None,
    "user": "{problem}\n\nPlease reason step by step, and put your final answer within \\boxed{}.",
    "think_prefix": False,
}
GEN_CONFIG = json.dumps({"backend": "fake", "n": 1, "temperature": 0.6, "top_p": 0.95, "max_tokens": 64,
                         "seed": 0, "template": R1_TEMPLATE}, sort_keys=True)


def trace(id: str, answer: str | None, completion: str, finish_reason: str = "stop", sample_idx: int = 0,
          domain: str = "math", problem: str | None = None) -> dict:
    """One trace row with every DESIGN §3 column."""
    return {
        "id": id,
        "problem": problem or f"Problem {id}: what is the answer?",
        "answer": answer,
        "source": "handwritten",
        "domain": domain,
        "choices": None,
        "tests": None,
        "sample_idx": sample_idx,
        "teacher": "hand",
        "completion": completion,
        "finish_reason": finish_reason,
        "prompt_tokens": 10,
        "completion_tokens": len(completion.split()),
        "gen_config": GEN_CONFIG,
    }


def write_traces(folder: Path, shards: list[list[dict]]) -> Path:
    """Write rows as trace shards (a plain folder of Parquet files, no manifest)."""
    from distill import schema
    from distill.shards import shard_name, write_table

    for i, rows in enumerate(shards):
        write_table(folder / shard_name(i), schema.table(rows, schema.TRACE))
    return folder


def write_filtered_varied(folder: Path, count: int) -> Path:
    """A filter stage's output (`folder`/data) of `count` conversations whose reasoning runs from
    1 to 60 sums long, in a scrambled order: batches drawn at random are mostly padding."""
    from distill import schema, shards

    rows = []
    for i in range(count):
        steps = " ".join(f"{k} + {k} = {2 * k}." for k in range(1 + (i * 23) % 60))
        convo = [{"role": "user", "content": f"Problem {i}"},
                 {"role": "assistant", "content": f"<think>\n{steps}\n</think>\n\n\\boxed{{{i}}}"}]
        rows.append({"id": f"p{i}", "problem": convo[0]["content"], "sample_idx": 0,
                     "completion": convo[1]["content"], "messages": convo})
    shards.write_table(folder / shards.DATA / shards.shard_name(0), schema.table(rows, schema.FILTERED))
    return folder
