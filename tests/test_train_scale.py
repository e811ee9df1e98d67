"""train at scale: packing (padding-free, position_ids), attention and Liger choice, gradient
checkpointing with LoRA, reporters, push_to_hub checks, accelerate launch, the GPU benchmark."""

from __future__ import annotations

import json
import sys

import pytest
from helpers import ROOT, run_cli, trace, write_filtered_varied, write_traces

from distill.config import TrainConfig
from distill.errors import ConfigError
from distill.filter.stage import run_filter
from distill.recipes import load_recipe
from distill.train.stage import run_train

ROWS = [
    trace("a", "72", "<think>\n48 + 24 = 72\n</think>\n\nThe answer is \\boxed{72}."),
    trace("b", "9", "<think>\n3 times 3 is 9, since three threes make nine\n</think>\n\n\\boxed{9}"),
    trace("c", "4", "<think>\n2 + 2\n</think>\n\nSo \\boxed{4}."),
    trace("d", "5", "<think>\n2 + 3, which is five\n</think>\n\n\\boxed{5}"),
]


@pytest.fixture
def filtered_run(tmp_path):
    write_traces(tmp_path / "traces_in", [ROWS])
    run_filter(load_recipe(None, ["filter.timeout=5"]), tmp_path / "traces_in", tmp_path / "run")
    return tmp_path / "run"


# ---------------------------------------------------------------- packing


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_rows_do_not_attend_across_each_other(tiny_qwen2, attention):
    """transformers turns position_ids that restart at 0 into a block-diagonal mask for sdpa and
    eager: TRL's padding-free batch gives each row the logits (and loss) it gets alone."""
    import torch
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    model = AutoModelForCausalLM.from_pretrained(tiny_qwen2, attn_implementation=attention).eval()
    model.config.use_cache = False  # as in training: with a cache the packed mask is not built
    g = torch.Generator().manual_seed(0)
    rows = [torch.randint(5, 1000, (n,), generator=g).tolist() for n in (7, 19, 12)]
    collate = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)
    batch = collate([{"input_ids": r, "seq_lengths": [len(r)]} for r in rows])
    assert batch["input_ids"].shape == (1, sum(map(len, rows))) and "attention_mask" not in batch
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        alone = [model(input_ids=torch.tensor([r]), use_cache=False).logits[0] for r in rows]
        mixed = model(input_ids=batch["input_ids"], use_cache=False).logits[0]  # no position_ids: one long row
    torch.testing.assert_close(packed, torch.cat(alone), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(mixed[7:], torch.cat(alone[1:]), atol=1e-3)  # the check can fail

    # the loss of the packed batch is the token-weighted mean of the rows' losses alone
    def loss_sum(logits, ids):
        return torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(ids[1:]), reduction="sum")

    per_row = sum(loss_sum(a, r) for a, r in zip(alone, rows)) / sum(len(r) - 1 for r in rows)
    labels = batch["labels"][0]  # -100 where a row starts: no prediction across the seam
    packed_loss = torch.nn.functional.cross_entropy(packed[:-1], labels[1:], ignore_index=-100)
    torch.testing.assert_close(packed_loss, per_row, atol=1e-5, rtol=1e-5)


def test_packing_trains_padding_free_at_32k(tiny_recipe, filtered_run):
    """Packing on the CPU: one flat row per batch, no pad tokens, and max_length 32768 accepted."""
    recipe = load_recipe(str(tiny_recipe()), ["train.packing=true", "train.max_length=32768", "train.batch_size=2",
                                              "train.max_steps=1"])
    summary = run_train(recipe, filtered_run, filtered_run)
    assert summary["packing"] is True and summary["attention"] == "sdpa" and summary["liger"] is False
    assert summary["padding_waste"] == 0.0 and summary["rows"] == 4
    # all four conversations fit in one 32k bin: the one step trained on every supervised token
    assert summary["steps"] == 1 and summary["batch_tokens"] > summary["supervised_tokens"] > 0


def test_padding_is_counted_without_packing(tiny_recipe, filtered_run):
    summary = run_train(load_recipe(str(tiny_recipe()), ["train.max_steps=2"]), filtered_run, filtered_run)
    assert summary["packing"] is False and 0 < summary["padding_waste"] < 1


