"""The student model as the card describes it: its tokenizer with the card's chat template and
EOS, checked for what TRL's loss mask needs, and the card's RoPE settings laid over its config."""

from __future__ import annotations

from ..errors import ConfigError, reason
from ..ui import console


PROBE = [{"role": "user", "content": "PROBE-QUESTION"},
         {"role": "assistant", "content": "<think>\nPROBE-REASONING\n</think>\n\nPROBE-ANSWER"}]


def load_tokenizer(path: str, kwargs: dict, student):
    """The student's tokenizer with the card's chat template and EOS applied, then checked."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    if student.chat_template:
        tokenizer.chat_template = student.chat_template
    if student.eos_token:
        # transformers accepts any string here and silently maps an unknown one to the unk id
        if student.eos_token not in tokenizer.get_vocab():
            raise ConfigError(
                f"student card '{student.name}': eos_token {student.eos_token!r} is not a token of the tokenizer of "
                f"{path}; set it to the token that ends an assistant turn in the chat template"
            )
        tokenizer.eos_token = student.eos_token
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    check_template(tokenizer, student)
    return tokenizer


def _render(tokenizer, where: str, messages: list, **kwargs):
    try:
        return tokenizer.apply_chat_template(messages, **kwargs)
    except Exception as e:  # noqa: BLE001 - a template error is the card's, whatever jinja raised
        raise ConfigError(f"{where}: its chat template fails on a plain conversation ({reason(e)})") from None


def check_template(tokenizer, student) -> None:
    """What TRL's prompt/completion loss mask needs from the student's chat template, checked on a
    probe conversation: the assistant turn keeps `<think>…</think>` (DeepSeek-R1-Distill's template
    drops it: the student would learn bare answers); the prompt rendered with the generation prompt
    is where the whole conversation starts (TRL supervises what comes after it); and the assistant
    turn ends with the tokenizer's EOS (else the student never learns to stop where it is told to)."""
    where = f"student card '{student.name}'"
    if not tokenizer.chat_template:
        raise ConfigError(f"{where}: the tokenizer has no chat template; set `chat_template:` in the card")
    full = _render(tokenizer, where, PROBE, tokenize=False)
    if "PROBE-REASONING" not in full or "PROBE-ANSWER" not in full:
        raise ConfigError(
            f"{where}: its chat template drops the <think> reasoning from the assistant turn; "
            "set `chat_template:` in the card to one that keeps the assistant content as it is"
        )
    prompt = _render(tokenizer, where, PROBE[:-1], tokenize=False, add_generation_prompt=True)
    if not full.startswith(prompt):
        at = next((i for i, (a, b) in enumerate(zip(prompt, full)) if a != b), min(len(prompt), len(full)))
        raise ConfigError(
            f"{where}: its chat template renders the prompt with add_generation_prompt=True as {prompt[at:at + 30]!r} "
            f"where the whole conversation has {full[at:at + 30]!r} (character {at}), so the loss mask cannot tell "
            "the answer from the prompt; the generation prompt must be the text the assistant turn starts with"
        )
    eos = tokenizer.eos_token
    after = full[len(prompt):].split("PROBE-ANSWER", 1)[1]
    if not eos or not after.lstrip().startswith(eos):
        raise ConfigError(
            f"{where}: its chat template ends the assistant turn with {after.strip()[:30] or 'nothing'!r}, not with "
            f"the tokenizer's EOS {eos!r}, so the student would not learn to stop; set `eos_token:` in the card to "
            "the token that ends an assistant turn"
        )
    ids = _render(tokenizer, where, PROBE, tokenize=True, return_dict=True)["input_ids"]
    prompt_ids = _render(tokenizer, where, PROBE[:-1], tokenize=True, add_generation_prompt=True, return_dict=True)["input_ids"]
    if ids[: len(prompt_ids)] != prompt_ids:
        # The text is a prefix but the tokens are not (the tokenizer merges across the boundary): TRL
        # then starts the supervised part where they differ, a token or two early. Worth a line, no more.
        console.print(f"train: warning: {where}: the tokenizer merges the end of the generation prompt "
                      f"{tokenizer.decode(prompt_ids[-1:])!r} with the answer; the loss starts a token early")


