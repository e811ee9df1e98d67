"""Student cards and distill.student: every bundled card loads, its chat template keeps the
reasoning in the part TRL supervises (and only there), the EOS ends it; template and RoPE mistakes
are one line; one real `distill train` on a new card."""

from __future__ import annotations

import json

import pytest
from conftest import _tiny
from helpers import run_cli, trace, write_traces, write_yaml

from distill import cards
from distill.config import StudentCard
from distill.errors import ConfigError, UserError
from distill.recipes import load_card, load_recipe
from distill.train.student import check_template, context_warning, load_tokenizer, rope_overrides

# Which tiny architecture stands in for each bundled card. A new card must be added here, so that
# no bundled card goes untested.
FAMILY = {
    "smollm2-135m": "smollm2",
    "qwen2.5-math-1.5b": "qwen2",
    "qwen2.5-math-7b": "qwen2",
    "qwen2.5-math-7b-rope-300k": "qwen2",
    "qwen2.5-14b": "qwen2",
    "qwen2.5-32b": "qwen2",
    "qwen2.5-7b-instruct": "qwen2",
    "qwen2.5-32b-instruct": "qwen2",
    "qwen3-1.7b": "qwen3",
    "qwen3-8b": "qwen3",
    "llama-3.1-8b": "llama3",
    "llama-3.3-70b-instruct": "llama3",
}
NEW_CARDS = [name for name in FAMILY if name != "smollm2-135m"]
# Cards that track the hub's main branch, and why: no public source pins open-r1's RoPE-300k
# copy; SmolLM2 is loaded from the GGUF copy the quickstart converts, not from the hub.
UNPINNED = {"qwen2.5-math-7b-rope-300k", "smollm2-135m"}

# Llama 3's special tokens and pre-tokenizer split (tiktoken's cl100k pattern, as in Meta's
# tokenizer.json), laid over SmolLM2's vocabulary: whitespace before a special token tokenizes as
# in the real Llama 3 tokenizer (SmolLM2's GPT-2 split would break "\n\n" differently at the end
# of the generation prompt than inside a conversation).
LLAMA3_SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, smollm2_dir, tiny_qwen2):
    """A tiny random-weight model per family, each with SmolLM2's real tokenizer (for the Llama 3
    cards: plus Llama 3's special tokens and split, and no chat template or pad token, as Meta's
    base tokenizer)."""
    from tokenizers import Regex, pre_tokenizers
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    tok.add_special_tokens({"additional_special_tokens": LLAMA3_SPECIAL})
    tok.bos_token, tok.eos_token, tok.pad_token = "<|begin_of_text|>", "<|end_of_text|>", None
    tok.chat_template = None
    tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    llama3_tok = tmp_path_factory.mktemp("llama3-tokenizer")
    tok.save_pretrained(llama3_tok)
    return {
        "qwen2": tiny_qwen2,
        "qwen3": _tiny("qwen3", tmp_path_factory.mktemp("tiny-qwen3"), smollm2_dir),
        "llama3": _tiny("llama", tmp_path_factory.mktemp("tiny-llama3"), llama3_tok),
        "smollm2": _tiny("llama", tmp_path_factory.mktemp("tiny-smollm2"), smollm2_dir),
    }


def test_every_bundled_student_card_is_covered_here():
    assert sorted(cards.names("students")) == sorted(FAMILY)


