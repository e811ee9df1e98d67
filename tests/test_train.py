"""train: LoRA SFT on kept rows, loss on the assistant turn only, clear errors."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from helpers import run_cli, trace, write_traces

from distill import schema, shards
from distill.recipes import load_recipe
from distill.errors import UserError
from distill.filter.stage import run_filter
from distill.train.stage import run_train

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
    with pytest.raises(UserError, match="prompt alone.*raise train.max_length"):
        run_train(recipe, filtered_run, filtered_run)


def test_rows_without_supervised_tokens_are_left_out(tiny_recipe, tmp_path):
    # one problem so long that its assistant turn falls beyond max_length: that row would carry no
    # loss (and a batch of only such rows would divide the loss by zero), so it is not trained on
    long = trace("z", "4", "<think>\n2 + 2\n</think>\n\n\\boxed{4}", problem="count " * 200 + "2 + 2")
    write_traces(tmp_path / "in", [ROWS[:4] + [long]])
    run_filter(load_recipe(None, ["filter.timeout=5"]), tmp_path / "in", tmp_path / "run")
    summary = run_train(load_recipe(str(tiny_recipe()), ["train.max_length=120", "train.batch_size=1",
                                                         "train.max_steps=5"]), tmp_path / "run", tmp_path / "run")
    assert summary["rows"] == 4 and summary["rows_without_supervised_tokens"] == 1
    assert summary["steps"] == 5 and summary["loss_last"] is not None and summary["loss_last"] == summary["loss_last"]


def test_a_batch_without_supervised_tokens_stops_training():
    import torch

    from distill.train.stage import _count_padding

    class Trainer:  # only what _count_padding touches: the collator the dataloader calls
        @staticmethod
        def data_collator(features):
            return {"input_ids": torch.ones(1, 4, dtype=torch.long), "labels": torch.full((1, 4), -100)}

    trainer = Trainer()
    _count_padding(trainer)
    with pytest.raises(UserError, match="no supervised token"):
        trainer.data_collator([{"input_ids": [1, 1, 1, 1]}])


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
    assert result.returncode == 2 and "train.method must be one of lora, qlora, full, got 'dora'" in result.stderr


def test_loss_on_all_supervises_the_whole_sequence(tiny_recipe, filtered_run, tiny_qwen2):
    from transformers import AutoTokenizer
    import pyarrow.parquet as pq

    summary = run_train(load_recipe(str(tiny_recipe()), ["train.loss_on=all"]), filtered_run, filtered_run)
    tok = AutoTokenizer.from_pretrained(tiny_qwen2)
    rows = pq.ParquetDataset(filtered_run / "filtered" / "data").read().to_pylist()
    assert summary["supervised_tokens"] == sum(len(tok.apply_chat_template(r["messages"], return_dict=True)["input_ids"])
                                               for r in rows)
    png = filtered_run / "student" / "loss.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and summary["plots"] == ["loss.png"]


def test_qlora_on_a_machine_without_cuda_is_one_line(tiny_recipe, filtered_run):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run_cli("train", "-r", tiny_recipe(), "--data", filtered_run, "--out", filtered_run,
                     "--set", "train.method=qlora")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "qlora needs a CUDA GPU" in result.stderr


KILL_AT_STEP = r"""
import os, signal, sys
from pathlib import Path
from transformers import TrainerCallback
from distill.train import stage as train
from distill.recipes import load_recipe

