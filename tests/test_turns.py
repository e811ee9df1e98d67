"""Every assistant turn carries loss, in distill's own recipes and in published ones: counted
against a hand count on SmolLM2's real tokenizer, and through `distill train` itself."""

from __future__ import annotations

import json

import pytest
import yaml
from helpers import run_cli, write_yaml

from distill.recipes import load_recipe
from distill.train.sftdata import load_conversations
from distill.train.sfttokens import IGNORE, spans, tokenize, turn_totals

ANSWERS = ["The sum of 2 and 3 is 5.", "Then twice that is 10, since 5 + 5 = 10."]
TWO_TURNS = [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": ANSWERS[0]},
             {"role": "user", "content": "And twice that?"}, {"role": "assistant", "content": ANSWERS[1]}]


@pytest.fixture(scope="module")
def tokenizer(smollm2_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_dir)


def _labelled_text(tokenizer, loss_on: str, messages=TWO_TURNS) -> tuple[list[int], str]:
    import datasets

    row = tokenize(datasets.Dataset.from_list([{"messages": messages}]), tokenizer, loss_on, 4096)[0]
    supervised = [t for t in row["labels"] if t != IGNORE]
    return row["_turns"], tokenizer.decode(supervised)


def test_every_assistant_turn_is_supervised_by_hand_count(tokenizer):
    """The supervised tokens are exactly each answer and the end-of-turn text after it (what
    SmolLM2's template writes after an answer: `<|im_end|>` and a newline), nothing of the prompts."""
    turns, text = _labelled_text(tokenizer, "assistant")
    by_hand = [len(tokenizer(answer + "<|im_end|>\n", add_special_tokens=False)["input_ids"]) for answer in ANSWERS]
    assert turns == by_hand
    assert text == "".join(answer + "<|im_end|>\n" for answer in ANSWERS)


def test_last_turn_only_and_every_token(tokenizer):
    turns, text = _labelled_text(tokenizer, "last")
    assert text == ANSWERS[1] + "<|im_end|>\n" and len(turns) == 1
    turns, text = _labelled_text(tokenizer, "all")
    assert text == tokenizer.apply_chat_template(TWO_TURNS, tokenize=False)


def test_a_single_turn_row_trains_as_trl_masked_it(tokenizer):
    """One question, one answer: the labels are TRL's prompt/completion mask (the completion is
    what follows the prompt rendered with the generation prompt)."""
    messages = TWO_TURNS[:2]
    prompt = tokenizer.apply_chat_template(messages[:1], tokenize=True, add_generation_prompt=True, return_dict=True)
    whole = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    import datasets

    row = tokenize(datasets.Dataset.from_list([{"messages": messages}]), tokenizer, "assistant", 4096)[0]
    cut = len(prompt["input_ids"])
    assert row["input_ids"] == whole
    assert row["labels"] == [IGNORE] * cut + whole[cut:]


def test_a_template_that_rewrites_history_counts_the_turns_it_cannot_match(tokenizer):
    """A template that drops the reasoning of earlier answers (as Qwen3's and R1's do) renders
    the first answer differently once a second follows: that turn is counted, not guessed."""
    tokenizer = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    tokenizer.chat_template = (
        "{% for m in messages %}{% set c = m['content'] %}{% if m['role'] == 'assistant' and not loop.last %}"
        "{% set c = c.split('</think>')[-1] %}{% endif %}{{ '<|im_start|>' + m['role'] + '\\n' + c + '<|im_end|>\\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
    messages = [dict(m) for m in TWO_TURNS]
    messages[1]["content"] = "<think>2 and 3</think>" + ANSWERS[0]
    text, found, unmatched = spans(tokenizer, messages, "assistant")
    assert unmatched == 1 and len(found) == 1 and text[found[0][0]:found[0][1]] == ANSWERS[1] + "<|im_end|>\n"


def _write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _sharegpt(messages):
    return {"conversations": [{"from": {"user": "human", "assistant": "gpt"}[m["role"]], "value": m["content"]}
                              for m in messages]}


def _supervised(recipe, tokenizer) -> tuple[int, list[int]]:
    """Supervised tokens of a recipe's train.data, through the same path `distill train` takes."""
    t = recipe.train
    ds = load_conversations(t.data, t.data_seed, t.data_mix, t.data_mix_probs)
    rows = tokenize(ds, tokenizer, t.loss_on, 4096)
    totals = turn_totals(rows["_turns"])
    return sum(totals), totals


def _lf_recipe(tmp_path, name, dataset, extra=""):
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "dataset_info.json").write_text(json.dumps({
        "two": {"file_name": "two.jsonl", "formatting": "sharegpt"},
        "cut": {"file_name": "cut.jsonl", "formatting": "sharegpt"}}))
    return write_yaml(tmp_path / name, {"model_name_or_path": "m", "stage": "sft", "finetuning_type": "lora",
                                        "dataset": dataset, **yaml.safe_load(extra or "{}")})