@pytest.mark.parametrize("name", NEW_CARDS)
def test_card_loads_with_its_template_eos_and_lora_targets(name):
    card = load_card(StudentCard, name)
    assert "/" in card.model  # a hub id
    if name in UNPINNED:
        assert card.revision is None
    else:  # a commit, so that the student is the same model next year
        assert len(card.revision) == 40 and set(card.revision) <= set("0123456789abcdef")
    assert "{%" in card.chat_template and "messages" in card.chat_template  # the file's text, not its name
    assert card.eos_token in card.chat_template
    assert set(card.lora_target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert card.max_length >= 4096 and card.description


def test_the_rope_300k_card_extends_context_as_open_r1_does():
    card = load_card(StudentCard, "qwen2.5-math-7b-rope-300k")
    assert card.rope_theta == 300000 and card.max_length == 32768 and card.rope_scaling is None
    assert load_card(StudentCard, "qwen2.5-math-7b").max_length == 4096  # the base model's own context


R = ["Add 2 and 2: that makes 4.", "Three times three is nine.", "First I count.", "Six it is."]
A = ["The answer is \\boxed{4}.", "\\boxed{9}", "Two.", "\\boxed{6}"]


def _assistant(i: int) -> dict:
    return {"role": "assistant", "content": f"<think>\n{R[i]}\n</think>\n\n{A[i]}"}


CONVERSATIONS = [
    [{"role": "user", "content": "What is 2 + 2?"}, _assistant(0)],
    [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is 3 times 3?"}, _assistant(1)],
    [{"role": "user", "content": "Count to two."}, _assistant(2), {"role": "user", "content": "And 3 + 3?"}, _assistant(3)],
]


def _tokenized_by_trl(tokenizer, model_dir, tmp_path):
    """Each conversation as TRL's SFTTrainer tokenizes and masks it (prompt/completion, completion
    loss only): its input ids, and which of them carry loss (TRL folds its completion mask into
    the labels: -100 where no loss)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    rows = Dataset.from_list([{"prompt": c[:-1], "completion": c[-1:]} for c in CONVERSATIONS])
    args = SFTConfig(output_dir=str(tmp_path / "out"), completion_only_loss=True, max_length=4096, report_to="none",
                     use_cpu=True, bf16=False, per_device_train_batch_size=1)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir), args=args, train_dataset=rows,
                         processing_class=tokenizer)
    data = trainer.train_dataset
    return [(ids, [int(label != -100) for label in labels]) for ids, labels in zip(data["input_ids"], data["labels"])]


@pytest.mark.parametrize("name", sorted(FAMILY))
def test_template_supervises_reasoning_answer_and_eos_and_nothing_of_the_prompt(name, tiny_models, tmp_path):
    family = FAMILY[name]
    card = load_card(StudentCard, name)
    tokenizer = load_tokenizer(str(tiny_models[family]), {}, card)  # distill's own setup: template, EOS, checks
    if card.eos_token:
        assert tokenizer.eos_token == card.eos_token
    decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)  # noqa: E731
    for conversation, (ids, mask) in zip(CONVERSATIONS, _tokenized_by_trl(tokenizer, tiny_models[family], tmp_path)):
        start = mask.index(1)
        assert all(mask[start:])  # one supervised stretch, at the end
        prompt, supervised = decode(ids[:start]), decode(ids[start:])
        # exactly the rendered prompt goes unsupervised ...
        assert prompt == tokenizer.apply_chat_template(conversation[:-1], tokenize=False, add_generation_prompt=True)
        # ... and exactly the reasoning, the answer and the EOS are supervised (then only whitespace)
        final = conversation[-1]["content"]
        assert supervised.startswith(final + tokenizer.eos_token) and not supervised[len(final + tokenizer.eos_token):].strip()
        assert [t for t in ids[start:] if decode([t]).strip()][-1] == tokenizer.eos_token_id
        assert conversation[-2]["content"] in prompt
        if len(conversation) == 4:  # an earlier assistant turn is context: its answer is there ...
            assert A[2] in prompt
            # ... and its reasoning too, except with Qwen3's template, which drops earlier reasoning
            assert (R[2] in prompt) == (family != "qwen3")
    if card.chat_template and "You are Qwen" in card.chat_template:  # Qwen2.5-Instruct's default system turn
        first = tokenizer.apply_chat_template(CONVERSATIONS[0], tokenize=False)
        assert first.startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud.")
        assert "You are Qwen" not in tokenizer.apply_chat_template(CONVERSATIONS[1], tokenize=False)
    if family == "llama3":
        text = tokenizer.apply_chat_template(CONVERSATIONS[1], tokenize=False)
        assert text.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nAnswer briefly.<|eot_id|>")
        assert tokenizer.pad_token == "<|eot_id|>"  # Llama 3 has no pad token: the EOS pads


def test_qwen3_template_writes_an_empty_think_block_for_an_answer_without_reasoning(tiny_models):
    tokenizer = load_tokenizer(str(tiny_models["qwen3"]), {}, load_card(StudentCard, "qwen3-8b"))
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
                                         tokenize=False)
    assert text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\nHello!<|im_end|>\n")
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                           add_generation_prompt=True, enable_thinking=False)
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


# ---------------------------------------------------------------- template mistakes: one line each

R1_DISTILL_LIKE = (  # DeepSeek-R1-Distill's shape: only the text after </think> stays in an assistant turn
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ '<｜User｜>' + m['content'] }}"
    "{% elif m['role'] == 'assistant' %}{% set c = m['content'] %}{% if '</think>' in c %}"
    "{% set c = c.split('</think>')[-1] %}{% endif %}{{ '<｜Assistant｜>' + c + eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}{% endif %}"
)
CHATML_TURN = "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"


def _card(tmp_path, **fields) -> StudentCard:
    return StudentCard(name="mine", model=str(tmp_path), **fields)


@pytest.mark.parametrize("template, eos, message", [
    (R1_DISTILL_LIKE, None, "its chat template drops the <think> reasoning from the assistant turn"),
    # the generation prompt says "assistant:" where the turn says "assistant": TRL's mask would be off
    (CHATML_TURN + "{% if add_generation_prompt %}{{ '<|im_start|>assistant:\\n' }}{% endif %}", None,
     "renders the prompt with add_generation_prompt=True as ':\\n' where the whole conversation has '\\n<think>"),
    # ChatML ends a turn with <|im_end|>; a tokenizer whose EOS is <|endoftext|> (Qwen2.5 base) never sees it
    (CHATML_TURN + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}", "<|endoftext|>",
     "ends the assistant turn with '<|im_end|>', not with the tokenizer's EOS '<|endoftext|>'"),
    ("{% for m in messages %}{{ m['content'] }}{% endfor %}", None, "ends the assistant turn with 'nothing'"),
    (CHATML_TURN, "<|eot_id|>", "eos_token '<|eot_id|>' is not a token of the tokenizer"),
    ("{% for m in messages %}{{ m.nonexistent.deeper }}{% endfor %}", None, "its chat template fails on a plain conversation"),
])
def test_template_mistakes_are_one_line(tiny_qwen2, template, eos, message):
    card = StudentCard(name="mine", model=str(tiny_qwen2), chat_template=template, eos_token=eos)
    with pytest.raises(UserError) as e:
        load_tokenizer(str(tiny_qwen2), {}, card)
    assert "student card 'mine'" in str(e.value) and message in str(e.value)
    assert "\n" not in str(e.value)


def test_a_token_merge_at_the_prompt_boundary_is_a_warning(tiny_models, capsys):
    """SmolLM2's own GPT-2 split tokenizes the generation prompt's final "\\n\\n" as one token alone and
    as two before the answer: the text is a prefix, the tokens are not; TRL copes, distill says so."""
    template = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n\\n' + m['content'] + '<|im_end|>\\n' }}"
                "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n\\n' }}{% endif %}")
    path = str(tiny_models["smollm2"])
    load_tokenizer(path, {}, StudentCard(name="mine", model=path, chat_template=template))
    out = capsys.readouterr().out
    assert "warning: student card 'mine': the tokenizer merges the end of the generation prompt" in out


def test_a_template_without_a_turn_end_after_eos_applied_passes(tiny_qwen2):
    """The check runs after the card's EOS is applied: ChatML with eos_token <|im_end|> passes."""
    card = StudentCard(name="mine", model=str(tiny_qwen2), eos_token="<|im_end|>",
                       chat_template=CHATML_TURN + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
    tokenizer = load_tokenizer(str(tiny_qwen2), {}, card)
    check_template(tokenizer, card)  # idempotent, no error
    assert tokenizer.eos_token == "<|im_end|>"


# ---------------------------------------------------------------- template files beside a card


def test_a_template_file_is_read_relative_to_its_card(tmp_path, tiny_qwen2):
    (tmp_path / "cards" / "tpl").mkdir(parents=True)
    (tmp_path / "cards" / "tpl" / "mine.jinja").write_text(CHATML_TURN)
    card = write_yaml(tmp_path / "cards" / "mine.yaml", {"model": str(tiny_qwen2), "chat_template": "tpl/mine.jinja"})
    assert load_card(StudentCard, str(card)).chat_template == CHATML_TURN
    # a file named by --set is relative to the current directory (absolute here)
    other = tmp_path / "other.jinja"
    other.write_text("{{ 'other' }}")
    recipe = load_recipe(None, [f"student={card}", f"student.chat_template={other}"])
    assert recipe.student.chat_template == "{{ 'other' }}"
    # one named in a recipe is relative to the recipe
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "r.jinja").write_text("{{ 'from the recipe' }}")
    recipe = write_yaml(tmp_path / "recipes" / "r.yaml", {"student": {"card": str(card), "chat_template": "r.jinja"}})
    assert load_recipe(str(recipe)).student.chat_template == "{{ 'from the recipe' }}"


def test_a_missing_template_file_is_one_line(tmp_path, tiny_qwen2, tiny_recipe):
    card = write_yaml(tmp_path / "cards" / "gone.yaml", {"model": str(tiny_qwen2), "chat_template": "templates/nope.jinja"})
    with pytest.raises(ConfigError, match=r"gone.yaml: chat_template file .*templates/nope.jinja cannot be read"):
        load_card(StudentCard, str(card))
    result = run_cli("train", "-r", tiny_recipe(), "--data", tmp_path, "--out", tmp_path / "o", "--set", f"student={card}")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr[-1500:]
    assert "chat_template file" in result.stderr and "relative to the card's folder" in result.stderr


# ---------------------------------------------------------------- RoPE overrides


def _inv_freq(theta: float, head_dim: int):
    import torch

    return 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))