def rope_overrides(path: str, kwargs: dict, student, max_length: int) -> dict:
    """The card's RoPE settings laid over the model's config (open-r1 trains Qwen2.5-Math-7B at
    32k with its RoPE base raised to 300k); an empty dict when the card sets none.

    transformers 5 keeps every RoPE setting in one dict, `config.rope_parameters` (`rope_theta`
    inside it; `config.rope_scaling` is an alias that replaces the whole dict, base included), so
    the new dict is built whole and put through transformers' own checks. When the card trains
    longer than the config declares, max_position_embeddings is raised to match, as in open-r1's
    RoPE-300k model: a merged student then says how long it can read (vLLM takes its limit from it)."""
    if student.rope_theta is None and student.rope_scaling is None:
        return {}
    import logging

    from transformers import AutoConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    where = f"student card '{student.name}'"
    config = AutoConfig.from_pretrained(path, **kwargs)
    current = getattr(config, "rope_parameters", None)
    if not isinstance(current, dict) or any(isinstance(v, dict) for v in current.values()):
        raise ConfigError(f"{where}: rope_theta / rope_scaling need a model with one RoPE setting for all layers; "
                        f"{path} has {current!r}")
    if student.rope_scaling is not None:
        scaling = dict(student.rope_scaling)
        if "type" in scaling:  # the key older config files use
            scaling.setdefault("rope_type", scaling.pop("type"))
        rope = {"rope_type": "default", "rope_theta": current.get("rope_theta"), **scaling}
    else:
        rope = dict(current)
    if student.rope_theta is not None:
        rope["rope_theta"] = float(student.rope_theta)
    known = ["default", *sorted(ROPE_INIT_FUNCTIONS)]
    if rope["rope_type"] not in known:
        raise ConfigError(f"{where}: rope_scaling rope_type {rope['rope_type']!r} is not one of {', '.join(known)}")

    class Collect(logging.Handler):  # transformers only logs most RoPE mistakes; here they stop the run
        def __init__(self):
            super().__init__(logging.WARNING)
            self.messages: list[str] = []

        def emit(self, record):
            if record.funcName != "warning_once":  # those are advice, not mistakes
                self.messages.append(record.getMessage())

    logger, collect = logging.getLogger("transformers.modeling_rope_utils"), Collect()
    saved = logger.level, logger.propagate
    logger.addHandler(collect)
    logger.setLevel(logging.WARNING)  # seen whatever TRANSFORMERS_VERBOSITY says ...
    logger.propagate = False  # ... and said once, in the error below
    try:
        config.rope_parameters = rope
        config.standardize_rope_params()  # before max_position_embeddings grows: yarn/llama3 take the original from it
        config.validate_rope()
    except (KeyError, ValueError, TypeError) as e:
        collect.messages.append(str(e).strip("\"'"))
    finally:
        logger.removeHandler(collect)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
    if collect.messages:
        raise ConfigError(f"{where}: RoPE settings {rope} rejected by transformers ({collect.messages[0].splitlines()[0]}); "
                        "fix rope_theta / rope_scaling in the card")
    if max_length > config.max_position_embeddings:
        config.max_position_embeddings = max_length
    return {"config": config}


def context_warning(config, max_length: int, student) -> str | None:
    """A line when training runs past the positions the model was made for (Qwen2.5-Math's 4k at
    32k, say) and the card does not extend them; long traces then train on positions the model
    never saw. A warning, not an error: it may be meant (DeepSeek trained its distills longer)."""
    declared = getattr(config, "max_position_embeddings", None)
    if not declared or max_length <= declared:
        return None
    return (f"train: warning: max_length={max_length} is beyond the {declared} positions of {student.name}'s model; "
            "raise its RoPE base in the card (rope_theta, as qwen2.5-math-7b-rope-300k does) or lower train.max_length")
