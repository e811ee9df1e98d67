"""Every published training YAML of open-r1 (past and present, every branch), LLaMA-Factory,
SkyThought, OpenThoughts and the alignment handbook, at the commits in tests/corpus/sources.yaml,
through distill train's recipe checks, offline.

The fixture files hold each file's keys and values (tests/corpus/collect.py wrote them from the
repositories; a chat template is replaced by a short one). Each file either trains, with the
learning rate, epochs, batch, length, LoRA, loss masking and packing it states (or its tool's
default), or is refused in one line under 300 characters that names the reason: a stage other
than SFT named as such, never a real key called unknown, never a traceback. expected.yaml holds
the outcome of each file; the README's counts come from it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from distill.errors import UserError
from distill.foreign import keys
from distill.recipes import load_recipe

CORPUS = Path(__file__).parent / "corpus"
# where each project's files are run from (LLaMA-Factory resolves dataset_dir from there)
ROOTS = {"SkyThought": "skythought/train/LLaMA-Factory"}
EXPECTED = yaml.safe_load((CORPUS / "expected.yaml").read_text())


def _files():
    for project in sorted(p for p in CORPUS.iterdir() if p.is_dir()):
        for path in sorted(project.rglob("*.yaml")):
            yield f"{project.name}/{path.relative_to(project)}"


def outcome(name: str) -> tuple[str, object]:
    """('trains', recipe) or ('refused', the one error line), for one corpus file."""
    project, rel = name.split("/", 1)
    root = CORPUS / project / ROOTS.get(project, "")
    path = (CORPUS / project / rel).relative_to(root) if (CORPUS / project / rel).is_relative_to(root) \
        else CORPUS / project / rel
    cwd = os.getcwd()
    os.chdir(root)
    try:
        return "trains", load_recipe(str(path))
    except UserError as e:
        return "refused", str(e)
    finally:
        os.chdir(cwd)


def reason(message: str) -> str:
    """The kind of refusal, for the README's counts."""
    for marker, kind in (("not a supervised fine-tuning recipe", "not SFT"), ("v1 config layout", "not SFT"),
                         ("multimodal", "multimodal"), ("vision-language", "multimodal"),
                         ("not supported by distill", "feature distill lacks"), ("unknown key", "unknown key"),
                         ("dataset_info.json", "data not resolvable"), ("dataset_dir", "data not resolvable"),
                         ("dataset '", "data not resolvable")):
        if marker in message:
            return kind
    return "other"


def test_every_corpus_file_has_an_expected_outcome():
    assert sorted(EXPECTED) == sorted(_files())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_published_file(name, capsys):
    kind, result = outcome(name)
    expected = EXPECTED[name]
    if kind == "refused":
        line = result
        assert "\n" not in line and len(line) < 300, line
        assert expected.startswith("refused: "), line
        assert reason(line) == expected.removeprefix("refused: ").split(" (")[0], line
        if "unknown key" in line:  # only keys no tool defines are called unknown
            key = line.split("unknown key '")[1].split("'")[0]
            from distill.foreign.llamafactory import _valid
            from distill.foreign.openr1 import _trl

            assert key not in _valid()[0] | _trl()[0]
        return
    assert expected == "trains", f"{name} trains now; expected {expected}"
    raw = yaml.safe_load((CORPUS / name).read_text())
    _check_resolved(raw, result.train, name)
    for line in capsys.readouterr().err.splitlines():
        assert len(line) < 400, line