def test_rope_theta_reaches_the_loaded_model(tiny_qwen2):
    import torch
    from transformers import AutoModelForCausalLM

    assert rope_overrides(str(tiny_qwen2), {}, _card(tiny_qwen2), 8192) == {}  # nothing set: nothing changed
    overrides = rope_overrides(str(tiny_qwen2), {}, _card(tiny_qwen2, rope_theta=300000), 8192)
    config = overrides["config"]
    assert config.rope_parameters == {"rope_type": "default", "rope_theta": 300000.0}
    assert config.max_position_embeddings == 8192  # raised from 2048 to the card's training length
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen2, **overrides)
    head_dim = model.config.hidden_size // model.config.num_attention_heads
    assert torch.allclose(model.model.rotary_emb.inv_freq, _inv_freq(300000.0, head_dim))
    plain = AutoModelForCausalLM.from_pretrained(tiny_qwen2)
    assert not torch.allclose(plain.model.rotary_emb.inv_freq, model.model.rotary_emb.inv_freq)
    # a card shorter than the model's context leaves max_position_embeddings alone
    assert rope_overrides(str(tiny_qwen2), {}, _card(tiny_qwen2, rope_theta=300000), 512)["config"].max_position_embeddings == 2048


def test_rope_scaling_and_theta_together_keep_both(tiny_models):
    """transformers 5's `rope_scaling` replaces the whole RoPE dict (base included); the card's base
    and its scaling must both survive, with YaRN's original length taken before the context grows."""
    from transformers import AutoModelForCausalLM

    path = str(tiny_models["qwen3"])
    card = StudentCard(name="mine", model=path, rope_theta=1000000, rope_scaling={"rope_type": "yarn", "factor": 4.0})
    config = rope_overrides(path, {}, card, 8192)["config"]
    assert config.rope_parameters == {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1000000.0,
                                      "original_max_position_embeddings": 2048}
    assert config.max_position_embeddings == 8192
    model = AutoModelForCausalLM.from_pretrained(path, config=config)
    assert model.model.rotary_emb.rope_type == "yarn" and model.model.rotary_emb.attention_scaling > 1
    # the older `type` key, and the model's own base kept when the card sets only the scaling
    from transformers import AutoConfig

    own = AutoConfig.from_pretrained(path).rope_parameters["rope_theta"]
    old = rope_overrides(path, {}, StudentCard(name="m", model=path, rope_scaling={"type": "linear", "factor": 2.0}), 512)
    assert old["config"].rope_parameters == {"rope_type": "linear", "factor": 2.0, "rope_theta": own}