def test_rows_of_like_length_share_batches_unless_packing(tiny_recipe, tmp_path):
    """By default each batch holds rows of like length (transformers' length-grouped order): one
    epoch trains the same tokens as batches drawn at random, with fewer pad tokens."""
    data = write_filtered_varied(tmp_path / "filtered", 32)
    one_epoch = ["train.max_steps=-1", "train.batch_size=2", "train.max_length=2048"]
    recipe = tiny_recipe()
    grouped = run_train(load_recipe(str(recipe), one_epoch), data, tmp_path / "grouped")
    shuffled = run_train(load_recipe(str(recipe), [*one_epoch, "train.group_by_length=false"]), data,
                         tmp_path / "shuffled")
    assert grouped["group_by_length"] is True and shuffled["group_by_length"] is False
    assert grouped["steps"] == shuffled["steps"] == 16
    assert grouped["supervised_tokens"] == shuffled["supervised_tokens"]
    assert grouped["batch_tokens"] == shuffled["batch_tokens"]  # the same rows, every one once
    assert grouped["padding_waste"] < shuffled["padding_waste"] / 2
    packed = run_train(load_recipe(str(recipe), [*one_epoch, "train.packing=true"]), data, tmp_path / "packed")
    assert packed["group_by_length"] is False and packed["padding_waste"] == 0.0


def test_grouped_batches_are_reshuffled_each_epoch_from_the_seed(tiny_recipe, tmp_path, monkeypatch):
    """Each epoch's order is transformers' length grouping drawn from (seed + epoch): another
    order every epoch, and the same one again on a resume or on another process."""
    import torch
    from transformers import trainer_pt_utils

    group = trainer_pt_utils.get_length_grouped_indices
    drawn = []

    def recording(lengths, batch_size, mega_batch_mult=None, generator=None):
        drawn.append((list(lengths), batch_size, group(lengths, batch_size, mega_batch_mult, generator)))
        return drawn[-1][2]

    monkeypatch.setattr(trainer_pt_utils, "get_length_grouped_indices", recording)
    data = write_filtered_varied(tmp_path / "filtered", 12)
    summary = run_train(load_recipe(str(tiny_recipe()), ["train.max_steps=-1", "train.epochs=3", "train.batch_size=2",
                                                         "train.max_length=1024"]), data, tmp_path / "out")
    assert summary["group_by_length"] is True and summary["steps"] == 18
    assert len(drawn) == 3 and len({tuple(order) for _, _, order in drawn}) == 3  # a new order each epoch
    for epoch, (lengths, batch, order) in enumerate(drawn):
        assert sorted(order) == list(range(12)) and batch == 2
        assert order == group(lengths, batch, generator=torch.Generator().manual_seed(42 + epoch))


def test_gradient_checkpointing_trains_lora(tiny_recipe, filtered_run):
    """Non-reentrant checkpointing: the LoRA B matrices (zero at start) receive gradients."""
    from safetensors.torch import load_file

    run_train(load_recipe(str(tiny_recipe()), ["train.gradient_checkpointing=true", "train.max_steps=2",
                                               "train.learning_rate=0.01"]), filtered_run, filtered_run)
    weights = load_file(filtered_run / "student" / "adapter_model.safetensors")
    b = [w for k, w in weights.items() if "lora_B" in k]
    assert b and all(w.abs().max() > 0 for w in b)


# ---------------------------------------------------------------- attention and Liger


def test_attention_choice():
    from distill.train import train_options

    assert train_options.attention(TrainConfig(), on_gpu=False) == "sdpa"
    assert train_options.attention(TrainConfig(attn_implementation="eager", packing=True), on_gpu=False) == "eager"
    with pytest.raises(ConfigError, match="flash_attention_2 needs a CUDA GPU and the flash-attn package"):
        train_options.attention(TrainConfig(attn_implementation="flash_attention_2"), on_gpu=False)
    with pytest.raises(ConfigError, match="does not keep packed rows apart"):
        train_options.attention(TrainConfig(attn_implementation="paged|sdpa", packing=True), on_gpu=False)


def test_liger_choice():
    from distill.train import train_options

    assert train_options.liger(TrainConfig(), on_gpu=False) is False
    assert train_options.liger(TrainConfig(liger=False), on_gpu=True) is False
    installed = train_options._imports("liger_kernel")
    if installed:
        pytest.skip("liger-kernel is installed here")
    with pytest.raises(ConfigError, match="train.liger: true needs the liger-kernel package: pip install liger-kernel"):
        train_options.liger(TrainConfig(liger=True), on_gpu=True)


