"""YAML to configs: load cards and recipes, apply `--set` overrides, fail in one clear line.

A recipe names its cards (or holds them inline, as `recipe.resolved.yaml` does) and has one
section per stage. `load_recipe(name_or_path, overrides)` gives a fully resolved `Recipe`;
unknown keys fail with the file, the key and the nearest valid key (DESIGN §4, §7.2).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Union

import yaml

from . import cards
from .config import DatasetCard, InvalidValue, Recipe, StudentCard, TeacherCard
from .errors import ConfigError, unknown_key_error
from .yamlfile import load_yaml, parse_yaml, refuse_secrets  # noqa: F401 - parse_yaml: part of this module's face

_CARD_KIND = {TeacherCard: "teachers", StudentCard: "students", DatasetCard: "datasets"}

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


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
        if isinstance(value, dict) and "card" in value and tp in _CARD_KIND:
            # `teacher: {card: NAME, sampling: {max_tokens: 4096}}`: a card with some keys changed
            base = load_card(tp, value["card"])  # checks the card file on its own first
            changes = {k: v for k, v in value.items() if k != "card"}
            return build(tp, _merge(to_dict(base), changes), source, path)
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
    if tp is float and isinstance(value, str) and _NUMBER.match(value.strip()):
        return float(value)  # YAML 1.1 reads 1e-5 (no dot) as a string; TRL recipes write it so
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


def _merge(base: dict, changes: dict) -> dict:
    """`changes` laid over `base`, mapping by mapping."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def build(cls: type, data: dict, source: str, path: str = "") -> Any:
    """Build frozen dataclass `cls` from a mapping, rejecting unknown keys and wrong types."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if "chat_template" in data and "chat_template" in fields:
        # a file named in a recipe or by --set (a card's own was read already, relative to the card)
        data = {**data, "chat_template": _template_file(data["chat_template"], Path.cwd(), source)}
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
    try:
        return cls(**kwargs)
    except InvalidValue as e:
        where = f"{path}.{e.field}" if path else e.field
        raise ConfigError(f"{source}: {where} {e.message}, got {e.value!r}") from None


def _rebase(value: Any, base: Path) -> Any:
    """A relative path in a YAML file means relative to that file's folder (falling back to the
    current directory when nothing is there, so hub ids and cwd-relative paths still work)."""
    if not isinstance(value, str) or not value or Path(value).expanduser().is_absolute():
        return value
    candidate = base / value
    return str(candidate) if candidate.exists() else value


_TEMPLATE_SUFFIXES = (".jinja", ".jinja2", ".j2")


def _template_file(value: Any, base: Path, source: str) -> Any:
    """`chat_template: templates/x.jinja` names a file (relative to `base`, the folder of the YAML
    file that says it): its text replaces the name. A template written out in full is left as it is."""
    if not isinstance(value, str) or "\n" in value or "{" in value or not value.strip().endswith(_TEMPLATE_SUFFIXES):
        return value
    path = Path(value.strip()).expanduser()
    if not path.is_absolute():
        path = base / path
    try:
        return path.read_text()
    except OSError as e:
        raise ConfigError(
            f"{source}: chat_template file {path} cannot be read ({e.strerror}); "
            "give a path relative to the card's folder, or the template itself"
        ) from None


def _read_card(path: Path) -> dict:
    data = load_yaml(path)
    refuse_secrets(data, str(path))
    data.setdefault("name", path.stem)
    for key in ("model", "path"):  # a local model folder, a local data file
        if key in data:
            data[key] = _rebase(data[key], path.parent)
    if "chat_template" in data:
        data["chat_template"] = _template_file(data["chat_template"], path.parent, str(path))
    return data


def load_card(cls: type, name: str) -> Any:
    """Load a teacher, student or dataset card by bundled name or path."""
    path = cards.find(_CARD_KIND[cls], name)
    return build(cls, _read_card(path), str(path))


# ---------------------------------------------------------------- recipes and overrides


def _entries(value: Any, key: str) -> Any:
    """A list shorthand: `x` or `[x, {key: y, …}]` → `[{key: x}, {key: y, …}]`."""
    if isinstance(value, (str, dict)):
        value = [value]
    if isinstance(value, list):
        return [{key: d} if isinstance(d, str) else d for d in value]
    return value


# Lists written as shorthands, and the key a bare string stands for in each.
_SHORTHANDS = ((None, "data", "card"), ("filter", "decontaminate", "card"), ("train", "data", "source"),
               ("eval", "benchmarks", "name"))


_PROMPT_FILES = (".jsonl", ".json", ".csv", ".parquet")
# keys of a `data:` entry without `card:` that describe the source itself (an inline card)
_INLINE_CARD = ("name", "domain", "hub", "subset", "answer_pattern", "description")


def _inline_source(entry: Any) -> Any:
    """A `data:` entry that names a file (`path:`) or a hub dataset (`hub:`) and no card gets a
    card of its own, named after the file or dataset: the user's problems, read with the user's
    `columns:` and nothing of a bundled card's parsing."""
    if not isinstance(entry, dict) or "card" in entry or not (entry.get("path") or entry.get("hub")):
        return entry
    where = str(entry.get("path") or entry.get("hub"))
    card = {"name": Path(where).stem if entry.get("path") else where.rstrip("/").split("/")[-1]}
    card.update({k: entry.pop(k) for k in _INLINE_CARD if k in entry})
    return {"card": card, **entry}