def test_training_past_the_model_context_is_a_warning(tiny_qwen2):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_qwen2)  # 2,048 positions
    card = load_card(StudentCard, "qwen2.5-math-7b")
    assert context_warning(config, 2048, card) is None
    warning = context_warning(config, 32768, card)
    assert "max_length=32768 is beyond the 2048 positions of qwen2.5-math-7b's model" in warning
    # the RoPE-300k card raises the positions itself: no warning
    rope_card = load_card(StudentCard, "qwen2.5-math-7b-rope-300k")
    assert context_warning(rope_overrides(str(tiny_qwen2), {}, rope_card, 32768)["config"], 32768, rope_card) is None


@pytest.mark.parametrize("scaling, message", [
    ({"rope_type": "yarn"}, "factor"),
    ({"rope_type": "bogus", "factor": 2.0}, "rope_type 'bogus' is not one of default, dynamic, linear, llama3"),
    ({"factor": 2.0}, "Unrecognized keys"),
])
def test_bad_rope_settings_are_one_line(tiny_qwen2, scaling, message):
    with pytest.raises(UserError) as e:
        rope_overrides(str(tiny_qwen2), {}, _card(tiny_qwen2, rope_scaling=scaling), 2048)
    assert "student card 'mine'" in str(e.value) and message in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------- a real run on a new card


