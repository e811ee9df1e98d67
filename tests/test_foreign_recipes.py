"""Published recipes read as they are: open-r1 / TRL and LLaMA-Factory training YAMLs, the
recipe's own training data (files, ShareGPT, columns), and the bundled recipes."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from helpers import run_cli

from distill import cards
from distill.errors import ConfigError, UserError
from distill.recipes import load_recipe

CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

# modelled on open-r1's recipes/OpenR1-Distill-7B/sft/config_distill.yaml (chat template shortened)
OPENR1_DISTILL = f"""\
# Config for 1 node of 8 x H100s (80GB)
# Model arguments
model_name_or_path: open-r1/Qwen2.5-Math-7B-RoPE-300k
model_revision: main
torch_dtype: bfloat16
attn_implementation: flash_attention_2

# Data training arguments
chat_template: {json.dumps(CHATML)}
dataset_name: open-r1/Mixture-of-Thoughts
dataset_config: all
dataset_num_proc: 12
eos_token: <|im_end|>

# SFT trainer config
bf16: true
do_eval: false
eval_strategy: 'no'
gradient_accumulation_steps: 8
gradient_checkpointing: true
gradient_checkpointing_kwargs:
  use_reentrant: false
hub_model_id: OpenR1-Distill-7B
hub_strategy: every_save
learning_rate: 4.0e-05
log_level: info
logging_steps: 1
logging_strategy: steps
lr_scheduler_type: cosine_with_min_lr
lr_scheduler_kwargs:
  min_lr_rate: 0.1
packing: false
max_grad_norm: 0.2
max_length: 32768
max_steps: -1
num_train_epochs: 5
output_dir: data/OpenR1-Distill-7B
overwrite_output_dir: true
per_device_eval_batch_size: 1
per_device_train_batch_size: 2
push_to_hub: true
report_to:
- wandb
save_strategy: epoch
save_total_limit: 1
seed: 42
use_liger_kernel: true
warmup_ratio: 0.03
"""

# modelled on open-r1's older recipes (Qwen2.5-Coder-3B-Instruct/sft/config_s1k.yaml): old TRL
# key names, open-r1's own SFTConfig additions, and a dataset mixture
OPENR1_OLD = """\
model_name_or_path: Qwen/Qwen2.5-1.5B-Instruct
torch_dtype: bfloat16
dataset_mixture:
  datasets:
    - id: open-r1/Mixture-of-Thoughts
      config: math
      split: train
      columns: [messages]
      weight: 0.5
    - id: open-r1/Mixture-of-Thoughts
      config: code
      columns: [messages]
  seed: 7
  test_split_size: 0.1
callbacks: [push_to_hub_revision]
benchmarks: [math_500]
max_seq_length: 4096
use_liger: true
use_peft: true
lora_r: 64
lora_alpha: 128
lora_target_modules: [q_proj, v_proj]
wandb_project: open-r1
optim: adamw_torch
learning_rate: 1e-5
"""

# LLaMA-Factory's examples/train_lora/qwen3_lora_sft.yaml
LF_LORA = """\
### model
model_name_or_path: Qwen/Qwen3-4B-Instruct-2507
trust_remote_code: true

### method
stage: sft
do_train: true
finetuning_type: lora
lora_rank: 8
lora_target: all

### dataset
dataset: identity,alpaca_en_demo
template: qwen3_nothink
cutoff_len: 2048
max_samples: 1000
preprocessing_num_workers: 16
dataloader_num_workers: 4

### output
output_dir: saves/qwen3-4b/lora/sft
logging_steps: 10
save_steps: 500
plot_loss: true
overwrite_output_dir: true
save_only_model: false
report_to: none  # choices: [none, wandb, tensorboard, swanlab, mlflow]

### train
per_device_train_batch_size: 1
gradient_accumulation_steps: 8
learning_rate: 1.0e-4
num_train_epochs: 3.0
lr_scheduler_type: cosine
warmup_ratio: 0.1
bf16: true
ddp_timeout: 180000000
resume_from_checkpoint: null
"""

# open-thoughts' train/OpenThinker-7B.yaml (LLaMA-Factory with the dataset attributes inline)
OPENTHINKER = """\
### model
model_name_or_path: Qwen/Qwen2.5-7B-Instruct