def _check_resolved(raw: dict, t, name: str) -> None:
    """The settings the file states, or its tool's defaults, are what distill trains with."""
    lf = "LLaMA-Factory" in name or "SkyThought" in name or "open-thoughts" in name
    get = lambda key, default: raw[key] if raw.get(key) is not None else default  # noqa: E731
    assert t.learning_rate == pytest.approx(float(get("learning_rate", 5e-5 if lf else 2e-5)))
    assert t.epochs == pytest.approx(float(get("num_train_epochs", 3.0)))
    assert (t.batch_size, t.grad_accum) == (get("per_device_train_batch_size", 8),
                                            get("gradient_accumulation_steps", 1))
    if lf:
        assert t.max_length == get("cutoff_len", 2048)
        rank = get("lora_rank", 8)
        assert (t.lora_r, t.lora_alpha) == (rank, get("lora_alpha", 2 * rank))
        target = get("lora_target", "all")
        assert t.lora_target_modules == ("all-linear" if target == "all" else
                                         tuple(x.strip() for x in target.split(",")) if isinstance(target, str)
                                         else tuple(target))
        assert t.method == ("qlora" if raw.get("quantization_bit") == 4 else get("finetuning_type", "lora"))
        assert t.loss_on == ("all" if raw.get("train_on_prompt") else "last" if raw.get("mask_history")
                             else "assistant")
        assert t.packing == bool(raw.get("packing") or raw.get("neat_packing"))
    else:
        assert t.max_length == get("max_length", get("max_seq_length", 1024))
        peft = raw.get("use_peft", False)
        assert t.method == (("qlora" if raw.get("load_in_4bit") else "lora") if peft else "full")
        if peft:
            assert (t.lora_r, t.lora_alpha) == (get("lora_r", 16), get("lora_alpha", 32))
            targets = raw.get("lora_target_modules")
            assert t.lora_target_modules == (tuple(targets) if isinstance(targets, list) else targets)
        assert t.loss_on == ("assistant" if raw.get("assistant_only_loss") else "all")
        assert t.packing == bool(raw.get("packing", False))
    assert t.liger == bool(raw.get("use_liger_kernel", raw.get("use_liger", raw.get("enable_liger_kernel", False))))


def test_the_published_keys_cover_the_tools():
    """The key lists the checks rely on are there and name their sources."""
    published = keys.published()
    assert len(published["llamafactory"]["keys"]) > 300 and len(published["llamafactory"]["commit"]) == 40
    assert {"cutoff_len", "mask_history", "neat_packing", "galore_layerwise"} <= set(published["llamafactory"]["keys"])
    assert {"GRPO", "DPO", "KTO"} <= set(published["trl"]["stages"])


# (corpus file, --set changes beyond the model: what a CPU or an offline machine needs)
_ONE_STEP = [
    ("LLaMA-Factory/examples/train_lora/qwen3_lora_sft.yaml", []),  # alpaca rows, two datasets
    ("LLaMA-Factory/examples/train_full/qwen3_full_sft.yaml", ["flash_attn=sdpa"]),
    ("open-r1/recipes/OpenR1-Distill-7B/sft/config_distill.yaml",
     ["attn_implementation=sdpa", "use_liger_kernel=false", "push_to_hub=false", "report_to=none",
      "dataset_name=MESSAGES", "max_length=512"]),
    ("alignment-handbook/recipes/smollm2/sft/config.yaml",
     ["push_to_hub=false", "report_to=none", "dataset_name=MESSAGES", "dataset_config=null",
      "attn_implementation=sdpa"]),
]


@pytest.mark.slow
@pytest.mark.parametrize("name,changes", _ONE_STEP, ids=[n for n, _ in _ONE_STEP])
def test_published_files_train_one_step(name, changes, tmp_path, tiny_qwen2):
    """A handful of files train for one step on a tiny model with their own data format: the
    LLaMA-Factory ones on stand-in rows laid out as their dataset_info.json declares, the TRL
    ones on chat `messages` rows (their hub datasets' layout) in a local file."""
    import json
    import subprocess
    import sys

    messages = tmp_path / "messages.jsonl"
    messages.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"What is {i} + {i}?"}, {"role": "assistant", "content": f"{2 * i}"},
        {"role": "user", "content": "Thanks."}, {"role": "assistant", "content": "You are welcome."}]}) + "\n"
        for i in range(4)))
    project, rel = name.split("/", 1)
    args = ["train", "--recipe", rel, "--out", str(tmp_path / "run"), "--set", f"model_name_or_path={tiny_qwen2}",
            "--set", "max_steps=1", "--set", "bf16=false"]
    for change in changes:
        args += ["--set", change.replace("MESSAGES", str(messages))]
    result = subprocess.run([sys.executable, "-m", "distill", *args], capture_output=True, text=True, timeout=600,
                            cwd=CORPUS / project, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "student" / "train_summary.json").read_text())
    assert summary["steps"] == 1 and summary["supervised_tokens"] > 0