ROWS = [
    trace("a", "72", "<think>\n48 + 24 = 72\n</think>\n\nThe answer is \\boxed{72}."),
    trace("b", "9", "<think>\n3 times 3\n</think>\n\n\\boxed{9}"),
    trace("c", "4", "<think>\n2 + 2\n</think>\n\nSo \\boxed{4}."),
]


def test_distill_train_on_the_rope_300k_card(tiny_recipe, tiny_qwen2, tmp_path):
    """`distill train` with a bundled card pointed at a tiny local model: the card's template and
    EOS train the student, its RoPE base and context reach the merged model's config."""
    from distill.filter.stage import run_filter

    write_traces(tmp_path / "traces_in", [ROWS])
    run_filter(load_recipe(None, ["filter.timeout=5"]), tmp_path / "traces_in", tmp_path / "run")
    run = tmp_path / "run"
    result = run_cli("train", "-r", tiny_recipe(), "--data", run, "--out", run, "--merge",
                     "--set", "student=qwen2.5-math-7b-rope-300k", "--set", f"student.model={tiny_qwen2}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "train: RoPE {" in result.stdout and "'rope_theta': 300000.0" in result.stdout
    assert "max_position_embeddings 32768 from the student card" in result.stdout
    summary = json.loads((run / "student" / "train_summary.json").read_text())
    assert summary["steps"] == 2 and summary["rows"] == 3 and summary["supervised_tokens"] > 0
    assert summary["student"] == str(tiny_qwen2)
    merged = json.loads((run / "student" / "merged" / "config.json").read_text())
    assert merged["rope_parameters"]["rope_theta"] == 300000.0 and merged["max_position_embeddings"] == 32768
    from transformers import AutoTokenizer

    saved = AutoTokenizer.from_pretrained(run / "student")
    assert saved.chat_template == load_card(StudentCard, "qwen2.5-math-7b-rope-300k").chat_template
    assert saved.eos_token == "<|im_end|>"
    resolved = (run / "recipe.resolved.yaml").read_text()
    assert "rope_theta: 300000" in resolved and "<|im_start|>" in resolved  # the template inlined, not its file name