### method
stage: sft
do_train: true
finetuning_type: full
deepspeed: train/zero3_offload.json

messages: conversations
formatting: sharegpt
role_tag: from
content_tag: value
user_tag: user
assistant_tag: assistant

### dataset
dataset: open-thoughts/OpenThoughts-114k
template: qwen25
cutoff_len: 16384
max_samples: 1000000
overwrite_cache: true
preprocessing_num_workers: 16

### output
output_dir: saves/OpenThinker-7B
logging_steps: 1
save_steps: 100
plot_loss: true

### train
global_batch_size: 96
per_device_train_batch_size: 1
gradient_accumulation_steps: 3
learning_rate: 1.0e-5
num_train_epochs: 3.0
lr_scheduler_type: cosine
warmup_ratio: 0.1
bf16: true
ddp_timeout: 180000000
"""

THINK = "<think>\n{r}\n</think>\n\nThe answer is \\boxed{{{a}}}."


def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def _messages_rows(n: int = 6) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"What is {i} + {i}?"},
                          {"role": "assistant", "content": THINK.format(r=f"{i} + {i} = {2 * i}", a=2 * i)}]}
            for i in range(n)]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_openr1_recipe_maps_onto_student_and_train(tmp_path, capsys):
    recipe = load_recipe(str(_write(tmp_path, "config_distill.yaml", OPENR1_DISTILL)))
    s, t = recipe.student, recipe.train
    assert (s.model, s.revision, s.eos_token, s.chat_template) == (
        "open-r1/Qwen2.5-Math-7B-RoPE-300k", "main", "<|im_end|>", CHATML)
    assert (t.method, t.learning_rate, t.epochs, t.batch_size, t.grad_accum, t.max_length) == (
        "full", 4e-5, 5.0, 2, 8, 32768)  # no use_peft: open-r1 trains all weights
    assert (t.lr_scheduler, t.lr_scheduler_kwargs, t.max_grad_norm, t.warmup_ratio) == (
        "cosine_with_min_lr", {"min_lr_rate": 0.1}, 0.2, 0.03)
    assert (t.liger, t.attn_implementation, t.gradient_checkpointing, t.packing) == (
        True, "flash_attention_2", True, False)
    assert t.group_by_length is False  # batches at random, as the published run drew them
    assert (t.report_to, t.push_to_hub, t.hub_model_id, t.save_total_limit) == (
        ("wandb",), True, "OpenR1-Distill-7B", 1)
    assert t.dtype == "auto" and t.loss_on == "all"  # TRL's loss on messages rows: the whole sequence
    assert t.trl == {"gradient_checkpointing_kwargs": {"use_reentrant": False}, "hub_strategy": "every_save",
                     "dataset_num_proc": 12}
    (data,) = t.data
    assert (data.source, data.config, data.split) == ("open-r1/Mixture-of-Thoughts", "all", "train")
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(lines) == len(err.strip().splitlines()) == 2  # the ignored settings said once, in one line
    assert _ignored(lines[0]) == {"output_dir", "overwrite_output_dir", "do_eval", "eval_strategy",
                                  "per_device_eval_batch_size", "log_level", "logging_strategy", "save_strategy"}
    assert "assistant_only_loss is not set" in lines[1]  # the whole-sequence loss is read as published, and said


def test_openr1_old_names_mixture_and_lora(tmp_path, capsys):
    recipe = load_recipe(str(_write(tmp_path, "config_s1k.yaml", OPENR1_OLD)))
    t = recipe.train
    assert (t.max_length, t.liger, t.method, t.lora_r, t.lora_alpha, t.lora_target_modules) == (
        4096, True, "lora", 64, 128, ("q_proj", "v_proj"))
    assert t.learning_rate == 1e-5 and t.trl == {"optim": "adamw_torch"}
    # keys the recipe leaves out take TRL's defaults, not distill's
    assert (t.epochs, t.batch_size, t.lr_scheduler, t.logging_steps) == (3.0, 8, "linear", 10)
    assert [(d.source, d.config, d.weight, d.columns) for d in t.data] == [
        ("open-r1/Mixture-of-Thoughts", "math", 0.5, ("messages",)),
        ("open-r1/Mixture-of-Thoughts", "code", None, ("messages",))]
    assert t.data_seed == 7
    err = capsys.readouterr().err
    assert {"dataset_mixture.test_split_size", "callbacks", "benchmarks", "wandb_project"} <= _ignored(err)


def test_aliases_of_one_setting_must_agree(tmp_path):
    path = _write(tmp_path, "r.yaml", "model_name_or_path: m\nmax_seq_length: 1024\nmax_length: 2048\n")
    with pytest.raises(ConfigError, match="max_seq_length and max_length are the same setting"):
        load_recipe(str(path))
    path = _write(tmp_path, "lf.yaml", "model_name_or_path: m\nstage: sft\nenable_liger_kernel: true\ncutoff_len: 512\n")
    t = load_recipe(str(path)).train
    assert (t.liger, t.max_length, t.method, t.lora_r, t.lora_alpha, t.lora_dropout) == (True, 512, "lora", 8, 16, 0.0)
    path = _write(tmp_path, "q.yaml", "model_name_or_path: m\nuse_peft: true\nload_in_4bit: true\n"
                  "torch_dtype: float16\nuse_dora: false\n")  # an unsupported feature switched off is fine
    assert (load_recipe(str(path)).train.method, load_recipe(str(path)).train.dtype) == ("qlora", "float16")
    path = _write(tmp_path, "lq.yaml", "model_name_or_path: m\nstage: sft\nquantization_bit: 4\nlora_target: q_proj,v_proj\n")
    assert (load_recipe(str(path)).train.method, load_recipe(str(path)).train.lora_target_modules) == (
        "qlora", ("q_proj", "v_proj"))


def _ignored(err: str) -> set[str]:
    """The settings named in the one 'no effect … ignored: a, b and N more' warning line."""
    (line,) = [line for line in err.splitlines() if "with no effect on what distill trains, ignored: " in line]
    listed = line.split("ignored: ")[1].split(" (docs/")[0].split(" and ")[0]
    return set(listed.split(", "))


def _lf_demo_data(folder) -> None:
    """A data/ folder laid out as LLaMA-Factory's own: alpaca files named in dataset_info.json."""
    folder.mkdir(exist_ok=True)
    (folder / "identity.json").write_text(json.dumps([
        {"instruction": "hi", "input": "", "output": "Hello! I am {{name}}, an assistant by {{author}}."},
        {"instruction": "Who are you?", "input": "", "output": "I am {{name}}."}]))
    (folder / "alpaca_en_demo.json").write_text(json.dumps([
        {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
        {"instruction": "Name a colour.", "input": "", "output": "Blue."}]))
    (folder / "dataset_info.json").write_text(json.dumps({
        "identity": {"file_name": "identity.json"}, "alpaca_en_demo": {"file_name": "alpaca_en_demo.json"}}))


def test_llamafactory_lora_recipe_maps(tmp_path, capsys):
    _lf_demo_data(tmp_path / "data")
    recipe = load_recipe(str(_write(tmp_path, "qwen3_lora_sft.yaml", LF_LORA)))
    t = recipe.train
    assert recipe.student.model == "Qwen/Qwen3-4B-Instruct-2507"
    assert (t.method, t.lora_r, t.lora_alpha, t.lora_target_modules, t.max_length) == ("lora", 8, 16, "all-linear", 2048)
    assert (t.batch_size, t.grad_accum, t.learning_rate, t.epochs, t.lr_scheduler, t.warmup_ratio) == (
        1, 8, 1e-4, 3.0, "cosine", 0.1)
    assert (t.gradient_checkpointing, t.loss_on, t.report_to, t.logging_steps) == (True, "assistant", (), 10)
    assert [(d.source, d.limit, d.formatting) for d in t.data] == [
        (str(tmp_path / "data" / "identity.json"), 1000, "alpaca"),
        (str(tmp_path / "data" / "alpaca_en_demo.json"), 1000, "alpaca")]
    assert {"template", "output_dir", "plot_loss", "ddp_timeout", "preprocessing_num_workers"} <= _ignored(
        capsys.readouterr().err)
    assert t.group_by_length is False


@pytest.mark.parametrize("text", ["group_by_length: true", "train_sampling_strategy: group_by_length"])
def test_a_published_recipe_that_groups_by_length_keeps_it(tmp_path, text):
    """transformers 4's key and 5's both ask for length groups, in either format."""
    for name, base in (("openr1.yaml", "model_name_or_path: m\n"), ("lf.yaml", "model_name_or_path: m\nstage: sft\n")):
        path = _write(tmp_path, name, base + text + "\n")
        t = load_recipe(str(path)).train
        assert t.group_by_length is True and "train_sampling_strategy" not in t.trl  # one setting, distill's
        assert load_recipe(str(path), ["train.group_by_length=false"]).train.group_by_length is False


def test_other_sampling_strategies_go_to_trl_and_bad_ones_are_one_line(tmp_path):
    t = load_recipe(str(_write(tmp_path, "s.yaml", "model_name_or_path: m\ntrain_sampling_strategy: sequential\n"))).train
    assert t.group_by_length is False and t.trl == {"train_sampling_strategy": "sequential"}
    for text, message in (("train_sampling_strategy: bogus", "must be one of random, sequential"),
                          ("group_by_length: 'false'", "group_by_length: 'false' must be true or false"),
                          ("group_by_length: true\ntrain_sampling_strategy: sequential", "disagree; keep one")):
        with pytest.raises(ConfigError, match=message):
            load_recipe(str(_write(tmp_path, "b.yaml", "model_name_or_path: m\n" + text + "\n")))


def test_llamafactory_dataset_info_resolves_names(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _jsonl(data / "sky.jsonl", [])
    (data / "dataset_info.json").write_text(json.dumps({"Sky-T1": {
        "file_name": "sky.jsonl", "formatting": "sharegpt", "columns": {"messages": "conversations", "system": "system"},
        "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "user", "assistant_tag": "assistant"}}}))
    text = LF_LORA.replace("dataset: identity,alpaca_en_demo", "dataset: Sky-T1\ndataset_dir: data")
    (d,) = load_recipe(str(_write(tmp_path, "sky.yaml", text))).train.data
    assert (d.source, d.messages, d.system, d.role_tag, d.formatting) == (
        str(data / "sky.jsonl"), "conversations", "system", "from", "sharegpt")
    assert {k: v for k, v in d.roles.items() if v in ("user", "assistant")} == {"user": "user", "assistant": "assistant"}


def test_openthinker_recipe_maps(tmp_path, capsys):
    recipe = load_recipe(str(_write(tmp_path, "OpenThinker-7B.yaml", OPENTHINKER)))
    t = recipe.train
    assert (t.method, t.max_length, t.batch_size, t.grad_accum, t.learning_rate) == ("full", 16384, 1, 3, 1e-5)
    (d,) = t.data
    assert (d.source, d.messages, d.role_tag, d.content_tag, d.roles, d.limit) == (
        "open-thoughts/OpenThoughts-114k", "conversations", "from", "value",
        {"user": "user", "assistant": "assistant", "system": "system", "observation": "observation",
         "function_call": "function"}, 1000000)
    assert d.formatting == "sharegpt"
    err = capsys.readouterr().err
    assert "global_batch_size" in err.split("ignored: ")[1] and "deepspeed" in err.split("ignored: ")[1]


@pytest.mark.parametrize("text,typo,near", [
    (OPENR1_DISTILL, "learning_rate", "learning_rate"),
    (LF_LORA, "cutoff_len", "cutoff_len"),
])
def test_unknown_key_names_the_nearest(tmp_path, text, typo, near):
    path = _write(tmp_path, "r.yaml", text.replace(f"{typo}:", f"{typo[:-2]}x{typo[-1]}:", 1))
    with pytest.raises(ConfigError, match=rf"unknown key '{typo[:-2]}x{typo[-1]}': no .* argument has this name \(did you mean {near}"):
        load_recipe(str(path))


def test_unsupported_and_non_sft_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"not supported by distill \(a TRL feature: DoRA\): use_dora: True"):
        load_recipe(str(_write(tmp_path, "a.yaml", "model_name_or_path: m\nuse_peft: true\nuse_dora: true\n")))
    with pytest.raises(ConfigError, match=r"this is a LLaMA-Factory DPO \(stage: dpo\) file, not a supervised"):
        load_recipe(str(_write(tmp_path, "b.yaml", LF_LORA.replace("stage: sft", "stage: dpo"))))
    with pytest.raises(ConfigError, match=r"not supported by distill \(a LLaMA-Factory feature\): finetuning_type: 'freeze'"):
        load_recipe(str(_write(tmp_path, "c.yaml", LF_LORA.replace("finetuning_type: lora", "finetuning_type: freeze"))))


def test_set_addresses_the_files_keys_and_distills(tmp_path):
    path = _write(tmp_path, "config_distill.yaml", OPENR1_DISTILL)
    recipe = load_recipe(str(path), ["max_steps=2", "model_name_or_path=/models/tiny", "train.overlong=drop",
                                     "dataset_mixture={datasets: [{id: a.jsonl}]}"])
    assert recipe.train.max_steps == 2 and recipe.student.model == "/models/tiny"
    assert recipe.train.overlong == "drop"
    assert [d.source for d in recipe.train.data] == ["a.jsonl"]  # a mixture wins over dataset_name, as in open-r1
    with pytest.raises(ConfigError, match=r"--set learning_rate=-1: learning_rate must be positive"):
        load_recipe(str(path), ["learning_rate=-1"])


def test_quickstart_still_reads_as_distills_own():
    recipe = load_recipe("quickstart")
    assert recipe.teacher.name == "smollm2-135m-instruct" and recipe.train.data == ()


def test_training_data_layouts_become_messages(tmp_path):
    from distill.config import TrainData
    from distill.train.sftdata import load_conversations

    share = _jsonl(tmp_path / "share.jsonl", [{
        "system": "Think first.",
        "conversations": [{"from": "user", "value": "2+2?"}, {"from": "assistant", "value": "<think>\nadd\n</think>\n\n4"}],
    }])
    cols = tmp_path / "limo.parquet"
    pq.write_table(pa.Table.from_pylist([{"question": "3+3?", "trace": "add", "attempt": "6", "extra": 1}]), cols)
    msgs = tmp_path / "msgs"
    msgs.mkdir()
    pq.write_table(pa.Table.from_pylist(_messages_rows(2)), msgs / "part-0.parquet")
    ds = load_conversations((TrainData(source=str(share)),))
    assert ds[0]["messages"] == [{"role": "system", "content": "Think first."}, {"role": "user", "content": "2+2?"},
                                 {"role": "assistant", "content": "<think>\nadd\n</think>\n\n4"}]
    ds = load_conversations((TrainData(source=str(cols), prompt="question", reasoning="trace", response="attempt"),))
    assert ds[0]["messages"][1]["content"] == "<think>\nadd\n</think>\n\n6"
    mixed = load_conversations((TrainData(source=str(msgs)), TrainData(source=str(share), weight=1.0)), seed=3)
    assert mixed.num_rows == 3 and mixed.column_names == ["messages"]
    # a dataset card names its hub copy; offline that is one clear line
    with pytest.raises(UserError, match="dataset card 'gsm8k': cannot load hub dataset 'openai/gsm8k'"):
        load_conversations((TrainData(source="gsm8k", prompt="question", response="answer"),))
    with pytest.raises(UserError, match=r"unknown speaker 'bot'.*roles: \{bot: user\}"):
        bad = _jsonl(tmp_path / "bad.jsonl", [{"conversations": [{"from": "bot", "value": "hi"}]}])
        load_conversations((TrainData(source=str(bad)),))


def test_openr1_recipe_trains_a_tiny_model_through_the_cli(tmp_path, tiny_qwen2):
    data = _jsonl(tmp_path / "traces.jsonl", _messages_rows(6))
    recipe = _write(tmp_path, "config_distill.yaml", OPENR1_DISTILL.replace(
        "dataset_name: open-r1/Mixture-of-Thoughts", "dataset_name: traces.jsonl"))  # relative to the recipe
    out = tmp_path / "run"
    result = run_cli(
        "train", "--recipe", recipe, "--out", out,
        "--set", f"model_name_or_path={tiny_qwen2}", "--set", "max_steps=2", "--set", "max_length=256",
        "--set", "gradient_accumulation_steps=1", "--set", "attn_implementation=sdpa",
        "--set", "use_liger_kernel=false", "--set", "report_to=none", "--set", "push_to_hub=false",
        "--set", "gradient_checkpointing=false",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "student" / "train_summary.json").read_text())
    assert summary["steps"] == 2 and summary["method"] == "full" and summary["rows"] == 6
    assert (out / "student" / "model.safetensors").is_file()
    resolved = yaml.safe_load((out / "recipe.resolved.yaml").read_text())
    assert resolved["train"]["data"][0]["source"] == str(data)
    assert resolved["student"]["eos_token"] == "<|im_end|>"
    assert "settings with no effect on what distill trains, ignored: " in result.stderr and "output_dir" in result.stderr


def test_bad_model_and_bad_data_are_one_line(tmp_path):
    rows = _jsonl(tmp_path / "plain.jsonl", [{"question": "1+1?", "answer": "2"}])
    recipe = _write(tmp_path, "r.yaml", "model_name_or_path: /no/such/model\ndataset_name: plain.jsonl\n"
                    "report_to: none\nassistant_only_loss: true\n")
    result = run_cli("train", "-r", recipe, "--out", tmp_path / "o1")
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert f"{rows}: no 'messages' column (has: question, answer)" in result.stderr
    recipe.write_text(recipe.read_text().replace("plain.jsonl", "msgs.jsonl"))
    _jsonl(tmp_path / "msgs.jsonl", _messages_rows(2))
    result = run_cli("train", "-r", recipe, "--out", tmp_path / "o2")
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "model folder /no/such/model does not exist" in result.stderr
    # a hub dataset while offline, and no data at all
    recipe.write_text(recipe.read_text().replace("msgs.jsonl", "open-r1/Mixture-of-Thoughts"))
    result = run_cli("train", "-r", recipe, "--out", tmp_path / "o3", env={"HF_DATASETS_OFFLINE": "1"})
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "cannot load hub dataset 'open-r1/Mixture-of-Thoughts'" in result.stderr
    recipe.write_text("model_name_or_path: /no/such/model\nreport_to: none\nassistant_only_loss: true\n")
    result = run_cli("train", "-r", recipe, "--out", tmp_path / "o4")
    assert result.returncode == 2 and "no training data: run `distill filter --out RUN` first" in result.stderr


def _card_name(student):
    return student.get("card") if isinstance(student, dict) else student


@pytest.mark.parametrize("name", cards.names("recipes"))
def test_every_bundled_recipe_loads(name):
    """Skips only a recipe whose student card is not there yet (they are written in parallel)."""
    raw = yaml.safe_load(cards.find("recipes", name).read_text())
    student = _card_name(raw.get("student"))
    if isinstance(student, str) and student not in cards.names("students"):
        pytest.skip(f"student card '{student}' not on this branch yet")
    recipe = load_recipe(name)
    assert recipe.name == name


@pytest.mark.parametrize("name", [n for n in cards.names("recipes") if n.startswith(
    ("r1-distill", "openr1", "sky-t1", "s1.1", "limo", "bespoke"))])
def test_bundled_training_recipes_are_valid_with_any_student(tmp_path, name, tiny_card):
    """Their train sections (and data entries) build today, with a stand-in student card."""
    path = cards.find("recipes", name)
    text = path.read_text()
    assert text.startswith("# ") and "Source:" in text and "distill train --recipe" in text
    raw = yaml.safe_load(text)
    student = raw["student"]
    raw["student"] = {**student, "card": str(tiny_card)} if isinstance(student, dict) else str(tiny_card)
    recipe = load_recipe(str(_write(tmp_path, f"{name}.yaml", yaml.safe_dump(raw))))
    assert recipe.train.method == "full" and recipe.train.max_length >= 16384
    if not name.startswith("r1-distill"):  # the R1 students train on a run folder (--data)
        assert recipe.train.data


@pytest.fixture
def tiny_card(tmp_path):
    return _write(tmp_path, "stand-in.yaml", "model: /models/stand-in\n")