def _normalise_recipe(raw: dict) -> dict:
    """Shorthands: `data: gsm8k` or `data: [gsm8k, …]` mean `[{card: gsm8k}, …]` (a file name,
    `[{path: FILE}]`); `data: [{path: FILE, columns: …}]` gets an inline card; the same for
    `filter.decontaminate`; `train.data: FILE` or `[FILE, …]` mean `[{source: FILE}, …]`;
    `eval.benchmarks: gsm8k-test` or `[gsm8k-test, {name: math500, n: 4}]` mean `[{name: …}, …]`."""
    for section, key, first in _SHORTHANDS:
        node = raw if section is None else raw.get(section)
        if isinstance(node, dict) and key in node:
            if first == "name" and isinstance(node[key], str):  # `aime24,math500`, as --benchmark takes them
                node[key] = [part.strip() for part in node[key].split(",") if part.strip()]
            node[key] = _entries(node[key], first)
            if first == "card" and isinstance(node[key], list):
                node[key] = [{"path": d["card"]} if isinstance(d, dict) and isinstance(d.get("card"), str)
                             and d["card"].lower().endswith(_PROMPT_FILES) and len(d) == 1 else d for d in node[key]]
                node[key] = [_inline_source(d) for d in node[key]]
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


def apply_override(raw: dict, assignment: str, label: str | None = None) -> None:
    """Apply one `--set a.b.c=value` (value parsed as YAML) to a raw recipe mapping."""
    dotted, sep, text = assignment.partition("=")
    dotted = dotted.strip()
    if not sep or not dotted:
        raise ConfigError(f"{label or '--set ' + assignment}: expected KEY=VALUE, e.g. --set generate.n=4")
    try:
        value = parse_yaml(text)
    except yaml.YAMLError:
        value = text
    except ConfigError as e:
        raise ConfigError(f"{label or '--set ' + assignment}: {e}") from None
    if isinstance(value, (dict, list)) and not text.lstrip().startswith(("{", "[")):
        value = text  # "Solve: {problem}" is a sentence, not a YAML mapping
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


def _rebase_recipe(raw: dict, base: Path, source: str) -> None:
    for key in ("teacher", "student"):
        if isinstance(raw.get(key), dict) and "card" in raw[key]:
            raw[key]["card"] = _rebase(raw[key]["card"], base)
        elif key in raw:
            raw[key] = _rebase(raw[key], base)
        if isinstance(raw.get(key), dict) and "chat_template" in raw[key]:  # relative to the recipe
            raw[key]["chat_template"] = _template_file(raw[key]["chat_template"], base, source)
    # file names in the listed entries are relative to the recipe too: a card .yaml, a local copy
    for section, key, first in _SHORTHANDS:
        node = raw if section is None else raw.get(section)
        entries = node.get(key) if isinstance(node, dict) else None
        for entry in entries if isinstance(entries, list) else []:
            for name in {first, "path"}:
                if isinstance(entry, dict) and name in entry:
                    entry[name] = _rebase(entry[name], base)

