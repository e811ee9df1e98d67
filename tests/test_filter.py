"""filter: labelled traces in, kept rows with messages and rejects with reasons out."""

from __future__ import annotations

import json
import time

import pyarrow.parquet as pq
import pytest
from helpers import run_cli, trace, write_traces

from distill import shards
from distill.recipes import load_recipe
from distill.errors import UserError
from distill.filter.stage import run_filter

# (row, expected reject reason or None for kept)
LABELLED = [
    (trace("a", "72", "<think>\n48 + 24 = 72\n</think>\n\nThe answer is \\boxed{72}."), None),
    (trace("a", "72", "<think>\n48 + 25\n</think>\n\n\\boxed{73}", sample_idx=1), "wrong_answer"),
    (trace("b", "0.5", "<think>\nhalf\n</think>\n\n\\boxed{\\frac{1}{2}}"), None),
    (trace("c", "1000", "<think>\nthousand\n</think>\n\n\\boxed{1,000}"), None),
    (trace("d", "7", "<think>\n3 + 4 = 7 and then", finish_reason="length"), "truncated"),
    (trace("e", "7", "<think>\n3 + 4 = 7 so \\boxed{7}"), "think_unclosed"),
    (trace("f", "7", "<think>\n3 + 4 = 7\n</think>\n\n"), "empty_response"),
    (trace("g", "9", "3 times 3 is 9, so the answer is \\boxed{9}."), None),  # no think: allowed by default
    (trace("h", None, "<think>\nx\n</think>\n\n\\boxed{4}"), "no_gold"),
    (trace("i", "12", "<think>\nhmm\n</think>\n\nI do not know."), "no_answer"),
    (trace("j", "1", "<think>\nbig\n</think>\n\n\\boxed{9^{9^{9^{9}}}}"), "explosive"),
    (trace("k", "5000", "<think>\nsum\n</think>\n\n\\boxed{" + "+".join(["1"] * 5000) + "}"), "explosive"),
    (trace("l", "4", "<think>\n2+2\n</think>\n\n\\boxed{4}"), None),
]


def expected(label, reason):
    return reason in ("timeout", "wrong_answer", "verifier_error", "no_answer") if label == "explosive" else reason == label


@pytest.fixture
def traces(tmp_path):
    rows = [r for r, _ in LABELLED]
    return write_traces(tmp_path / "traces_in", [rows[:6], rows[6:]])


def test_labelled_traces(tmp_path, traces):
    recipe = load_recipe(None, ["filter.timeout=3", "filter.workers=2"])
    start = time.monotonic()
    result = run_filter(recipe, traces, tmp_path / "run")
    assert time.monotonic() - start < 60
    assert result["complete"]
    stage = tmp_path / "run" / "filtered"
    kept = pq.ParquetDataset(stage / "data").read().to_pylist()
    rejected = pq.ParquetDataset(stage / "rejected").read().to_pylist()
    decided = {(r["id"], r["sample_idx"]): None for r in kept}
    decided.update({(r["id"], r["sample_idx"]): r["reject_reason"] for r in rejected})
    assert len(decided) == len(LABELLED) == len(kept) + len(rejected)
    for row, label in LABELLED:
        reason = decided[(row["id"], row["sample_idx"])]
        assert reason == label if label != "explosive" else expected(label, reason), (row["id"], reason)
    report = json.loads((stage / "report.json").read_text())
    assert report["rows_in"] == 13 and report["kept"] == len(kept) == 5
    assert sum(report["reasons"].values()) == 8
    assert report["by_source"]["handwritten"]["kept"] == 5


