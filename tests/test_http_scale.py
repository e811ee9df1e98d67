"""The served teacher at scale, against scripted local servers: the journal under kill -9, cost
and the budget stop, rate budgets and 429 back-off, empty answers, several servers, streaming."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time

import pytest
from helpers import ROOT, kill_9, run_cli, start_cli
from openai_server import Script
from test_http import http_recipe, rows, server  # noqa: F401 - the fixture

from distill import journal
from distill.errors import UserError

KEY = lambda r: (r["id"], r["sample_idx"])  # noqa: E731


def completions(run) -> dict:
    return {KEY(r): r["completion"] for r in rows(run)}


def manifest(run) -> dict:
    return json.loads((run / "traces" / "manifest.json").read_text())


def test_kill_9_at_random_points_pays_only_the_requests_in_flight(tmp_path, server):
    """48 samples in one shard, three kill -9s at random points, then a rerun: the bill is at most
    the rows plus the requests in flight at each kill, and the traces equal an uninterrupted run."""
    ref_url = server(Script())
    assert run_cli("generate", "-r", http_recipe(tmp_path / "a", ref_url, limit=24, shard_size=24),
                   "--out", tmp_path / "ref").returncode == 0
    script = Script(delay=0.04)
    concurrency, kills = 4, 3
    recipe = http_recipe(tmp_path / "b", server(script), limit=24, shard_size=24, concurrency=concurrency)
    args = ["generate", "-r", recipe, "--out", tmp_path / "run"]
    rng = random.Random(17)
    for _ in range(kills):
        target = script.paid + rng.randint(3, 10)
        proc = start_cli(*args)
        deadline = time.monotonic() + 60
        while script.paid < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        assert proc.poll() is None, "finished before the kill"
        kill_9(proc)
    kept = (tmp_path / "run" / "traces" / journal.FOLDER / "00000.jsonl").read_text().splitlines()
    assert len(kept) - 1 >= script.paid - kills * concurrency  # the header, then every answer kept
    assert not (tmp_path / "run" / "traces" / "data").exists()  # the one shard was never complete
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert 48 <= script.paid <= 48 + kills * concurrency
    got = rows(tmp_path / "run")
    assert len(got) == len({KEY(r) for r in got}) == 48
    assert completions(tmp_path / "run") == completions(tmp_path / "ref")
    assert not list((tmp_path / "run" / "traces" / journal.FOLDER).iterdir())  # spent journals go


def test_journal_keeps_whole_lines_and_refuses_another_plan(tmp_path):
    prompts = [{"id": "p0"}, {"id": "p1"}]
    j = journal.ShardJournal(tmp_path, 3, prompts, "config-a")
    j.append({"prompt_index": 1, "sample_idx": 0, "completion": "x", "cost": 0.5})
    j.append({"prompt_index": 1, "sample_idx": 0, "completion": "again"})  # kept once
    j.append({"prompt_index": 0, "sample_idx": 1, "completion": "y", "cost": None})
    j.close()
    path = journal.path_for(tmp_path, 3)
    with open(path, "ab") as f:
        f.write(b'{"id": "p0", "sample": {"sample_idx": 0, "compl')  # a killed writer's torn line
    j = journal.ShardJournal(tmp_path, 3, prompts, "config-a")
    assert j.samples == {(1, 0): {"prompt_index": 1, "sample_idx": 0, "completion": "x", "cost": 0.5},
                         (0, 1): {"prompt_index": 0, "sample_idx": 1, "completion": "y", "cost": None}}
    j.append({"prompt_index": 0, "sample_idx": 0, "completion": "z"})
    j.close()
    assert len(journal.ShardJournal(tmp_path, 3, prompts, "config-a").samples) == 3  # torn line cut, not glued
    assert journal.pending_cost(tmp_path) == 0.5
    with pytest.raises(UserError, match="another plan or generation config"):
        journal.ShardJournal(tmp_path, 3, prompts, "config-b")
    journal.clean_done(tmp_path, {3})
    assert not path.exists()


def priced_recipe(tmp_path, url, **engine):
    prices = {"input": 1000.0, "output": 2000.0, "cached_input": 500.0}
    return http_recipe(tmp_path, url, concurrency=2, prices=prices, **engine)


def test_cost_shows_in_progress_and_manifest_and_the_budget_stop_resumes(tmp_path, server):
    script = Script(cached_tokens=4, delay=0.02)
    recipe = priced_recipe(tmp_path, server(script))
    per_request = (8 * 1000 + 4 * 500 + 9 * 2000) / 1e6  # 8 new + 4 cached prompt tokens, 9 out
    args = ["generate", "-r", recipe, "--out", tmp_path / "run"]
    stopped = run_cli(*args, "--max-cost", "0.15")
    assert stopped.returncode == 1
    (line,) = stopped.stderr.strip().splitlines()
    assert "stopped at the cost budget" in line and "--max-cost" in line
    assert "cost $" in stopped.stdout  # the progress line at each written shard
    paid = script.paid
    assert 6 <= paid <= 6 + 2  # 0.15 is reached after 6 requests; at most the 2 in flight more
    assert not (tmp_path / "run" / "traces" / "manifest.json").exists()
    again = run_cli(*args, "--max-cost", "0.15")  # the budget counts what earlier runs spent
    assert again.returncode == 1 and script.paid == paid
    done = run_cli(*args, "--max-cost", "1.0")
    assert done.returncode == 0, done.stderr
    assert script.paid == 12  # every request paid once
    usage = manifest(tmp_path / "run")["usage"]
    assert usage["prompt_tokens"] == 12 * 12 and usage["completion_tokens"] == 12 * 9
    assert usage["cost"] == pytest.approx(12 * per_request)


def test_rpm_budget_paces_the_requests(tmp_path, server):
    script = Script()
    result = run_cli("generate", "-r", http_recipe(tmp_path, server(script), concurrency=8, rpm=300),
                     "--out", tmp_path / "r")
    assert result.returncode == 0, result.stderr
    times = sorted(script.times)
    assert len(times) == 12
    # 300 a minute is 5 a second, with one second of burst: 5 at once, then one every 0.2 s
    assert times[-1] - times[0] >= 0.9 * (12 - 5) / 5
    assert max(sum(1 for t in times if s <= t < s + 1.0) for s in times) <= 5 + 5 + 1
    assert "rpm ≤300" in result.stdout  # the pacing in the progress line
    rate = manifest(tmp_path / "r")["rate"]
    assert rate["rpm"] == 300 and rate["tpm"] is None and rate["waited_s"] > 0.5


def test_token_bucket_goes_into_debt_and_recovers():
    from distill.backends.ratelimit import TokenBucket

    async def go() -> float:
        bucket = TokenBucket(per_minute=6000)  # 100 a second, 100 at most in the bucket
        await bucket.take(10)
        bucket.settle(140)  # the answer used 150, not the 10 estimated: 50 in debt
        start = time.monotonic()
        await bucket.take(10)  # waits until the debt is paid and 10 are in
        return time.monotonic() - start

    assert 0.5 <= asyncio.run(go()) < 1.5


def test_aimd_halves_on_429_once_per_storm_and_grows_back():
    from distill.backends.servers import FAILED, OK, THROTTLED, Pool, Server

    async def go() -> list:
        server = Server("a", None, cap=8)
        pool = Pool([server], drain=5.0)
        seen = []
        for outcome in (THROTTLED, THROTTLED, THROTTLED):  # one storm: one halving
            await pool.take()
            await pool.give(server, outcome)
        seen.append(server.limit)
        for _ in range(40):
            await pool.take()
            await pool.give(server, OK)
        seen.append(server.limit)
        await pool.take()
        await pool.give(server, FAILED)  # the only server: drained, yet still probed (one at a time)
        seen.append((server.probing, server.room()))
        return seen

    assert asyncio.run(go()) == [4.0, 8.0, (True, 1)]


def test_429_storm_backs_off_and_every_row_arrives(tmp_path, server):
    script = Script(["429"] * 40)
    recipe = http_recipe(tmp_path, server(script), concurrency=8, max_retries=30)
    result = run_cli("generate", "-r", recipe, "--out", tmp_path / "r")
    assert result.returncode == 0, result.stderr
    assert len(rows(tmp_path / "r")) == 12 and manifest(tmp_path / "r")["retries"] == {"429": 40}
    rate = manifest(tmp_path / "r")["rate"]
    assert rate["max_concurrency"] == 8 and rate["lowest_concurrency"] < 8  # AIMD cut in, on the record


def test_empty_answers_are_retried_then_errors_never_rows(tmp_path, server):
    script = Script(["empty", "empty"])
    result = run_cli("generate", "-r", http_recipe(tmp_path, server(script)), "--out", tmp_path / "a")
    assert result.returncode == 0, result.stderr
    assert manifest(tmp_path / "a")["retries"] == {"empty": 2} and len(rows(tmp_path / "a")) == 12

    script = Script(always_empty=("18 + 17",))  # one prompt always answered empty
    args = ["generate", "-r", http_recipe(tmp_path, server(script), empty_retries=2), "--out", tmp_path / "b"]
    result = run_cli(*args)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "2 requests answered empty 3 times each" in line and "rerun" in line
    got = rows(tmp_path / "b")
    assert len(got) == 8 and all(r["completion"] for r in got)  # shards 1 and 2; shard 0 waits
    script.always_empty = ()
    before = len(script.requests)
    assert run_cli(*args).returncode == 0
    assert len(script.requests) - before == 2  # only the two missing samples: the rest was journaled
    assert manifest(tmp_path / "b")["errors"] == 2 and len(rows(tmp_path / "b")) == 12


def test_two_servers_one_killed_halfway(tmp_path, server):
    other = Script(delay=0.05)
    doomed = subprocess.Popen([sys.executable, str(ROOT / "tests" / "openai_server.py"), "--delay", "0.05"],
                              stdout=subprocess.PIPE, text=True)
    try:
        doomed_url = doomed.stdout.readline().strip()
        recipe = http_recipe(tmp_path, [doomed_url, server(other)], limit=16, concurrency=2, drain=0.5)
        proc = start_cli("generate", "-r", recipe, "--out", tmp_path / "r")
        deadline = time.monotonic() + 60
        while other.paid < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None
        kill_9(doomed)
        assert proc.wait(timeout=120) == 0
    finally:
        if doomed.poll() is None:
            kill_9(doomed)
    got = rows(tmp_path / "r")
    assert len(got) == len({KEY(r) for r in got}) == 32
    assert 16 <= other.paid < 32  # the other server carried the rest, not everything
    assert manifest(tmp_path / "r")["errors"] == 0


def test_a_key_missing_for_one_of_several_servers(tmp_path, server):
    urls = [server(Script()), server(Script())]
    recipe = http_recipe(tmp_path, urls, api_key_env=["DISTILL_TEST_KEY_A", "DISTILL_TEST_KEY_B"])
    env = {k: v for k, v in os.environ.items() if k != "DISTILL_TEST_KEY_B"}
    env["DISTILL_TEST_KEY_A"] = "sk-a"
    result = subprocess.run([sys.executable, "-m", "distill", "generate", "-r", recipe, "--out", str(tmp_path / "r")],
                            capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert f"set the API key in $DISTILL_TEST_KEY_B (for {urls[1]})" in line and "sk-a" not in line
    recipe = http_recipe(tmp_path, urls, api_key_env=["DISTILL_TEST_KEY_A"])
    result = run_cli("generate", "-r", recipe, "--out", tmp_path / "r")
    assert result.returncode == 2 and "one per server" in result.stderr


def test_streaming_times_out_from_the_last_token_not_the_start(tmp_path, server):
    plain = Script()
    assert run_cli("generate", "-r", http_recipe(tmp_path / "p", server(plain), limit=2),
                   "--out", tmp_path / "plain").returncode == 0
    # each answer comes in about 13 chunks 0.1 s apart: 1.3 s, over twice the 0.5 s timeout;
    # one stalls after 2 chunks for longer than the timeout
    script = Script(["stall"], stream_gap=0.1, hang=1.5)
    recipe = http_recipe(tmp_path / "s", server(script), limit=2, stream=True, timeout=0.5)
    result = run_cli("generate", "-r", recipe, "--out", tmp_path / "stream")
    assert result.returncode == 0, result.stderr
    assert all(b.get("stream") for b in script.requests)
    assert manifest(tmp_path / "stream")["retries"] == {"idle": 1}
    assert completions(tmp_path / "stream") == completions(tmp_path / "plain")
    assert {(r["prompt_tokens"], r["completion_tokens"]) for r in rows(tmp_path / "stream")} == {(12, 9)}


def test_the_bundled_self_hosted_card_lists_two_servers_and_a_token_variable():
    from distill.backends.openai import endpoint_for
    from distill.config import TeacherCard
    from distill.recipes import load_card

    endpoint = endpoint_for(load_card(TeacherCard, "self-hosted"))
    assert len(endpoint.urls()) == 2 and endpoint.key_envs() == ("TEACHER_API_TOKEN",) * 2 and endpoint.stream


@pytest.mark.parametrize("engine, message", [
    ({"prices": {"input": -1.0}}, "engine.prices.input must be 0 or more"),
    ({"mode": "batches"}, "engine.mode must be online or batch"),
    ({"rpm": 0}, "engine.rpm must be positive"),
    ({"base_url": []}, "engine.base_url is an empty list"),
])
def test_bad_served_teacher_settings_are_one_line(tmp_path, engine, message):
    recipe = http_recipe(tmp_path, "http://127.0.0.1:9/v1", **engine)
    result = run_cli("generate", "-r", recipe, "--out", tmp_path / "r")
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert message in line


def test_a_negative_budget_is_one_line(tmp_path):
    result = run_cli("generate", "-r", http_recipe(tmp_path, "http://127.0.0.1:9/v1"), "--out", tmp_path / "r",
                     "--max-cost", "-1")
    assert result.returncode == 2 and "max_cost must be 0 or more" in result.stderr
