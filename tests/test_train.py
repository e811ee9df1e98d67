"""train: LoRA SFT on kept rows, loss on the assistant turn only, clear errors."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from helpers import run_cli, trace, write_traces

from distill import schema, shards
from distill.recipes import load_recipe
from distill.errors import UserError
from distill.filter import run_filter
from distill.train import run_train

ROWS = [
    trace("a", "72", "<think>\n48 + 24 = 72\n</think>\n\nThe answer is \\boxed{72}."),
    trace("b", "9", "<think>\n3 times 3\n</think>\n\n\\boxed{9}"),
    trace("c", "4", "<think>\n2 + 2\n</think>\n\nSo \\boxed{4}."),
    trace("d", "5", "<think>\n2 + 3\n</think>\n\n\\boxed{5}"),
    trace("e", "5", "<think>\n2 + 2\n</think>\n\n\\boxed{4}"),  # wrong: filtered out
]


@pytest.fixture
def filtered_run(tmp_path):
    write_traces(tmp_path / "traces_in", [ROWS])
    run_filter(load_recipe(None, ["filter.timeout=5"]), tmp_path / "traces_in", tmp_path / "run")
    return tmp_path / "run"


def test_lora_trains_on_assistant_tokens_only(tiny_recipe, filtered_run, tiny_qwen2):
    from transformers import AutoTokenizer

    recipe = load_recipe(str(tiny_recipe()))
    summary = run_train(recipe, filtered_run, filtered_run, merge=True)
    student = filtered_run / "student"
    assert (student / "adapter_config.json").is_file() and (student / "adapter_model.safetensors").is_file()
    assert (student / "merged" / "config.json").is_file()
    assert summary["rows"] == 4 and summary["steps"] == 2 and summary["loss_first"] > 0
    # the supervised tokens are exactly the assistant turns as the chat template renders them
    tok = AutoTokenizer.from_pretrained(tiny_qwen2)
    import pyarrow.parquet as pq

    want = 0
    for row in pq.ParquetDataset(filtered_run / "filtered" / "data").read().to_pylist():
        prompt = tok.apply_chat_template(row["messages"][:1], add_generation_prompt=True, return_dict=True)["input_ids"]
        full = tok.apply_chat_template(row["messages"], return_dict=True)["input_ids"]
        assert full[: len(prompt)] == prompt
        want += len(full) - len(prompt)
    assert summary["supervised_tokens"] == want
    assert json.loads((student / "train_summary.json").read_text()) == summary
    log = json.loads((student / "train_log.json").read_text())
    assert any("loss" in e for e in log)
    # a rerun does not train again
    assert run_train(recipe, filtered_run, filtered_run) == summary


def test_merged_student_loads_and_generates(tiny_recipe, filtered_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_train(load_recipe(str(tiny_recipe())), filtered_run, filtered_run, merge=True)
    merged = filtered_run / "student" / "merged"
    model = AutoModelForCausalLM.from_pretrained(merged)
    tok = AutoTokenizer.from_pretrained(merged)
    out = model.generate(**tok("2 + 2 =", return_tensors="pt"), max_new_tokens=3, do_sample=False)
    assert out.shape[1] > 0


def test_no_supervised_tokens_is_a_clear_error(tiny_recipe, filtered_run):
    recipe = load_recipe(str(tiny_recipe()), ["train.max_length=12"])
    with pytest.raises(UserError, match="no supervised tokens.*raise train.max_length"):
        run_train(recipe, filtered_run, filtered_run)


def test_nothing_kept_is_one_line(tiny_recipe, tmp_path):
    empty = tmp_path / "empty"
    shards.write_table(empty / "shard-00000.parquet", schema.table([], schema.FILTERED))
    result = run_cli("train", "-r", tiny_recipe(), "--data", empty, "--out", tmp_path / "o")
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "nothing to train on: the filter kept 0 rows" in result.stderr


def test_data_without_messages(tiny_recipe, tmp_path):
    bad = tmp_path / "bad"
    shards.write_table(bad / "shard-00000.parquet", pa.table({"text": ["hello"]}))
    result = run_cli("train", "-r", tiny_recipe(), "--data", bad, "--out", tmp_path / "o")
    assert result.returncode == 1 and "no 'messages' column" in result.stderr


def test_unknown_method(tiny_recipe, filtered_run):
    result = run_cli("train", "-r", tiny_recipe(), "--data", filtered_run, "--out", filtered_run,
                     "--set", "train.method=dora")
    assert result.returncode == 2 and "train.method must be one of lora, full, got 'dora'" in result.stderr