def test_two_turn_rows_supervise_twice_the_cut_rows(tmp_path, tokenizer):
    """LLaMA-Factory files and distill's own recipes alike; mask_history: the last turn only."""
    second = [dict(m) for m in TWO_TURNS]
    second[3]["content"] = ANSWERS[0]  # both answers the same length: exactly twice
    two = [second] * 3
    cut = [second[:2]] * 3
    (tmp_path / "data").mkdir()
    _write_rows(tmp_path / "data" / "two.jsonl", [_sharegpt(m) for m in two])
    _write_rows(tmp_path / "data" / "cut.jsonl", [_sharegpt(m) for m in cut])
    lf_two, by_turn = _supervised(load_recipe(str(_lf_recipe(tmp_path, "a.yaml", "two"))), tokenizer)
    lf_cut, _ = _supervised(load_recipe(str(_lf_recipe(tmp_path, "b.yaml", "cut"))), tokenizer)
    assert lf_two == 2 * lf_cut and by_turn == [lf_cut, lf_cut]
    masked, by_turn = _supervised(load_recipe(str(_lf_recipe(tmp_path, "c.yaml", "two", "mask_history: true"))),
                                  tokenizer)
    assert masked == lf_cut and by_turn == [lf_cut]
    prompt_too, _ = _supervised(load_recipe(str(_lf_recipe(tmp_path, "d.yaml", "two", "train_on_prompt: true"))),
                                tokenizer)
    assert prompt_too > lf_two

    _write_rows(tmp_path / "two-msgs.jsonl", [{"messages": m} for m in two])
    _write_rows(tmp_path / "cut-msgs.jsonl", [{"messages": m} for m in cut])
    ours = lambda f: write_yaml(tmp_path / f"{f}.yaml", {"name": f, "student": "smollm2-135m",  # noqa: E731
                                                           "train": {"data": [{"source": str(tmp_path / f)}]}})
    own_two, _ = _supervised(load_recipe(str(ours("two-msgs.jsonl"))), tokenizer)
    own_cut, _ = _supervised(load_recipe(str(ours("cut-msgs.jsonl"))), tokenizer)
    assert own_two == 2 * own_cut == 2 * lf_cut

    trl = write_yaml(tmp_path / "trl.yaml", {"model_name_or_path": "m", "dataset_name": str(tmp_path / "two-msgs.jsonl"),
                                             "assistant_only_loss": True})
    assert _supervised(load_recipe(str(trl)), tokenizer)[0] == own_two


def test_train_summary_records_tokens_per_turn(tmp_path, tiny_qwen2):
    """Through `distill train` on a LLaMA-Factory file: the summary has the supervised tokens of
    each turn position, the first and the second answer of two-turn rows."""
    data = tmp_path / "data"
    data.mkdir()
    _write_rows(data / "two.jsonl", [_sharegpt(TWO_TURNS)] * 4)
    recipe = _lf_recipe(tmp_path, "lf.yaml", "two", "per_device_train_batch_size: 2\nmax_steps: 1\n"
                        "report_to: none\ncutoff_len: 256\ndisable_gradient_checkpointing: true")
    out = tmp_path / "run"
    result = run_cli("train", "--recipe", recipe, "--out", out, "--set", f"model_name_or_path={tiny_qwen2}")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((out / "student" / "train_summary.json").read_text())
    first, second = summary["supervised_tokens_by_turn"]
    assert first > 0 and second > 0 and first + second == summary["supervised_tokens"]
    assert summary["assistant_turns_unmatched"] == 0


def test_tokenized_rows_are_kept_for_a_resumed_run(tmp_path, tokenizer):
    """The second preparation of the same rows with the same tokenizer and masking reads the
    first one's tokens back; other masking tokenizes again (and replaces the old cache)."""
    import datasets

    from distill.train.sfttokens import cached

    rows = datasets.Dataset.from_list([{"messages": TWO_TURNS}] * 3)
    first, reused = cached(tmp_path, rows, tokenizer, "assistant", 4096)
    assert not reused and len(list((tmp_path / "tokens").iterdir())) == 1
    again, reused = cached(tmp_path, rows, tokenizer, "assistant", 4096)
    assert reused and again["labels"] == first["labels"] and again["input_ids"] == first["input_ids"]
    other, reused = cached(tmp_path, rows, tokenizer, "last", 4096)
    assert not reused and other["labels"] != first["labels"]
    assert len(list((tmp_path / "tokens").iterdir())) == 1
