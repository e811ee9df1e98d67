"""End to end through the CLI: a tiny random-weight Qwen2 (seconds), the real SmolLM2 (minutes)."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli


def test_run_tiny_qwen2_end_to_end(tmp_path, tiny_recipe):
    out = tmp_path / "run"
    result = run_cli("run", "-r", tiny_recipe(), "--out", out)
    assert result.returncode == 0, result.stderr
    assert "distill run" in result.stdout and "kept       12 of 12" in result.stdout
    assert (out / "traces" / "manifest.json").is_file()
    assert (out / "filtered" / "report.json").is_file()
    assert (out / "student" / "adapter_model.safetensors").is_file()
    summary = json.loads((out / "student" / "train_summary.json").read_text())
    assert summary["steps"] == 2 and summary["supervised_tokens"] > 0
    # a second run finds every stage complete and redoes nothing
    again = run_cli("run", "-r", tiny_recipe(), "--out", out)
    assert again.returncode == 0, again.stderr
    for stage in ("generate", "filter", "train"):
        assert f"{stage}: " in again.stdout and "skipping" in again.stdout
    assert "samples, " not in again.stdout


def test_run_with_nothing_kept_ends_non_zero_with_what_to_check(tmp_path, tiny_recipe):
    recipe = tiny_recipe(filter={"verifiers": ["format", "math"], "reject_truncated": True})
    result = run_cli("run", "-r", recipe, "--out", tmp_path / "run")
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "the filter kept 0 of 12 rows (" in line and "see " in line and "report.json" in line
    assert not (tmp_path / "run" / "student").exists()  # nothing trained on nothing
    # the same from `distill filter` on its own, rows and report written all the same
    again = run_cli("filter", "--out", tmp_path / "run", "-r", recipe)
    assert again.returncode == 1 and "the filter kept 0 of 12 rows" in again.stderr
    assert (tmp_path / "run" / "filtered" / "report.json").is_file()


@pytest.mark.slow
def test_quickstart_with_the_real_smollm2(tmp_path, smollm2_dir):
    out = tmp_path / "quickstart"
    result = run_cli("run", "-r", "quickstart", "--out", out, "--set", "data.0.limit=16", "--set", "train.epochs=1",
                     timeout=1200)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "traces" / "manifest.json").read_text())
    assert manifest["counts"]["samples"] == 32
    report = json.loads((out / "filtered" / "report.json").read_text())
    assert report["rows_in"] == 32 and report["kept"] > 0, report  # SmolLM2 gets some sums right
    assert report["kept"] + report["rejected"] == 32
    assert (out / "student" / "adapter_model.safetensors").is_file()
    assert "distill run" in result.stdout and "loss" in result.stdout


def test_run_checks_every_section_before_generating(tmp_path, tiny_recipe):
    recipe = tiny_recipe(filter={"verifiers": ["formt"]})
    result = run_cli("run", "-r", recipe, "--out", tmp_path / "run")
    assert result.returncode == 2 and "unknown verifier 'formt'" in result.stderr
    assert not (tmp_path / "run" / "traces").exists()
