"""Batch mode against a scripted files + batches API: partial failure, expiry, a restart while
batches are pending, a refused batch."""

from __future__ import annotations

import json
import time

import pytest
from batch_server import BatchScript, serve
from helpers import kill_9, run_cli, start_cli
from openai_server import Script
from test_http import http_recipe, rows, server  # noqa: F401 - the fixture

PRICES = {"input": 1000.0, "output": 2000.0, "batch_discount": 0.5}


@pytest.fixture
def batch_api():
    servers = []

    def start(script: BatchScript) -> str:
        srv, url = serve(script)
        servers.append(srv)
        return url

    yield start
    for srv in servers:
        srv.shutdown()


def completions(run) -> dict:
    return {(r["id"], r["sample_idx"]): r["completion"] for r in rows(run)}


def batch_recipe(tmp_path, url, **engine):
    return http_recipe(tmp_path, url, **{"mode": "batch", "poll": 0.05, "batch_size": 5, "prices": PRICES, **engine})


def test_batches_that_expire_half_fail_and_drop_lines_are_completed(tmp_path, server, batch_api):
    assert run_cli("generate", "-r", http_recipe(tmp_path / "o", server(Script())), "--out", tmp_path / "online").returncode == 0
    script = BatchScript(["expire", "fail_some", "drop_some"])
    result = run_cli("generate", "-r", batch_recipe(tmp_path / "b", batch_api(script)), "--out", tmp_path / "batch")
    assert result.returncode == 0, result.stderr
    assert completions(tmp_path / "batch") == completions(tmp_path / "online")  # every (id, sample_idx) once
    assert script.paid == 12  # each request answered (paid) once
    first, later = script.inputs[:3], script.inputs[3:]
    assert [len(x) for x in first] == [5, 5, 2]
    # only what was not answered goes again: 3 expired, 2 failed with 500, 1 in neither file
    assert sorted(c for x in later for c in x) == sorted(first[0][2:] + first[1][1::2] + first[2][1::2])
    manifest = json.loads((tmp_path / "batch" / "traces" / "manifest.json").read_text())
    assert manifest["retries"] == {"batch_expired": 3, "batch 500": 2, "batch_missing": 1}
    assert manifest["usage"]["cost"] == pytest.approx(12 * (12 * 1000 + 9 * 2000) / 1e6 * 0.5)
    assert "submitted 5 requests" in result.stdout and "expired" in result.stdout
    assert not (tmp_path / "batch" / "traces" / "_journal").exists()  # the batch record goes at the end


def test_a_restart_polls_the_pending_batches_instead_of_resubmitting(tmp_path, batch_api):
    script = BatchScript()
    script.hold.set()  # the provider takes its time
    args = ["generate", "-r", batch_recipe(tmp_path, batch_api(script), batch_size=6), "--out", tmp_path / "r"]
    proc = start_cli(*args)
    deadline = time.monotonic() + 60
    while (len(script.inputs) < 2 or script.polls < 2) and time.monotonic() < deadline:
        time.sleep(0.02)
    kill_9(proc)
    path = tmp_path / "r" / "traces" / "_journal" / "batches.0.json"
    state = json.loads(path.read_text())
    assert [b["id"] for b in state["batches"]] == list(script.batches)
    script.hold.clear()
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert len(script.inputs) == 2 and script.paid == 12 and len(rows(tmp_path / "r")) == 12


def test_a_kill_between_creating_and_recording_a_batch(tmp_path, batch_api):
    """The token is recorded before the batch is created: a restart adopts the batch that carries
    it, and creates the batch (from the recorded file) only where none does."""
    script = BatchScript()
    script.hold.set()
    args = ["generate", "-r", batch_recipe(tmp_path, batch_api(script), batch_size=6), "--out", tmp_path / "r"]
    proc = start_cli(*args)
    deadline = time.monotonic() + 60
    while len(script.inputs) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    kill_9(proc)
    path = tmp_path / "r" / "traces" / "_journal" / "batches.0.json"
    state = json.loads(path.read_text())
    state["batches"][0]["id"] = None  # created, then killed before the id was written
    state["batches"][1].update(id=None, token="0123456789abcdef")  # killed before it was created
    path.write_text(json.dumps(state))
    script.hold.clear()
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert len(script.inputs) == 3 and script.inputs[2] == script.inputs[1]  # adopted one, created one
    assert script.paid == 12 and len(rows(tmp_path / "r")) == 12


def test_a_batch_refused_by_the_provider_is_one_line(tmp_path, batch_api):
    script = BatchScript(["refuse"])
    url = batch_api(script)
    result = run_cli("generate", "-r", batch_recipe(tmp_path, url, batch_size=100), "--out", tmp_path / "r")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "was refused (line 1: model not found)" in line
    result = run_cli("generate", "-r", batch_recipe(tmp_path, url, batch_size=100), "--out", tmp_path / "r")
    assert result.returncode == 0, result.stderr  # the cause gone, a rerun submits anew
    assert len(script.inputs) == 2 and script.paid == 12 and len(rows(tmp_path / "r")) == 12


def test_requests_that_keep_failing_stop_the_run_and_a_rerun_tries_them_again(tmp_path, batch_api):
    script = BatchScript(["fail_some"])
    args = ["generate", "-r", batch_recipe(tmp_path, batch_api(script), batch_size=100, max_retries=0),
            "--out", tmp_path / "r"]
    result = run_cli(*args)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "6 batch requests failed 1 time;" in line and "rerun" in line
    assert script.paid == 6  # the answered half is journaled
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert script.inputs[1] == script.inputs[0][1::2] and script.paid == 12 and len(rows(tmp_path / "r")) == 12
