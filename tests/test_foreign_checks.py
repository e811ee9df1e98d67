"""Published recipes' values read with their tools' meaning, and every mistake in them one line:
the stage first, real keys never "unknown", features distill lacks named as such, LLaMA-Factory
dataset names resolved (or refused) as LLaMA-Factory resolves them, packages and devices
checked before any data or model loads."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli, write_yaml

from distill.config import TrainConfig
from distill.errors import ConfigError
from distill.recipes import load_recipe


def _lf(tmp_path, name="lf.yaml", **keys):
    return write_yaml(tmp_path / name, {"model_name_or_path": "m", "stage": "sft", **keys})


def _refused(path) -> str:
    with pytest.raises(ConfigError) as e:
        load_recipe(str(path))
    line = str(e.value)
    assert "\n" not in line and len(line) < 300, line
    return line


def test_the_stage_is_decided_before_any_key(tmp_path):
    line = _refused(_lf(tmp_path, stage="dpo", pref_beta=0.1, pref_loss="sigmoid", no_such_key=1))
    assert "a LLaMA-Factory DPO (stage: dpo) file, not a supervised fine-tuning recipe" in line
    line = _refused(write_yaml(tmp_path / "grpo" / "config.yaml", {
        "model_name_or_path": "m", "reward_funcs": ["accuracy"], "num_generations": 8, "beta": 0.04,
        "use_vllm": True, "not_a_key": 1}))
    assert "a TRL GRPO recipe" in line
    line = _refused(write_yaml(tmp_path / "dpo.yaml", {"model_name_or_path": "m", "beta": 0.01,
                                                       "max_prompt_length": 512, "loss_type": "sigmoid"}))
    assert "a TRL " in line and "DPO" in line
    line = _refused(write_yaml(tmp_path / "v1.yaml", {"model": "Qwen/Qwen3-0.6B", "model_class": "llm",
                                                      "train_dataset": "data/v1_sft_demo.yaml"}))
    assert "v1 config layout" in line
    assert "inference file" in _refused(write_yaml(tmp_path / "i.yaml", {"model_name_or_path": "m",
                                                                         "template": "qwen3", "infer_backend": "vllm"}))


def test_real_keys_are_never_unknown_and_unknown_ones_are_short(tmp_path):
    line = _refused(_lf(tmp_path, galore_layerwise=True))
    assert line.endswith("not supported by distill (a LLaMA-Factory feature): galore_layerwise: True; remove it")
    line = _refused(_lf(tmp_path, zzzz_qqqq=1))
    assert "unknown key 'zzzz_qqqq': no LLaMA-Factory or transformers argument has this name; remove it" in line
    line = _refused(_lf(tmp_path, cutof_len=1))
    assert "(did you mean cutoff_len" in line and len(line) < 200
    # a key at LLaMA-Factory's default is fine even where distill lacks the feature
    assert load_recipe(str(_lf(tmp_path, use_galore=False, galore_rank=16))).train.method == "lora"


def test_published_values_keep_their_meaning(tmp_path):
    t = load_recipe(str(_lf(tmp_path, save_steps=0.05, logging_steps=0.1, push_to_hub=True,
                            output_dir="saves/qwen3-4b/lora/sft"))).train
    assert (t.save_steps, t.logging_steps) == (0.05, 0.1)  # shares of the total steps, as transformers reads them
    assert t.hub_model_id == "sft"  # transformers names the repository after output_dir
    t = load_recipe(str(_lf(tmp_path, quantization_bit=4, double_quantization=False))).train
    assert (t.method, t.qlora_double_quant) == ("qlora", False)
    line = _refused(_lf(tmp_path, quantization_bit=4, quantization_method="hqq"))
    assert "4-bit hqq quantization" in line and "4-bit bitsandbytes QLoRA only" in line
    assert "8-bit" in _refused(_lf(tmp_path, quantization_bit=8))
    with pytest.raises(ConfigError, match="save_steps must be a whole number of steps, or a share"):
        load_recipe(str(_lf(tmp_path, save_steps=2.5)))


def test_liger_is_opt_in():
    from distill.train import train_options

    assert train_options.liger(TrainConfig(), on_gpu=True) is False  # never switched on by itself


def test_packages_and_values_are_checked_before_anything_loads(tmp_path):
    """optim: paged_adamw_8bit without bitsandbytes, an older packing_strategy: one line each from
    `distill train`, with exit 2, before the (missing) model or data is touched."""
    for extra, expected in (({"optim": "paged_adamw_8bit"}, "train.trl.optim: paged_adamw_8bit needs"),
                            ({"packing_strategy": "ffd"}, "train.trl.packing_strategy: 'ffd' is not one of TRL's")):
        recipe = write_yaml(tmp_path / "r.yaml", {"model_name_or_path": "/no/such/model",
                                                  "dataset_name": "/no/such/data.jsonl", "report_to": "none", **extra})
        result = run_cli("train", "--recipe", recipe, "--out", tmp_path / "run")
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and expected in lines[-1] and "Traceback" not in result.stderr, result.stderr


def _info(tmp_path, entries: dict, files=()):
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "dataset_info.json").write_text(json.dumps(entries))
    for name in files:
        (data / name).write_text("[]")
    return data


@pytest.mark.parametrize("entry,expected", [
    ({"file_name": "missing_file"}, "file_name missing_file is not in"),
    ({"ms_hub_url": "AI-ModelScope/x"}, "is a ModelScope dataset (ms_hub_url), which distill does not load"),
    ({"script_url": "x"}, "is a dataset loading script"),
    ({"cloud_file_name": "s3://b/x.json"}, "is a cloud-storage file"),
    ({"file_name": "d.json", "ranking": True}, "is preference data (ranking: true)"),
    ({"file_name": "d.json", "columns": {"messages": "c", "images": "images"}, "formatting": "sharegpt"},
     "is multimodal (images column)"),
    ({"file_name": "d.json", "columns": {"tools": "tools"}}, "is tool-calling data"),
    ({"file_name": "d.json", "formatting": "chatml"}, "formatting 'chatml' must be one of alpaca, sharegpt, openai"),
])
def test_dataset_info_entries_are_read_or_refused_in_one_line(tmp_path, entry, expected):
    _info(tmp_path, {"d": entry}, ["d.json"])
    line = _refused(_lf(tmp_path, dataset="d"))
    assert expected in line


def test_dataset_dir_mistakes_name_their_cause(tmp_path):
    line = _refused(_lf(tmp_path, dataset="d", dataset_dir="nowhere"))
    assert "dataset_dir: no dataset_info.json in" in line and "give dataset_dir" not in line
    _info(tmp_path, {"a": {"file_name": "a.json"}}, ["a.json"])
    line = _refused(_lf(tmp_path, dataset="b"))
    assert "dataset 'b' is not in" in line and "it has a" in line
    (tmp_path / "data" / "dataset_info.json").write_text('{"a": {"file_name": "a.json"},}')
    assert "not readable JSON" in _refused(_lf(tmp_path, dataset="a"))


def test_llamafactory_data_as_llamafactory_converts_it(tmp_path):
    """alpaca: instruction and input joined by a newline, history as earlier turns, system;
    sharegpt: tags, a first system turn, and rows whose roles do not alternate skipped."""
    from distill.train.sftdata import load_conversations

    data = _info(tmp_path, {
        "al": {"file_name": "al.json", "columns": {"prompt": "instruction", "query": "input", "response": "output",
                                                   "history": "history", "system": "system"}},
        "sg": {"file_name": "sg.jsonl", "formatting": "sharegpt",
               "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
                        "system_tag": "system"}, "columns": {"messages": "messages"}}})
    (data / "al.json").write_text(json.dumps([
        {"instruction": "Translate.", "input": "Good morning", "output": "Bonjour", "system": "Be brief.",
         "history": [["Hi", "Hello"]]},
        {"instruction": "Name a colour.", "input": "", "output": "Blue", "system": "", "history": []}]))
    (data / "sg.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
                      {"role": "assistant", "content": "A"}]},
        {"messages": [{"role": "user", "content": "Q"}, {"role": "user", "content": "Q2"}]}]))
    t = load_recipe(str(_lf(tmp_path, dataset="al,sg", mix_strategy="concat"))).train
    rows = load_conversations(t.data[:1])["messages"]
    assert rows[0] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                       {"role": "assistant", "content": "Hello"},
                       {"role": "user", "content": "Translate.\nGood morning"}, {"role": "assistant", "content": "Bonjour"}]
    assert rows[1] == [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue"}]
    (row,) = load_conversations(t.data[1:])["messages"]  # the second row's roles do not alternate: skipped
    assert row == [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
                   {"role": "assistant", "content": "A"}]
    t = load_recipe(str(_lf(tmp_path, dataset="al,al", mix_strategy="interleave_over",
                            interleave_probs="0.5,0.5"))).train
    assert t.data_mix == "interleave_over" and t.data_mix_probs == (0.5, 0.5)
    assert len(load_conversations(t.data, 0, t.data_mix, t.data_mix_probs)) >= 4
    t = load_recipe(str(_lf(tmp_path, dataset="al", max_samples=1))).train
    assert len(load_conversations(t.data)) == 1


def test_bad_rows_cost_themselves_and_strings_are_one_line(tmp_path):
    """A null content is not trained as the text "None"; a `messages` column of plain strings is one line."""
    from distill.config import TrainData
    from distill.errors import UserError
    from distill.train.sftdata import load_conversations

    good = {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}
    null = {"messages": [{"role": "user", "content": None}, {"role": "assistant", "content": "A"}]}
    (tmp_path / "a.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(null) + "\n")
    assert load_conversations((TrainData(source=str(tmp_path / "a.jsonl")),))["messages"] == [good["messages"]]
    (tmp_path / "b.jsonl").write_text(json.dumps({"messages": ["Q", "A"]}) + "\n")
    with pytest.raises(UserError, match="is not a {role, content} mapping"):
        load_conversations((TrainData(source=str(tmp_path / "b.jsonl")),))


def test_media_columns_are_refused_not_dropped(tmp_path):
    from distill.config import TrainData
    from distill.errors import UserError
    from distill.train.sftdata import load_conversations

    row = {"messages": [{"role": "user", "content": "What is shown?"}, {"role": "assistant", "content": "A cat."}],
           "images": ["cat.png"]}
    (tmp_path / "vl.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(UserError, match="rows carry media \\(column 'images'\\); distill trains text-only"):
        load_conversations((TrainData(source=str(tmp_path / "vl.jsonl")),))
    # named columns leave the media out on purpose
    kept = load_conversations((TrainData(source=str(tmp_path / "vl.jsonl"), columns=("messages",)),))
    assert kept["messages"] == [row["messages"]]