def test_kept_rows_carry_messages_that_render_with_the_student_template(tmp_path, traces, smollm2_dir):
    import datasets
    from transformers import AutoTokenizer

    run_filter(load_recipe(None, ["filter.timeout=3"]), traces, tmp_path / "run")
    ds = datasets.load_dataset("parquet", data_dir=str(tmp_path / "run" / "filtered" / "data"), split="train")
    assert ds.num_rows == 5
    row = next(r for r in ds if r["id"] == "a")
    assert row["reasoning"] == "48 + 24 = 72" and row["extracted_answer"] == "72"
    assert row["verifier"] == "format,math,language,repetition,length"
    user, assistant = row["messages"]
    assert user["role"] == "user" and user["content"].startswith("Problem a") and "\\boxed{}" in user["content"]
    assert assistant["content"] == "<think>\n48 + 24 = 72\n</think>\n\nThe answer is \\boxed{72}."
    text = AutoTokenizer.from_pretrained(smollm2_dir).apply_chat_template(row["messages"], tokenize=False)
    assert "<|im_start|>assistant\n<think>\n48 + 24 = 72\n</think>" in text
    plain = next(r for r in ds if r["id"] == "g")
    assert plain["messages"][1]["content"] == "3 times 3 is 9, so the answer is \\boxed{9}."
    rejected = datasets.load_dataset("parquet", data_dir=str(tmp_path / "run" / "filtered" / "rejected"), split="train")
    assert rejected.num_rows == 8 and None not in rejected["reject_reason"]
    # the stage folder itself carries a dataset card: kept rows by default, rejects as a config
    stage = str(tmp_path / "run" / "filtered")
    assert datasets.load_dataset(stage, split="train")["id"] == ds["id"]
    assert datasets.load_dataset(stage, "rejected", split="train").num_rows == 8


def test_rerun_resumes_by_file(tmp_path, traces):
    recipe = load_recipe(None, ["filter.timeout=3"])
    run_filter(recipe, traces, tmp_path / "run")
    stage = tmp_path / "run" / "filtered"
    (stage / "_done" / "00001").unlink()
    (stage / "manifest.json").unlink()
    first = pq.ParquetDataset(stage / "data").read().to_pylist()
    result = run_filter(recipe, traces, tmp_path / "run")
    assert result["kept"] == 5 and pq.ParquetDataset(stage / "data").read().to_pylist() == first


def test_require_think_recipe_setting(tmp_path, traces):
    result = run_filter(load_recipe(None, ["filter.require_think=true", "filter.timeout=3"]), traces, tmp_path / "r")
    assert result["reasons"].get("no_think") == 1 and result["kept"] == 4


def test_unfinished_generation_is_refused(tmp_path):
    stage = tmp_path / "run" / "traces"
    write_traces(stage / "data", [[trace("a", "1", "\\boxed{1}")]])
    shards.mark_done(stage, 0)
    with pytest.raises(UserError, match=r"traces: not finished \(1 shards done, no manifest\); rerun the same `distill generate`"):
        run_filter(load_recipe(None), tmp_path / "run", tmp_path / "run")


def test_cli_errors_are_one_line(tmp_path):
    # missing folder
    result = run_cli("filter", tmp_path / "nothere", "--out", tmp_path / "o")
    assert result.returncode == 1 and result.stderr.strip() == f"error: {tmp_path / 'nothere'}: no such folder"
    # truncated shard
    folder = write_traces(tmp_path / "t", [[trace("a", "1", "\\boxed{1}")] * 50])
    shard = folder / "shard-00000.parquet"
    shard.write_bytes(shard.read_bytes()[:200])
    result = run_cli("filter", folder, "--out", tmp_path / "o")
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "shard-00000.parquet: not a readable Parquet file" in result.stderr
    # missing column
    import pyarrow as pa

    bad = tmp_path / "bad"
    shards.write_table(bad / "shard-00000.parquet", pa.table({"id": ["a"], "problem": ["p"]}))
    result = run_cli("filter", bad, "--out", tmp_path / "o2")
    assert result.returncode == 1 and "missing column 'sample_idx'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    # unknown verifier
    result = run_cli("filter", folder, "--out", tmp_path / "o3", "--set", "filter.verifiers=[maths]")
    assert result.returncode == 2 and "unknown verifier 'maths'" in result.stderr


def test_cli_prints_the_table(tmp_path, traces):
    result = run_cli("filter", traces, "--out", tmp_path / "o", "--set", "filter.timeout=3")
    assert result.returncode == 0, result.stderr
    assert "kept" in result.stdout and "dropped: wrong_answer" in result.stdout


def test_rows_the_pool_never_answers_are_not_kept():
    from distill.verify.shard import _verify_shard

    class SilentPool:  # a broken pool that yields nothing
        def imap(self, tasks):
            list(tasks)
            return iter(())

    rows = [trace("a", "72", "<think>x</think>\\boxed{73}")]
    with pytest.raises(RuntimeError, match="no verdict for 1 rows"):
        _verify_shard(rows, ("format", "math"), {"require_think": False, "reject_truncated": True}, SilentPool())
