"""Frozen, typed configs for cards and recipes, loaded from YAML with loud, one-line errors.

A recipe names its cards (or holds them inline, as `recipe.resolved.yaml` does) and has one
section per stage. `load_recipe(name_or_path, overrides)` gives a fully resolved `Recipe`;
unknown keys fail with the file, the key and the nearest valid key (DESIGN §4, §7.2).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from . import cards
from .errors import ConfigError

# The DeepSeek-R1 evaluation/generation prompt: no system prompt, this instruction after the problem.
# `{problem}` is replaced literally (no str.format), so templates need no brace escaping.
R1_USER_TEMPLATE = "{problem}\n\nPlease reason step by step, and put your final answer within \\boxed{}."


# ---------------------------------------------------------------- cards


@dataclass(frozen=True)
class GGUFSource:
    """Weights shipped as a GGUF file inside a Python package (converted once, then cached)."""

    package: str
    file: str


@dataclass(frozen=True)
class PromptTemplate:
    """How a problem becomes the teacher's chat prompt; `{problem}` in `user` is replaced."""

    system: str | None = None
    user: str = R1_USER_TEMPLATE
    think_prefix: bool = False  # start the assistant turn with "<think>\n" (R1's forced thinking)


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 32768


@dataclass(frozen=True)
class TeacherCard:
    name: str
    model: str  # hub id or local folder
    revision: str | None = None
    gguf: GGUFSource | None = None
    dtype: str = "auto"
    template: PromptTemplate = PromptTemplate()
    sampling: Sampling = Sampling()
    engine: dict = field(default_factory=dict)  # passed untouched to the engine (vLLM, …)
    description: str | None = None


@dataclass(frozen=True)
class StudentCard:
    name: str
    model: str
    revision: str | None = None
    gguf: GGUFSource | None = None
    dtype: str = "auto"
    chat_template: str | None = None  # replaces the tokenizer's template when set
    max_length: int = 4096
    lora_target_modules: str | tuple[str, ...] = "all-linear"
    description: str | None = None


@dataclass(frozen=True)
class ColumnMap:
    """Which source columns hold the problem, the gold answer and a stable id."""

    problem: str = "problem"
    answer: str | None = "answer"
    id: str | None = None


@dataclass(frozen=True)
class DatasetCard:
    name: str
    domain: str = "math"
    hub: str | None = None  # hub dataset id, loaded with datasets.load_dataset
    subset: str | None = None  # hub config name
    split: str = "train"
    path: str | None = None  # a local .jsonl / .json / .parquet / .csv file
    generator: str | None = None  # a prompt generator registered in distill.sources
    params: dict = field(default_factory=dict)  # generator arguments
    columns: ColumnMap = ColumnMap()
    answer_pattern: str | None = None  # regex on the answer column; group 1 is the gold answer
    description: str | None = None


# ---------------------------------------------------------------- recipe sections


@dataclass(frozen=True)
class DataSource:
    """One prompt source of a recipe: a dataset card, optionally pointed at a local file."""

    card: DatasetCard
    path: str | None = None
    split: str | None = None
    limit: int | None = None


@dataclass(frozen=True)
class GenerateConfig:
    backend: str = "auto"  # auto | hf | fake (tests)
    n: int = 1  # samples per prompt
    temperature: float | None = None  # None: the teacher card's value
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int = 0
    shard_size: int = 256  # prompts per shard: the unit of resume and of scale-out
    batch_size: int = 16  # prompts per forward pass (transformers backend)
    limit: int | None = None  # first N prompts of the whole prompt set


@dataclass(frozen=True)
class FilterConfig:
    verifiers: tuple[str, ...] = ("format", "math")
    timeout: float = 5.0  # hard wall-clock limit per row, enforced by killing the worker
    workers: int = 0  # verifier processes; 0 = one per CPU core
    require_think: bool = False  # reject completions without a closed <think> block
    reject_truncated: bool = True  # reject finish_reason == "length"


@dataclass(frozen=True)
class TrainConfig:
    method: str = "lora"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    learning_rate: float = 2e-4
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int | None = None  # None: the student card's max_length
    warmup_ratio: float = 0.0
    lr_scheduler: str = "cosine"
    weight_decay: float = 0.0
    seed: int = 42
    logging_steps: int = 1
    gradient_checkpointing: bool = False
    dtype: str = "auto"  # auto: bf16 on a GPU that supports it, else fp32


@dataclass(frozen=True)
class Recipe:
    name: str
    teacher: TeacherCard | None = None
    student: StudentCard | None = None
    data: tuple[DataSource, ...] = ()
    generate: GenerateConfig = GenerateConfig()
    filter: FilterConfig = FilterConfig()
    train: TrainConfig = TrainConfig()
    description: str | None = None


_CARD_KIND = {TeacherCard: "teachers", StudentCard: "students", DatasetCard: "datasets"}


# ---------------------------------------------------------------- building and validation


def _where(source: str, path: str) -> str:
    return f"{source}: {path}" if path else source


def _describe(tp: Any) -> str:
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    origin = typing.get_origin(tp)
    if origin is tuple:
        return "a list"
    if tp is dict or origin is dict:
        return "a mapping"
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in typing.get_args(tp))
    return str(tp)