def test_liger_without_the_package_is_one_line(tiny_recipe, filtered_run):
    from distill.train import train_options

    if train_options._imports("liger_kernel"):
        pytest.skip("liger-kernel is installed here")
    result = run_cli("train", "-r", tiny_recipe(), "--data", filtered_run, "--out", filtered_run,
                     "--set", "train.liger=true")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr[-1500:]
    assert "pip install liger-kernel" in result.stderr


# ---------------------------------------------------------------- the GPU benchmark, tiny on the CPU


def test_gpu_benchmark_runs_tiny_on_the_cpu(tmp_path, monkeypatch):
    """bench/train_packing_gpu.py --tiny: both sides train the same packed rows and the result
    holds their throughput, ratio and MFU (the figures mean nothing on a CPU; the plumbing does)."""
    from transformers import trainer

    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    monkeypatch.setattr(trainer, "DEFAULT_CALLBACKS", list(trainer.DEFAULT_CALLBACKS))  # the bench adds its clock
    import train_packing_gpu

    out = tmp_path / "result.json"
    result = train_packing_gpu.main(["--tiny", "--steps", "3", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    assert result["distill"]["timed_steps"] == result["trl"]["timed_steps"] == 2
    # same rows, seed and packing on both sides: the same tokens in the timed steps
    assert result["distill"]["tokens"] == result["trl"]["tokens"] > 0
    assert result["distill"]["padding_waste"] == 0.0 and result["attention"] == "sdpa"
    assert result["ratio"] == pytest.approx(result["distill"]["tokens_per_s"] / result["trl"]["tokens_per_s"], rel=1e-2)
    mfu = 6 * result["parameters"] * result["trl"]["tokens_per_s"] / 989e12
    assert result["trl"]["mfu"] == pytest.approx(mfu, abs=1e-4)


# ---------------------------------------------------------------- accelerate launch


def test_bundled_accelerate_configs_are_valid():
    import yaml

    from distill.train.accelerate_launch import bundled, config_path

    assert bundled() == ["ddp", "fsdp", "zero2", "zero3"]
    kinds = {name: yaml.safe_load(config_path(name).read_text())["distributed_type"] for name in bundled()}
    assert kinds == {"ddp": "MULTI_GPU", "fsdp": "FSDP", "zero2": "DEEPSPEED", "zero3": "DEEPSPEED"}
    from accelerate.commands.config.config_args import load_config_from_file

    for name in bundled():  # accelerate itself reads each one
        assert load_config_from_file(str(config_path(name))).distributed_type.value == kinds[name]


def test_the_accelerate_command_line(tmp_path):
    from distill.train.accelerate_launch import CONFIGS, command, config_path

    args = ["--recipe", "r.yaml", "--data", "d", "--out", "o", "--set", "train.max_steps=2"]
    assert command(config_path("zero3"), 8, args) == [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / "zero3.yaml"),
        "--num_processes", "8", "-m", "distill", "train", *args]
    mine = tmp_path / "mine.yaml"
    mine.write_text("distributed_type: MULTI_GPU\n")
    assert command(config_path(str(mine)), None, [])[4:6] == [str(mine), "-m"]  # the file's own num_processes
    with pytest.raises(ConfigError, match="unknown config 'zero4'; bundled: ddp, fsdp, zero2, zero3"):
        config_path("zero4")
    with pytest.raises(ConfigError, match="does not exist"):
        config_path(str(tmp_path / "missing.yaml"))


def test_accelerate_cli_errors_are_one_line(tiny_recipe, filtered_run):
    from distill.train import train_options

    base = ["train", "-r", tiny_recipe(), "--data", filtered_run, "--out", filtered_run]
    cases = [(["--accelerate", "zero4"], "unknown config 'zero4'; bundled: ddp, fsdp, zero2, zero3"),
             (["--num-processes", "2"], "--num-processes needs --accelerate CONFIG")]
    if not train_options._imports("deepspeed"):
        cases.append((["--accelerate", "zero3", "--num-processes", "8"], "pip install deepspeed"))
    for extra, message in cases:
        result = run_cli(*base, *extra)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr[-1500:]
        assert message in result.stderr


@pytest.mark.parametrize("batch_size,epochs", [(1, [0.5, 1.0]), (2, [1.0, 2.0])])
def test_ddp_on_two_cpu_processes(tiny_recipe, filtered_run, batch_size, epochs):
    """A real `--accelerate ddp --num-processes 2` run on the CPU (gloo): both processes train,
    rank 0 alone writes the student, the summary and the plot; with batch_size 2, batches grouped
    by length."""
    recipe = tiny_recipe(train={"max_steps": 2, "batch_size": batch_size, "gradient_checkpointing": False})
    result = run_cli("train", "-r", recipe, "--data", filtered_run, "--out", filtered_run,
                     "--accelerate", "ddp", "--num-processes", "2",
                     env={"OMP_NUM_THREADS": "1", "MASTER_PORT": "29517"}, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "accelerate launch with" in result.stdout and result.stdout.count("student: 2 steps") == 1
    assert result.stdout.count("train: 4 conversations") == 2  # each process prepared the data and trained
    student = filtered_run / "student"
    summary = json.loads((student / "train_summary.json").read_text())
    assert summary["steps"] == 2 and (student / "adapter_model.safetensors").is_file()
    assert (student / "loss.png").is_file()
    log = [e for e in json.loads((student / "train_log.json").read_text()) if "loss" in e]
    # two processes: with batch 1 each the 4 rows are 2 steps of 2, one epoch; with batch 2, one step
    assert [e["epoch"] for e in log] == epochs and summary["group_by_length"] is (batch_size > 1)


# ---------------------------------------------------------------- reporters and the hub


@pytest.mark.parametrize("reporter", ["tensorboard", "wandb", "trackio"])
def test_a_reporter_without_its_package_is_one_line_before_training(tiny_recipe, filtered_run, reporter):
    import importlib.util

    if importlib.util.find_spec(reporter) is not None:
        pytest.skip(f"{reporter} is installed here")
    result = run_cli("train", "-r", tiny_recipe(), "--data", filtered_run, "--out", filtered_run,
                     "--set", f"train.report_to=[{reporter}]")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr[-1500:]
    assert f"train.report_to: {reporter} needs the {reporter} package: pip install {reporter}" in result.stderr
    assert "conversations" not in result.stdout  # nothing was loaded or trained


def test_tensorboard_receives_the_loss(tiny_recipe, filtered_run):
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        pytest.skip("tensorboard is not installed here")
    run_train(load_recipe(str(tiny_recipe()), ["train.report_to=[tensorboard]"]), filtered_run, filtered_run)
    events = list((filtered_run / "student").rglob("events.out.tfevents.*"))
    assert events and any(e.stat().st_size > 0 for e in events)


@pytest.mark.parametrize("env,message", [
    ({"HF_HUB_OFFLINE": "1"}, "the hub is switched off here (HF_HUB_OFFLINE is set)"),
    ({"HF_HUB_OFFLINE": "0", "HF_TOKEN": ""}, "no Hugging Face token; run `hf auth login` or set HF_TOKEN"),
    ({"HF_HUB_OFFLINE": "0", "HF_TOKEN": "hf_not_a_real_token"}, "cannot reach the hub with this machine's token"),
])
def test_push_to_hub_that_cannot_work_fails_at_the_start(tiny_recipe, filtered_run, tmp_path, env, message):
    result = run_cli("train", "-r", tiny_recipe(), "--data", filtered_run, "--out", filtered_run,
                     "--set", "train.hub_model_id=someone/tiny-student", "--set", "train.push_to_hub=true",
                     env={**env, "HF_HOME": str(tmp_path / "hf-home")})  # no stored token
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr[-1500:]
    assert message in result.stderr and "conversations" not in result.stdout
    assert not (filtered_run / "student").exists()


def test_supervised_counts_from_arrow_match_a_count_of_every_label(tmp_path):
    """The supervised-token count read from the Arrow column agrees with counting each label, on a
    dataset read back from disk, on a row selection (an indices mapping) and on a slice, rows
    without any label or without any supervised one included."""
    import datasets

    from distill.train.trainer import _supervised_counts

    labels = [[-100] * (i % 7) + list(range(i % 11)) + [-100] * (i % 3) for i in range(300)] + [[], [-100]]
    datasets.Dataset.from_dict({"labels": labels}).save_to_disk(str(tmp_path / "ds"))
    ds = datasets.load_from_disk(str(tmp_path / "ds"))

    def count(d):
        return [sum(1 for t in row if t != -100) for row in d["labels"]]

    for part in (ds, ds.select([301, 5, 299, 0, 300, 17]), ds.select(range(40, 90)), ds.shard(4, 3)):
        assert _supervised_counts(part) == count(part)
    assert _supervised_counts(ds)[-2:] == [0, 0] and sum(_supervised_counts(ds)) == sum(i % 11 for i in range(300))
