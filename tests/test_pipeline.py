"""`distill run` through eval: the stages in order, each skipped when complete, and a run killed
(kill -9, no cleanup) during each stage in turn that, rerun, ends with the uninterrupted run's
outputs."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from helpers import ROOT, run_cli

# One process that runs the pipeline and SIGKILLs itself at a chosen point of a chosen stage:
# right after the K-th shard of that stage is marked done (generate, filter, eval), or at
# training step K once a checkpoint exists. In-process, so the point is exact, not a race.
KILL_IN_STAGE = r"""
import os, signal, sys
from pathlib import Path
from transformers import TrainerCallback
from distill import pipeline, shards
from distill.train import stage as train
from distill.recipes import load_recipe

recipe, out, stage, k = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
folders = {"generate": out / "traces", "filter": out / "filtered" / "_pass1"}

mark = shards.mark_done
def mark_then_kill(folder, index):
    mark(folder, index)
    evals = {"eval": out / "eval", "base": out / "base" / "eval"}  # the trained student's, the base's
    if (folder == folders.get(stage) or folder.parent == evals.get(stage)) and len(shards.done(folder)) == k:
        os.kill(os.getpid(), signal.SIGKILL)
shards.mark_done = mark_then_kill

class Kill(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if stage == "train" and state.global_step == k and any(Path(args.output_dir).glob("checkpoint-*")):
            os.kill(os.getpid(), signal.SIGKILL)
quiet = train._quiet_logs
train._quiet_logs = lambda trainer: (quiet(trainer), trainer.add_callback(Kill()))

pipeline.run_pipeline(load_recipe(recipe), out)
print("finished without being killed")
"""


@pytest.fixture
def eval_recipe(tiny_recipe):
    return tiny_recipe(
        train={"max_steps": 4, "batch_size": 2, "save_steps": 2, "logging_steps": 1},
        eval={"benchmarks": [{"name": "arithmetic-test", "limit": 4}], "backend": "hf", "max_tokens": 8,
              "shard_size": 2, "workers": 1},
    )


def outputs(run) -> dict:
    """What a run leaves that a kill must not change: every stage's rows, the student's weights
    and the scores."""
    from safetensors.torch import load_file

    def rows(folder, key=("id", "sample_idx")):
        table = pq.ParquetDataset(folder).read().to_pylist()
        return sorted(table, key=lambda r: tuple(r[k] for k in key))

    scores = json.loads((run / "eval" / "scores.json").read_text())
    return {
        "traces": rows(run / "traces" / "data"),
        "kept": rows(run / "filtered" / "data"),
        "rejected": rows(run / "filtered" / "rejected") if (run / "filtered" / "rejected").is_dir() else [],
        "report": json.loads((run / "filtered" / "report.json").read_text())["reasons"],
        "weights": load_file(run / "student" / "adapter_model.safetensors"),
        "steps": json.loads((run / "student" / "train_summary.json").read_text())["steps"],
        # the evaluated model is named by its folder (this run's student): compare all but that
        "samples": [{k: v for k, v in r.items() if k not in ("teacher", "gen_config")}
                    for r in pq.read_table(run / "eval" / "arithmetic-test" / "scored.parquet").to_pylist()],
        "scores": scores["benchmarks"],
        "base": json.loads((run / "base" / "eval" / "scores.json").read_text())["benchmarks"],
        "base_samples": [{k: v for k, v in r.items() if k not in ("teacher", "gen_config")} for r in
                         pq.read_table(run / "base" / "eval" / "arithmetic-test" / "scored.parquet").to_pylist()],
    }


def test_run_goes_through_eval_and_skips_every_finished_stage(tmp_path, eval_recipe):
    out = tmp_path / "run"
    result = run_cli("run", "-r", eval_recipe, "--out", out)
    assert result.returncode == 0, result.stderr
    scores = json.loads((out / "eval" / "scores.json").read_text())
    bench = scores["benchmarks"]["arithmetic-test"]
    assert bench["problems"] == 4 and bench["n"] == 1 and bench["samples"] == 4
    assert scores["model"].endswith("+ adapter " + str((out / "student").resolve()))
    assert "scored     arithmetic-test: pass@1" in result.stdout
    # the student before training, once, on the same benchmark and settings, in its own folder
    base = json.loads((out / "base" / "eval" / "scores.json").read_text())
    assert "adapter" not in base["model"] and base["protocol"] == scores["protocol"]
    b = base["benchmarks"]["arithmetic-test"]
    assert (b["problems"], b["n"], b["samples"]) == (4, 1, 4)
    diff, se = bench["pass@1"] - b["pass@1"], (bench["pass@1_se"] ** 2 + b["pass@1_se"] ** 2) ** 0.5
    assert (f"base {b['pass@1']:.1f} ± {b['pass@1_se']:.1f} (untrained), difference {diff:+.1f} ± {se:.1f}"
            in result.stdout)
    assert "[done before]" not in result.stdout
    manifest = json.loads((out / "eval" / "arithmetic-test" / "manifest.json").read_text())
    assert manifest["stage"] == "eval" and manifest["counts"]["samples"] == 4
    resolved = (out / "recipe.resolved.yaml").read_text()
    assert "arithmetic-test" in resolved  # the eval section is part of the run's record
    again = run_cli("run", "-r", eval_recipe, "--out", out)
    assert again.returncode == 0, again.stderr
    for stage in ("generate", "filter", "train", "eval"):
        assert f"{stage}: " in again.stdout
    assert f"eval: {out / 'eval'} is complete; skipping" in again.stdout
    assert f"eval of the base student: {out / 'base' / 'eval'} is complete; skipping" in again.stdout
    assert "samples to generate" not in again.stdout
    # stages found complete say so in the summary instead of "[0 s]"
    assert again.stdout.count("[done before]") == 5 and "[0 s]" not in again.stdout
    # a changed eval section on a started eval is refused, naming the key
    changed = run_cli("run", "-r", eval_recipe, "--out", out, "--set", "eval.temperature=0")
    assert changed.returncode == 2 and "eval stage was started with eval.temperature=0.6, now 0" in changed.stderr


def test_run_killed_during_each_stage_then_rerun_gives_the_uninterrupted_outputs(tmp_path, eval_recipe):
    reference = tmp_path / "reference"
    result = run_cli("run", "-r", eval_recipe, "--out", reference)
    assert result.returncode == 0, result.stderr
    want = outputs(reference)
    assert len(want["traces"]) == 12 and want["steps"] == 4 and len(want["samples"]) == 4
    assert len(want["base_samples"]) == 4

    for stage, k in (("generate", 1), ("filter", 1), ("train", 3), ("eval", 1), ("base", 1)):
        out = tmp_path / f"killed-in-{stage}"
        killed = subprocess.run([sys.executable, "-c", KILL_IN_STAGE, str(eval_recipe), str(out), stage, str(k)],
                                cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert killed.returncode == -9, f"{stage}: {killed.stdout[-1000:]} {killed.stderr[-2000:]}"
        # killed mid-stage: that stage has not finished
        unfinished = {"generate": out / "traces" / "manifest.json", "filter": out / "filtered" / "manifest.json",
                      "train": out / "student" / "train_summary.json", "eval": out / "eval" / "scores.json",
                      "base": out / "base" / "eval" / "scores.json"}
        assert not unfinished[stage].exists(), stage
        rerun = run_cli("run", "-r", eval_recipe, "--out", out)
        assert rerun.returncode == 0, f"{stage}: {rerun.stderr[-2000:]}"
        got = outputs(out)
        for key in ("traces", "kept", "rejected", "report", "steps", "samples", "scores", "base", "base_samples"):
            assert got[key] == want[key], f"killed in {stage}: {key} differs"
        weights = got["weights"]
        assert weights.keys() == want["weights"].keys()
        assert all((weights[n] - want["weights"][n]).abs().max() < 1e-5 for n in weights), stage


@pytest.mark.parametrize("section, message", [
    ({"benchmarks": ["gsm8k-tset"]}, "gsm8k-tset"),
    ({"benchmarks": [{"name": "arithmetic-test", "n": 0}]}, "eval.benchmarks.0.n must be at least 1"),
    ({"benchmarks": ["arithmetic-test", "arithmetic-test"]}, "eval.benchmarks names a benchmark twice"),
    ({"benchmarks": [{"limit": 3}]}, "eval.benchmarks.0.name must name a benchmark"),
    ({"benchmarks": ["arithmetic-test"], "temprature": 0.6}, "unknown key 'temprature' in eval (did you mean 'temperature'?)"),
])
def test_a_bad_eval_section_is_one_line_before_any_work(tmp_path, tiny_recipe, section, message):
    out = tmp_path / "run"
    result = run_cli("run", "-r", tiny_recipe(eval=section), "--out", out)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (out / "traces").exists()  # checked before generation starts


def test_a_benchmark_no_verifier_scores_is_refused_before_any_work(tmp_path, tiny_recipe):
    from helpers import write_yaml

    card = write_yaml(tmp_path / "essays.yaml", {"generator": "arithmetic", "domain": "general"})
    result = run_cli("run", "-r", tiny_recipe(eval={"benchmarks": [str(card)]}), "--out", tmp_path / "run")
    assert result.returncode == 2 and "no verifier scores domain 'general'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "run" / "traces").exists()


def test_eval_section_mistakes_found_only_by_loading_are_caught_before_generating(tmp_path, tiny_recipe):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    for section, message in (
        ({"benchmarks": [{"name": "gsm8k-test", "path": str(tmp_path / "missing.jsonl")}]}, "missing.jsonl: no such file"),
        ({"benchmarks": [{"name": "gsm8k-test", "path": str(empty)}]}, "empty.jsonl: the file is empty"),
    ):
        out = tmp_path / "run"
        result = run_cli("run", "-r", tiny_recipe(eval=section), "--out", out)
        assert result.returncode != 0 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and not (out / "traces").exists()


@pytest.mark.vllm
def test_an_eval_engine_key_vllm_does_not_know_is_caught_before_generating(tmp_path, tiny_recipe):
    pytest.importorskip("vllm")
    section = {"benchmarks": ["arithmetic-test"], "backend": "vllm", "engine": {"enforce_eagr": True}}
    result = run_cli("run", "-r", tiny_recipe(eval=section), "--out", tmp_path / "run")
    assert result.returncode == 2 and "eval.engine: 'enforce_eagr' is not a vLLM engine argument " \
        "(did you mean 'enforce_eager'?)" in result.stderr, result.stderr
    assert not (tmp_path / "run" / "traces").exists()


def test_benchmarks_may_be_one_comma_separated_string_as_on_the_command_line():
    from distill.recipes import load_recipe

    recipe = load_recipe("quickstart", ["eval.benchmarks=math500, gsm8k-test"])
    assert [b.name for b in recipe.eval.benchmarks] == ["math500", "gsm8k-test"]


@pytest.mark.parametrize("command", [["run", "-r", "quickstart"], ["generate", "-r", "quickstart"],
                                     ["eval", "--model", "smollm2-135m", "-b", "arithmetic-test"]])
def test_an_out_that_cannot_be_a_folder_is_one_line(tmp_path, command):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for out, message in ((a_file, "is a file; give a folder"), (a_file / "sub", "is not a folder")):
        result = run_cli(*command, "--out", out)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