def load_recipe(
    name: str | None, overrides: tuple[str, ...] | list[str] = (), labels: list[str] | None = None
) -> Recipe:
    """Resolve a recipe (bundled name, path, or None for defaults) with `--set` overrides.

    Each override is checked as it is applied, so an error names the one at fault; `labels`
    says how to name each in messages (default `--set KEY=VALUE`).
    """
    if name is None:
        raw: dict = {"name": "default"}
        source = "defaults"
    else:
        path = find_recipe(name)
        raw = load_yaml(path)
        refuse_secrets(raw, str(path))
        from . import foreign

        if foreign.detect(raw):
            return _load_foreign(raw, path, list(overrides), labels)
        raw.setdefault("name", path.stem)
        source = str(path)
        raw = _normalise_recipe(raw)
        _rebase_recipe(raw, path.parent, source)
    refuse_secrets(raw, source)
    recipe = build(Recipe, raw, source)  # errors here name the recipe or card file
    for i, assignment in enumerate(overrides):
        label = labels[i] if labels else f"--set {assignment}"
        apply_override(raw, assignment, label)
        refuse_secrets(raw, label.split("=")[0])  # the label holds the value: name the key only
        recipe = build(Recipe, _normalise_recipe(raw), label)
    return recipe


def _translate(raw: dict, path: Path, source: str) -> tuple[dict, list[str], dict]:
    """A foreign recipe mapping as distill's (see foreign.py), with its relative paths rebased."""
    from . import foreign

    raw = dict(raw)
    if isinstance(raw.get("model_name_or_path"), str):
        raw["model_name_or_path"] = _rebase(raw["model_name_or_path"], path.parent)
    if foreign.detect(raw) == foreign.LLAMAFACTORY:
        out, warnings, names = foreign.from_llamafactory(raw, source, path.parent)
    else:
        out, warnings, names = foreign.from_trl(raw, source, path)
    out["name"] = path.stem
    out["description"] = f"{foreign.detect(raw)} recipe {path.name}"
    _rebase_recipe(out, path.parent, source)
    return out, warnings, names


def _build_foreign(mapping: dict, source: str, names: dict) -> Recipe:
    """Build the recipe; a bad value is named by the recipe's own key (learning_rate), not distill's."""
    try:
        return build(Recipe, _normalise_recipe(mapping), source)
    except ConfigError as e:
        message = str(e)
        for ours, theirs in names.items():
            if f": {ours} " in message:
                message = message.replace(f": {ours} ", f": {theirs} ", 1)
                break
        raise ConfigError(message) from None


def _load_foreign(raw: dict, path: Path, overrides: list[str], labels: list[str] | None) -> Recipe:
    """An open-r1 or LLaMA-Factory recipe with `--set` overrides. `--set KEY=VALUE` changes the
    file's own key (`--set max_steps=2`, `--set model_name_or_path=DIR`) before it is read, as an
    edit of the file would; a key under one of distill's sections (`student…`, `train…`) changes
    the distill recipe it became (`--set train.dtype=float32`, `--set student=CARD`)."""
    from . import foreign
    from .ui import err_console

    ours = []
    mapping, warnings, names = _translate(raw, path, str(path))
    recipe = _build_foreign(dict(mapping), str(path), names)
    for i, assignment in enumerate(overrides):
        label = labels[i] if labels else f"--set {assignment}"
        dotted = assignment.partition("=")[0].strip()
        if foreign.is_distill_key(dotted):
            ours.append((assignment, label))
            continue
        apply_override(raw, assignment, label)
        try:
            mapping, warnings, names = _translate(raw, path, str(path))
            recipe = _build_foreign(dict(mapping), str(path), names)
        except ConfigError as e:  # the override is at fault, not the file
            raise ConfigError(str(e).replace(str(path), label, 1)) from None
    for assignment, label in ours:
        apply_override(mapping, assignment, label)
        recipe = build(Recipe, _normalise_recipe(mapping), label)
    for line in warnings:
        err_console.print(f"warning: {line}", markup=False, soft_wrap=True)
    return recipe


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