class Kill(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == int(sys.argv[3]) and (Path(args.output_dir) / f"checkpoint-{sys.argv[4]}").is_dir():
            os.kill(os.getpid(), signal.SIGKILL)  # as kill -9 from outside: no cleanup at all

quiet = train._quiet_logs
train._quiet_logs = lambda trainer: (quiet(trainer), trainer.add_callback(Kill()))
train.run_train(load_recipe(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[2]))
"""


@pytest.mark.parametrize("batch_size,rows,steps,save_steps,kill_at,checkpoint", [
    (1, 4, 8, 2, 5, 4),  # batches of one row drawn at random; the checkpoint ends an epoch
    # batches grouped by length (the default for batch_size > 1), 6 to an epoch: the checkpoint at
    # step 8 is inside the second epoch, whose order must come back, and a third epoch follows
    (2, 12, 16, 4, 9, 8),
])
def test_kill_9_mid_training_then_resume_continues_with_the_same_data_order(
        tiny_recipe, filtered_run, tmp_path, batch_size, rows, steps, save_steps, kill_at, checkpoint):
    import shutil
    import subprocess
    import sys

    from helpers import ROOT, write_filtered_varied

    if rows != 4:  # rows of many lengths, so that another order gives other losses
        filtered_run = write_filtered_varied(tmp_path / "varied" / "filtered", rows).parent
    recipe_path = tiny_recipe(train={"max_steps": steps, "batch_size": batch_size, "save_steps": save_steps,
                                     "logging_steps": 1, "max_length": 1024})
    recipe = load_recipe(str(recipe_path))
    clean_run = tmp_path / "clean"
    shutil.copytree(filtered_run, clean_run)
    clean = run_train(recipe, clean_run, clean_run)
    assert clean["group_by_length"] is (batch_size > 1)
    killed = subprocess.run([sys.executable, "-c", KILL_AT_STEP, str(recipe_path), str(filtered_run), str(kill_at),
                             str(checkpoint)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    stage = filtered_run / "student"
    assert (stage / "checkpoints" / f"checkpoint-{checkpoint}").is_dir() and not (stage / "train_summary.json").exists()
    # without --resume: one line that says what to do
    result = run_cli("train", "-r", recipe_path, "--data", filtered_run, "--out", filtered_run)
    assert result.returncode == 1 and "rerun with --resume" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = run_cli("train", "-r", recipe_path, "--data", filtered_run, "--out", filtered_run, "--resume")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"resuming from checkpoint-{checkpoint}" in result.stdout
    resumed = json.loads((stage / "train_summary.json").read_text())
    losses = lambda run: [e["loss"] for e in json.loads((run / "student" / "train_log.json").read_text()) if "loss" in e]
    assert resumed["steps"] == clean["steps"] == steps
    # the steps after the checkpoint: the same batches, so the same losses
    assert losses(filtered_run)[checkpoint:] == pytest.approx(losses(clean_run)[checkpoint:], rel=1e-5)
    from safetensors.torch import load_file

    a = load_file(stage / "adapter_model.safetensors")
    b = load_file(clean_run / "student" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all((a[k] - b[k]).abs().max() < 1e-5 for k in a)


STRIPS_THINK = (  # DeepSeek-R1-Distill's way: only the text after </think> stays in an assistant turn
    "{% for m in messages %}{% if m['role'] == 'assistant' %}{% set c = m['content'].split('</think>')[-1] %}"
    "<|im_start|>assistant\n{{ c }}<|im_end|>\n{% else %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_a_template_that_strips_think_is_one_line(tiny_recipe, filtered_run, tmp_path, tiny_qwen2):
    from helpers import write_yaml

    card = write_yaml(tmp_path / "strips.yaml", {"model": str(tiny_qwen2), "chat_template": STRIPS_THINK})
    result = run_cli("train", "-r", tiny_recipe(), "--data", filtered_run, "--out", filtered_run, "--set", f"student={card}")
    # a card problem: exit 2, as for recipes and --set
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "its chat template drops the <think> reasoning from the assistant turn" in result.stderr


@pytest.mark.parametrize("model", ["/nonexistent/model-folder", "nobody/no-such-model-xyz"])
def test_a_student_model_that_is_not_there_is_one_line(tiny_recipe, filtered_run, tmp_path, model):
    from helpers import write_yaml

    card = write_yaml(tmp_path / "gone.yaml", {"model": model})
    result = run_cli("train", "-r", tiny_recipe(), "--data", filtered_run, "--out", filtered_run, "--set", f"student={card}",
                     env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr[-1500:]
    assert "student card 'gone'" in result.stderr and model.split("/")[-1] in result.stderr


@pytest.mark.parametrize("action,rows", [("truncate", 4), ("drop", 2)])
def test_overlong_conversations_are_counted_then_truncated_or_dropped(tiny_recipe, filtered_run, tiny_qwen2, action, rows):
    from transformers import AutoTokenizer
    import pyarrow.parquet as pq

    tok = AutoTokenizer.from_pretrained(tiny_qwen2)
    lengths = sorted(len(tok.apply_chat_template(r["messages"], return_dict=True)["input_ids"])
                     for r in pq.ParquetDataset(filtered_run / "filtered" / "data").read().to_pylist())
    limit = lengths[1]  # two conversations fit, two are longer
    assert lengths[2] > limit
    summary = run_train(load_recipe(str(tiny_recipe()), [f"train.max_length={limit}", f"train.overlong={action}"]),
                        filtered_run, filtered_run)
    assert summary["overlong"] == 2 and summary["overlong_action"] == action and summary["rows"] == rows
    assert 0 <= summary["padding_waste"] < 1


def test_eos_of_the_tokenizer_becomes_a_stop_token(tiny_recipe, filtered_run, tmp_path, tiny_qwen2):
    import shutil

    from transformers import AutoTokenizer, GenerationConfig
    from helpers import write_yaml

    model = tmp_path / "tiny-other-eos"
    shutil.copytree(tiny_qwen2, model)
    GenerationConfig(eos_token_id=0, bos_token_id=0).save_pretrained(model)  # a base model that stops elsewhere
    card = write_yaml(tmp_path / "other-eos.yaml", {"model": str(model), "max_length": 256})
    run_train(load_recipe(str(tiny_recipe()), [f"student={card}"]), filtered_run, filtered_run, merge=True)
    eos = AutoTokenizer.from_pretrained(model).eos_token_id
    assert eos != 0
    for folder in (filtered_run / "student", filtered_run / "student" / "merged"):
        assert GenerationConfig.from_pretrained(folder).eos_token_id == [0, eos]


def test_train_reads_the_run_folders_own_filter_output(tiny_recipe, filtered_run):
    """`distill train --recipe R --out RUN` trains on RUN/filtered, with no --data."""
    result = run_cli("train", "--recipe", tiny_recipe(), "--out", filtered_run, "--set", "train.max_steps=1")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((filtered_run / "student" / "train_summary.json").read_text())
    assert summary["rows"] == 4 and summary["steps"] == 1


def test_loss_headline_counts_a_leftover_batch_by_its_tokens(tiny_recipe, filtered_run):
    """4 rows in batches of 3: the second step is a leftover batch of one row. loss_first/loss_last
    are the token-weighted quarter means of the logged steps (metrics.quarter_means), not the
    steps' plain means, which would make the last quarter that one row's loss."""
    from distill.metrics import loss_points, quarter_means

    recipe = tiny_recipe(train={"max_steps": -1, "epochs": 1, "batch_size": 3, "logging_steps": 1})
    summary = run_train(load_recipe(str(recipe)), filtered_run, filtered_run)
    log = json.loads((filtered_run / "student" / "train_log.json").read_text())
    points = loss_points(log)
    assert [s for s, _, _ in points] == [1, 2]
    (_, first, tokens_first), (_, last, tokens_last) = points
    assert tokens_first and tokens_last and tokens_last < tokens_first  # TRL logs each step's tokens
    assert (summary["loss_first"], summary["loss_last"]) == quarter_means([first, last], [tokens_first, tokens_last])
    # the one-row step holds less than a quarter of the tokens (77 of 319): the last quarter
    # reaches into step 1, where the plain mean of the last quarter of steps was step 2 alone
    assert tokens_last < (tokens_first + tokens_last) / 4
    assert summary["loss_first"] == first and summary["loss_last"] != last
    assert min(first, last) <= summary["loss_last"] <= max(first, last)
    assert (filtered_run / "student" / "loss.png").read_bytes()[:4] == b"\x89PNG"