def _coerce(value: Any, tp: Any, source: str, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        real = [a for a in args if a is not type(None)]
        if len(real) == 1:  # Optional[X]: X's own error is the useful one
            return _coerce(value, real[0], source, path)
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, source, path)
            except ConfigError:
                continue
        raise ConfigError(f"{_where(source, path)} must be {_describe(tp)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, str) and tp in _CARD_KIND:
            return load_card(tp, value)
        if not isinstance(value, dict):
            raise ConfigError(f"{_where(source, path)} must be {_describe(tp)}, got {value!r}")
        return build(tp, value, source, path)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{_where(source, path)} must be a list, got {value!r}")
        (elem, *_) = typing.get_args(tp)
        return tuple(_coerce(v, elem, source, f"{path}.{i}") for i, v in enumerate(value))
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{_where(source, path)} must be a mapping, got {value!r}")
        return dict(value)
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(tp)
    if ok is None:
        return value
    if not ok:
        raise ConfigError(f"{_where(source, path)} must be {_describe(tp)}, got {value!r}")
    return float(value) if tp is float else value


def unknown_key_error(key: str, valid: list[str], source: str, section: str) -> ConfigError:
    """The one-line error for an unknown key, naming the nearest valid one."""
    near = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f"did you mean '{near[0]}'?" if near else f"valid keys: {', '.join(valid)}"
    where = f"in {section}" if section else "at the top level"
    return ConfigError(f"{source}: unknown key '{key}' {where} ({hint})")


def build(cls: type, data: dict, source: str, path: str = "") -> Any:
    """Build frozen dataclass `cls` from a mapping, rejecting unknown keys and wrong types."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise unknown_key_error(str(key), list(fields), source, path)
    kwargs = {}
    for name, f in fields.items():
        sub = f"{path}.{name}" if path else name
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], source, sub)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{source}: missing key '{sub}'")
    return cls(**kwargs)


def load_yaml(path: Path) -> dict:
    """Read a YAML mapping; a broken file is one clear line."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{at} ({getattr(e, 'problem', e)})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return data


def _read_card(path: Path) -> dict:
    data = load_yaml(path)
    data.setdefault("name", path.stem)
    return data


def load_card(cls: type, name: str) -> Any:
    """Load a teacher, student or dataset card by bundled name or path."""
    path = cards.find(_CARD_KIND[cls], name)
    return build(cls, _read_card(path), str(path))


# ---------------------------------------------------------------- recipes and overrides


def _normalise_recipe(raw: dict) -> dict:
    """Shorthands: `data: gsm8k` or `data: [gsm8k, …]` mean `[{card: gsm8k}, …]`."""
    data = raw.get("data")
    if isinstance(data, (str, dict)):
        data = [data]
    if isinstance(data, list):
        raw["data"] = [{"card": d} if isinstance(d, str) else d for d in data]
    return raw


def _card_mapping(kind: str, name: str) -> dict:
    return _read_card(cards.find(kind, name))


def _expand_cards_on_path(raw: dict, keys: list[str]) -> None:
    """Replace a card name by the card's own mapping when `--set` reaches inside the card."""
    if len(keys) > 1 and keys[0] in ("teacher", "student") and isinstance(raw.get(keys[0]), str):
        raw[keys[0]] = _card_mapping(keys[0] + "s", raw[keys[0]])
    if len(keys) > 3 and keys[0] == "data" and keys[1].isdigit() and keys[2] == "card":
        entries = raw.get("data") or []
        i = int(keys[1])
        if i < len(entries) and isinstance(entries[i], dict) and isinstance(entries[i].get("card"), str):
            entries[i]["card"] = _card_mapping("datasets", entries[i]["card"])


def _index(node: list, key: str, dotted: str) -> int:
    if not key.isdigit() or int(key) >= len(node):
        raise ConfigError(f"--set {dotted}: '{key}' is not an index of a list of {len(node)}")
    return int(key)


def apply_override(raw: dict, assignment: str) -> None:
    """Apply one `--set a.b.c=value` (value parsed as YAML) to a raw recipe mapping."""
    dotted, sep, text = assignment.partition("=")
    dotted = dotted.strip()
    if not sep or not dotted:
        raise ConfigError(f"--set {assignment}: expected KEY=VALUE, e.g. --set generate.n=4")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    keys = dotted.split(".")
    _expand_cards_on_path(raw, keys)
    node: Any = raw
    for key in keys[:-1]:
        if isinstance(node, list):
            node = node[_index(node, key, dotted)]
        else:
            if node.get(key) is None:
                node[key] = {}
            node = node[key]
        if not isinstance(node, (dict, list)):
            raise ConfigError(f"--set {dotted}: '{key}' holds a value, not a section")
    if isinstance(node, list):
        node[_index(node, keys[-1], dotted)] = value
    else:
        node[keys[-1]] = value


def find_recipe(name: str) -> Path:
    return cards.find("recipes", name)


def load_recipe(name: str | None, overrides: tuple[str, ...] | list[str] = ()) -> Recipe:
    """Resolve a recipe (bundled name, path, or None for defaults) with `--set` overrides."""
    if name is None:
        raw: dict = {"name": "default"}
        source = "defaults"
    else:
        path = find_recipe(name)
        raw = load_yaml(path)
        raw.setdefault("name", path.stem)
        source = str(path)
    raw = _normalise_recipe(raw)
    recipe = build(Recipe, raw, source)  # errors here name the recipe or card file
    if not overrides:
        return recipe
    for assignment in overrides:
        apply_override(raw, assignment)
    raw = _normalise_recipe(raw)
    joined = " ".join(f"--set {o}" for o in overrides)
    return build(Recipe, raw, joined)


def to_dict(obj: Any) -> Any:
    """A plain-YAML view of a config (tuples as lists), for recipe.resolved.yaml."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False, allow_unicode=True, width=100)
