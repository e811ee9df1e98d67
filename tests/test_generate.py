"""generate: shard plan, resume, provenance, the transformers backend, kill -9 and rerun."""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest
from helpers import kill_9, run_cli, start_cli, wait_for_done

from distill import shards
from distill.recipes import load_recipe
from distill.errors import ConfigError, UserError
from distill.generate.stage import run_generate


def fake_recipe(*extra: str):
    return load_recipe(
        "quickstart",
        ["generate.backend=fake", "data.0.limit=10", "generate.shard_size=3", "generate.n=2", *extra],
    )


def read_traces(run):
    return pq.ParquetDataset(run / "traces" / "data").read().to_pylist()


def pairs(rows):
    return sorted((r["id"], r["sample_idx"]) for r in rows)


def test_writes_shards_manifest_and_provenance(tmp_path):
    result = run_generate(fake_recipe(), tmp_path)
    assert result["complete"] and result["samples"] == 20 and result["shards"] == 4
    stage = tmp_path / "traces"
    assert shards.done(stage) == {0, 1, 2, 3}
    assert (tmp_path / "recipe.resolved.yaml").is_file()
    manifest = json.loads((stage / "manifest.json").read_text())
    assert len(manifest["plan"]) == 4 and manifest["counts"]["samples"] == 20
    rows = read_traces(tmp_path)
    assert len(set(pairs(rows))) == 20 == len(rows)
    row = rows[0]
    config = json.loads(row["gen_config"])
    assert config["n"] == 2 and config["temperature"] == 0.6 and config["seed"] == 0
    assert "{problem}" in config["template"]["user"]
    assert row["teacher"].startswith("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert row["sample_idx"] in (0, 1) and row["finish_reason"] == "stop"


def test_rerun_is_a_no_op_and_lost_shards_are_redone(tmp_path):
    run_generate(fake_recipe(), tmp_path)
    before = read_traces(tmp_path)
    again = run_generate(fake_recipe(), tmp_path)
    assert again["written_now"] == 0
    # as if killed between the shard file and its marker: the shard is written again, once
    (tmp_path / "traces" / "_done" / "00001").unlink()
    (tmp_path / "traces" / "manifest.json").unlink()
    again = run_generate(fake_recipe(), tmp_path)
    assert again["written_now"] == 6
    assert read_traces(tmp_path) == before


def test_changed_config_is_refused_once_started(tmp_path):
    run_generate(fake_recipe(), tmp_path)
    with pytest.raises(ConfigError, match=r"generate stage was started with generate.n=2, now 3"):
        run_generate(fake_recipe("generate.n=3"), tmp_path)
    # throughput-only settings may change on a resume
    run_generate(fake_recipe("generate.batch_size=2"), tmp_path)


def test_changed_prompts_are_refused(tmp_path):
    run_generate(fake_recipe("generate.limit=6"), tmp_path)
    (tmp_path / "traces" / "manifest.json").unlink()
    # same config, but the prompt source now yields other problems for the same shards
    resolved = tmp_path / "recipe.resolved.yaml"
    recipe = fake_recipe("generate.limit=6", "data.0.card.params.seed=5")
    resolved.write_text(resolved.read_text().replace("seed: 0\n", "seed: 5\n", 1))
    with pytest.raises(UserError, match="holds other prompts than the plan"):
        run_generate(recipe, tmp_path)


def test_rank_and_world_size_split_the_shards(tmp_path):
    first = run_generate(fake_recipe(), tmp_path, rank=0, world_size=2)
    assert not first["complete"] and shards.done(tmp_path / "traces") == {0, 2}
    second = run_generate(fake_recipe(), tmp_path, rank=1, world_size=2)
    assert second["complete"] and second["samples"] == 20


def test_transformers_backend_on_a_tiny_qwen2(tmp_path, tiny_recipe):
    recipe = load_recipe(str(tiny_recipe()), ["generate.limit=3"])
    result = run_generate(recipe, tmp_path / "a")
    assert result["complete"] and result["samples"] == 6
    rows = read_traces(tmp_path / "a")
    assert pairs(rows) == sorted((r["id"], k) for r in rows[::2] for k in range(2))
    for r in rows:
        assert r["finish_reason"] in ("stop", "length") and 1 <= r["completion_tokens"] <= 8
        assert r["prompt_tokens"] > 10
    # the same seed gives the same samples, shard by shard
    run_generate(recipe, tmp_path / "b")
    assert [r["completion"] for r in read_traces(tmp_path / "b")] == [r["completion"] for r in rows]


def test_kill_9_then_rerun_gives_exactly_the_uninterrupted_rows(tmp_path, tiny_recipe):
    # one prompt per shard, 48 tokens per sample: slow enough that the kill lands mid-run
    recipe = tiny_recipe(
        data=[{"card": "arithmetic", "limit": 16}], generate={"shard_size": 1, "batch_size": 1, "max_tokens": 48}
    )

    reference = run_cli("generate", "-r", recipe, "--out", tmp_path / "ref")
    assert reference.returncode == 0, reference.stderr

    args = ["generate", "-r", recipe, "--out", tmp_path / "killed"]
    proc = start_cli(*args)
    done_dir = tmp_path / "killed" / "traces" / "_done"
    wait_for_done(proc, done_dir, 3, timeout=300)
    kill_9(proc)
    killed_at = len(os.listdir(done_dir))
    assert killed_at < 16
    assert not (tmp_path / "killed" / "traces" / "manifest.json").exists()

    rerun = run_cli(*args)
    assert rerun.returncode == 0, rerun.stderr
    ref_rows, rows = read_traces(tmp_path / "ref"), read_traces(tmp_path / "killed")
    assert pairs(rows) == pairs(ref_rows) and len(set(pairs(rows))) == len(rows) == 32
    assert {(r["id"], r["sample_idx"]): r["completion"] for r in rows} == {
        (r["id"], r["sample_idx"]): r["completion"] for r in ref_rows
    }


def test_a_deleted_damaged_shard_is_written_again(tmp_path):
    run_generate(fake_recipe(), tmp_path)
    before = read_traces(tmp_path)
    damaged = tmp_path / "traces" / "data" / shards.shard_name(2)
    damaged.write_bytes(damaged.read_bytes()[:100])
    with pytest.raises(UserError, match="not a readable Parquet file.*delete it and rerun"):
        run_generate(fake_recipe(), tmp_path)
    damaged.unlink()  # what the message says to do; the rerun then redoes that shard alone
    result = run_generate(fake_recipe(), tmp_path)
    assert result["written_now"] == 6 and result["complete"]
    assert read_traces(tmp_path) == before


def test_bad_scale_out_arguments(tmp_path):
    with pytest.raises(ConfigError, match="--world-size must be at least 1, got 0"):
        run_generate(fake_recipe(), tmp_path, rank=0, world_size=0)
    with pytest.raises(ConfigError, match=r"--rank must be in 0..1 for --world-size 2, got 2"):
        run_generate(fake_recipe(), tmp_path, rank=2, world_size=2)


def test_data_parallel_runs_ranks_as_processes(tmp_path):
    from helpers import run_cli

    result = run_cli("generate", "-r", "quickstart", "--out", tmp_path, "--data-parallel", "2",
                     "--set", "generate.backend=fake", "--set", "data.0.limit=10", "--set", "generate.shard_size=2",
                     "--set", "teacher.engine.delay=0.01")
    assert result.returncode == 0, result.stderr
    assert "rank 0 started" in result.stdout and "rank 1 started" in result.stdout
    assert result.stdout.count("to do here") == 2  # each rank took its own shards
    assert "traces: 20 samples" in result.stdout  # 10 prompts × n=2
    assert len(set(pairs(read_traces(tmp_path)))) == 20


def test_a_different_engine_under_the_same_recipe_is_refused(tmp_path, monkeypatch):
    from distill import engines

    monkeypatch.setitem(engines.BACKENDS, "fake2", engines.BACKENDS["fake"])
    run_generate(fake_recipe(), tmp_path)
    (tmp_path / "traces" / "_done" / "00001").unlink()
    # `auto` now resolves to another engine (say vLLM was installed since): rows would mix
    monkeypatch.setattr(engines, "resolve_name", lambda name, teacher: "fake2")
    with pytest.raises(ConfigError, match="written with backend='fake', this run would use 'fake2'"):
        run_generate(fake_recipe(), tmp_path)


def test_progress_line_counts():
    from distill.ui import GenProgress

    progress = GenProgress(prompts_total=2, samples_total=4)
    progress.sample(10)
    progress.sample(20, truncated=True)
    progress.prompts_done(1)
    progress.retry("429")
    progress.retry("429")
    line = progress.line()
    assert "1/2 prompts" in line and "2/4 samples" in line and "truncated 50.0%" in line and "retries 429×2" in line
    assert line.startswith("ETA ")
    retries, errors = progress.drain()
    assert retries == {"429": 2} and errors == 0
    assert progress.drain() == ({}, 0)  # drained once only


def test_progress_counts_tokens_before_any_sample_finishes(monkeypatch):
    """A long trace shows speed and an ETA while it is generated, and the line fits 80 columns."""
    from distill import ui

    clock = [100.0]
    monkeypatch.setattr(ui.time, "monotonic", lambda: clock[0])
    progress = ui.GenProgress(prompts_total=64, samples_total=128, max_tokens=1000)
    clock[0] += 10
    assert progress.line().startswith("ETA ?")  # nothing generated yet
    for k in range(4):
        progress.partial(("r", k), 250)  # 1,000 tokens in 10 s, no sample finished
    line = progress.line(80)
    assert "100 tok/s" in line and len(line) <= 80
    # bounded by max_tokens: 128 samples × 1,000 tokens − 1,000 generated, at 100 tok/s
    assert line.startswith("ETA ≤21m10s")
    progress.sample(500, key=("r", 0))  # finished: its partial count is replaced, not added
    progress.sample(500, key=("r", 1))
    progress.discard(("r", 2))  # a failed attempt's tokens no longer count
    assert progress.tokens == 1000 and progress._live == {("r", 3): (250, 1)}
    # mean 500 a sample: 125 not started × 500, the running one to 500 (250 more), at 125 tok/s
    assert progress.eta() == ui.duration((125 * 500 + 250) / 125)
    # a running sample past the finished mean: it is expected to double (within max_tokens), and
    # the samples not started to be as long as it is
    progress.partial(("r", 3), 900)
    assert progress.eta() == ui.duration((125 * 900 + 100) / ((1000 + 900) / 10))
    progress.partial(("r", 3), 400)
    assert progress.eta() == ui.duration((125 * 500 + 400) / ((1000 + 400) / 10))
    progress.retry("429")
    progress.set_budget(5.0, 1.0, True)
    narrow = progress.line(40)
    assert len(narrow) <= 40 and narrow.startswith("ETA ") and "samples" in narrow
    assert "retries 429×1" in progress.line()  # the full line keeps every field
    progress.pacing(rpm=300, concurrency=2, max_concurrency=4)
    report = progress.report("  shard 3/64 written · ").splitlines()
    assert len(report) >= 2 and all(len(line) <= 80 for line in report)  # a log keeps every field too
    assert report[0].startswith("  shard 3/64 written · ETA ") and "retries 429×1" in "".join(report)
    assert "rpm ≤300" in "".join(report) and report[1].startswith("      ")


def test_transformers_backend_reports_tokens_each_decoding_step(tmp_path, tiny_recipe, monkeypatch):
    from distill import ui

    seen = []

    class Recording(ui.GenProgress):
        def partial(self, key, tokens):
            seen.append((key, tokens, self.samples))
            super().partial(key, tokens)

    monkeypatch.setattr(ui, "GenProgress", Recording)
    recipe = load_recipe(str(tiny_recipe(generate={"backend": "hf", "n": 2, "shard_size": 4, "batch_size": 4},
                                         data=[{"card": "arithmetic", "limit": 4}])))
    run_generate(recipe, tmp_path / "run")
    rows = read_traces(tmp_path / "run")
    assert len(rows) == 8
    # 4 prompts × 2 samples decoded together: 8 rows counted step by step before any sample was
    assert {key for key, _, done in seen if done == 0} == {("hf", r) for r in range(8)}
    assert max(tokens for _, tokens, _ in seen) == max(r["completion_tokens"] for r in rows)


def test_countdown_gives_the_eta_from_the_time_per_unit(monkeypatch):
    from distill import ui

    clock = [0.0]
    monkeypatch.setattr(ui.time, "monotonic", lambda: clock[0])
    countdown = ui.Countdown(8, "files")
    clock[0] = 30.0
    assert countdown.tick() == "ETA 3m30s · 1/8 files"  # 30 s a file, 7 to go
    clock[0] = 40.0
    assert countdown.tick() == "ETA 2m00s · 2/8 files"  # 20 s a file, 6 to go
