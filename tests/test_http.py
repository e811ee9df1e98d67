"""The OpenAI-compatible backend against a scripted local server: faults, retries, keys, resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
from helpers import ROOT, kill_9, run_cli, start_cli, wait_for_done, write_yaml
from openai_server import Script, serve


@pytest.fixture
def server():
    servers = []

    def start(script: Script) -> str:
        srv, url = serve(script)
        servers.append(srv)
        return url

    yield start
    for srv in servers:
        srv.shutdown()


def http_recipe(tmp_path, url: str, limit: int = 6, n: int = 2, shard_size: int = 2, **engine) -> str:
    card = write_yaml(
        tmp_path / "cards" / "http-teacher.yaml",
        {
            "model": "test-model",
            "backend": "openai",
            "sampling": {"temperature": 0.6, "top_p": 0.95, "max_tokens": 64},
            "engine": {"base_url": url, "timeout": 1.0, "backoff": 0.01, "max_retries": 6, "concurrency": 4, **engine},
        },
    )
    return str(write_yaml(
        tmp_path / "http.yaml",
        {"teacher": str(card), "data": [{"card": "arithmetic", "limit": limit}],
         "generate": {"n": n, "shard_size": shard_size}},
    ))


def rows(run):
    return pq.ParquetDataset(run / "traces" / "data").read().to_pylist()


def test_faults_are_retried_and_counted_and_every_row_arrives(tmp_path, server):
    script = Script(["429", "500", "hang", "drop", "malformed", "429", "500"])
    url = server(script)
    result = run_cli("generate", "-r", http_recipe(tmp_path, url), "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    got = rows(tmp_path / "run")
    assert sorted((r["id"], r["sample_idx"]) for r in got) == sorted({(r["id"], k) for r in got for k in range(2)})
    assert len(got) == 12
    manifest = json.loads((tmp_path / "run" / "traces" / "manifest.json").read_text())
    assert manifest["retries"] == {"429": 2, "500": 2, "timeout": 1, "connection": 1, "malformed": 1}
    assert manifest["errors"] == 0
    for r in got:
        assert r["completion"].startswith("<think>\nthinking ") and "\\boxed{" in r["completion"]
        assert r["finish_reason"] == "stop" and r["prompt_tokens"] == 12 and r["completion_tokens"] == 9


def test_seeds_make_a_redone_request_identical(tmp_path, server):
    script = Script()
    url = server(script)
    assert run_cli("generate", "-r", http_recipe(tmp_path, url), "--out", tmp_path / "a").returncode == 0
    seeds = {(json.dumps(b["messages"]), b["seed"]) for b in script.requests}
    assert len(seeds) == 12  # one distinct seed per (prompt, sample)
    assert run_cli("generate", "-r", http_recipe(tmp_path, url), "--out", tmp_path / "b").returncode == 0
    assert [r["completion"] for r in rows(tmp_path / "a")] == [r["completion"] for r in rows(tmp_path / "b")]


def test_n_per_request_sends_n_once(tmp_path, server):
    script = Script()
    url = server(script)
    result = run_cli("generate", "-r", http_recipe(tmp_path, url, n=3, n_per_request=True), "--out", tmp_path / "r")
    assert result.returncode == 0, result.stderr
    assert len(script.requests) == 6 and {b["n"] for b in script.requests} == {3}
    assert len(rows(tmp_path / "r")) == 18


def test_401_stops_at_once_with_one_line(tmp_path, server):
    script = Script(["401"] * 1000)
    url = server(script)
    recipe = http_recipe(tmp_path, url, api_key_env="DISTILL_TEST_KEY")
    start = time.monotonic()
    result = run_cli("generate", "-r", recipe, "--out", tmp_path / "run", env={"DISTILL_TEST_KEY": "sk-wrong"})
    assert result.returncode == 1
    assert time.monotonic() - start < 30
    (line,) = result.stderr.strip().splitlines()
    assert "answered 401" in line and "$DISTILL_TEST_KEY" in line and "sk-wrong" not in line
    assert script.seen["401"] <= 6  # about the requests already in flight (concurrency 4): none retried
    stats = json.loads((tmp_path / "run" / "traces" / "_stats.0.json").read_text())
    assert stats["retries"] == {} and stats["errors"] == 0
    assert not list((tmp_path / "run" / "traces").glob("data/*.parquet"))


def test_missing_api_key(tmp_path, server):
    url = server(Script())
    recipe = http_recipe(tmp_path, url, api_key_env="DISTILL_TEST_NO_SUCH_KEY")
    env = {k: v for k, v in os.environ.items() if k != "DISTILL_TEST_NO_SUCH_KEY"}
    result = subprocess.run([sys.executable, "-m", "distill", "generate", "-r", recipe, "--out", str(tmp_path / "r")],
                            capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 1 and "set the API key in $DISTILL_TEST_NO_SUCH_KEY" in result.stderr


def test_unknown_engine_key(tmp_path, server):
    url = server(Script())
    result = run_cli("generate", "-r", http_recipe(tmp_path, url, concurency=3), "--out", tmp_path / "r")
    assert result.returncode == 2 and "unknown key 'concurency' in engine (did you mean 'concurrency'?)" in result.stderr


def test_reasoning_content_is_joined_as_think(tmp_path, server):
    url = server(Script(reasoning_apart=True))
    assert run_cli("generate", "-r", http_recipe(tmp_path, url, limit=2), "--out", tmp_path / "r").returncode == 0
    for r in rows(tmp_path / "r"):
        assert r["completion"].startswith("<think>\nthinking ") and "</think>\n\nThe answer is" in r["completion"]


def test_kill_9_mid_http_run_then_rerun(tmp_path, server):
    url = server(Script(delay=0.15))
    recipe = http_recipe(tmp_path, url, limit=16, shard_size=1, concurrency=2)
    assert run_cli("generate", "-r", recipe, "--out", tmp_path / "ref").returncode == 0
    args = ["generate", "-r", recipe, "--out", tmp_path / "killed"]
    proc = start_cli(*args)
    done = tmp_path / "killed" / "traces" / "_done"
    wait_for_done(proc, done, 3, timeout=120)
    kill_9(proc)
    assert 3 <= len(os.listdir(done)) < 16
    assert run_cli(*args).returncode == 0
    ref, got = rows(tmp_path / "ref"), rows(tmp_path / "killed")
    key = lambda r: (r["id"], r["sample_idx"])  # noqa: E731
    assert sorted(map(key, got)) == sorted(map(key, ref)) and len(got) == len(set(map(key, got))) == 32
    assert {key(r): r["completion"] for r in got} == {key(r): r["completion"] for r in ref}
