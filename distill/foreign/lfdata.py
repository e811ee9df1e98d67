"""LLaMA-Factory's `dataset:` names resolved as LLaMA-Factory resolves them: through the
dataset_info.json in `dataset_dir` (default `data`, relative to where the command runs), each
entry a local file or folder (`file_name`), a hub dataset (`hf_hub_url`, with `subset`, `split`,
`folder`), in `alpaca`, `sharegpt` or `openai` formatting with its `columns` and `tags`.

The result is distill's `train.data` entries (config.TrainData); sftdata.py turns the rows into
conversations the way LLaMA-Factory's converters do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .keys import short

INFO = "dataset_info.json"
_FORMATS = ("alpaca", "sharegpt", "openai")
_COLUMNS = ("prompt", "query", "response", "history", "messages", "system", "tools", "images", "videos", "audios",
            "chosen", "rejected", "kto_tag")
_TAGS = ("role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag", "function_tag", "system_tag")
_ATTRS = {"file_name", "hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name", "formatting",
          "ranking", "subset", "split", "folder", "num_samples", "columns", "tags"}
# what each other source kind needs, since distill reads local files and the Hugging Face hub only
_OTHER_SOURCES = {"ms_hub_url": "a ModelScope dataset", "om_hub_url": "a Modelers dataset",
                  "script_url": "a dataset loading script", "cloud_file_name": "a cloud-storage file"}


def find_info(dataset_dir: str | None, base: Path, source: str) -> tuple[Path, dict] | None:
    """The folder holding dataset_info.json and its entries; None for `ONLINE` (every name is a hub id)."""
    given = dataset_dir is not None
    name = str(dataset_dir) if given else "data"
    if name == "ONLINE":
        return None
    if name.startswith("REMOTE:"):
        raise ConfigError(f"{source}: dataset_dir: {short(name)} reads dataset_info.json from the hub; download "
                          "that folder and give its local path")
    candidates = [Path(name).expanduser()] if Path(name).is_absolute() else [Path.cwd() / name, base / name]
    for folder in candidates:
        info = folder / INFO
        if info.is_file():
            try:
                entries = json.loads(info.read_text())
            except (OSError, ValueError) as e:
                raise ConfigError(f"{info}: not readable JSON ({str(e)[:80]}); fix the file") from None
            if not isinstance(entries, dict):
                raise ConfigError(f"{info}: must map dataset names to their attributes")
            return folder, entries
    if given:
        where = " or ".join(str(c) for c in dict.fromkeys(candidates))
        raise ConfigError(f"{source}: dataset_dir: no {INFO} in {where}; point dataset_dir at the folder "
                          "that holds it (LLaMA-Factory's data/)")
    return Path.cwd() / name, {}


def _attrs(name: str, attrs: Any, info: Path) -> dict:
    if not isinstance(attrs, dict):
        raise ConfigError(f"{info}: dataset '{name}' must be a mapping of attributes")
    for key in attrs:
        if key not in _ATTRS:
            raise ConfigError(f"{info}: dataset '{name}': unknown attribute '{short(key, 40)[1:-1]}'")
    if attrs.get("ranking"):
        raise ConfigError(f"{info}: dataset '{name}' is preference data (ranking: true), for the rm/dpo stages; "
                          "SFT needs conversations")
    formatting = attrs.get("formatting", "alpaca")
    if formatting not in _FORMATS:
        raise ConfigError(f"{info}: dataset '{name}': formatting {short(formatting)} must be one of "
                          f"{', '.join(_FORMATS)}")
    columns, tags = attrs.get("columns") or {}, attrs.get("tags") or {}
    for key in columns:
        if key not in _COLUMNS:
            raise ConfigError(f"{info}: dataset '{name}': unknown column role '{short(key, 40)[1:-1]}' "
                              f"(LLaMA-Factory's are {', '.join(_COLUMNS)})")
    for key in tags:
        if key not in _TAGS:
            raise ConfigError(f"{info}: dataset '{name}': unknown tag '{short(key, 40)[1:-1]}'")
    media = [k for k in ("images", "videos", "audios") if columns.get(k)]
    if media:
        raise ConfigError(f"{info}: dataset '{name}' is multimodal ({media[0]} column); distill trains text-only "
                          "students: remove it from dataset")
    for key, what in (("tools", "tool-calling data (a tools column)"), ("kto_tag", "KTO data (a kto_tag column)"),
                      ("chosen", "preference data (a chosen column)")):
        if columns.get(key):
            raise ConfigError(f"{info}: dataset '{name}' is {what}, which distill does not train; remove it "
                              "from dataset")
    return attrs


def _where(name: str, attrs: dict, folder: Path, info: Path) -> dict:
    """Where an entry's rows come from, as train.data's source/config/split/data_dir."""
    if attrs.get("hf_hub_url"):
        entry = {"source": str(attrs["hf_hub_url"])}
        if attrs.get("subset"):
            entry["config"] = str(attrs["subset"])
        if attrs.get("folder"):
            entry["data_dir"] = str(attrs["folder"])
        return entry
    other = next((k for k in _OTHER_SOURCES if attrs.get(k)), None)
    if other:
        raise ConfigError(f"{info}: dataset '{name}' is {_OTHER_SOURCES[other]} ({other}), which distill does "
                          "not load; download it and give the entry a file_name")
    if not attrs.get("file_name"):
        raise ConfigError(f"{info}: dataset '{name}' has no file_name or hf_hub_url; add one")
    path = folder / str(attrs["file_name"])
    if not path.exists():
        raise ConfigError(f"{info}: dataset '{name}': file_name {attrs['file_name']} is not in {folder}; "
                          "put the file there or fix file_name")
    return {"source": str(path)}


def entry(name: str, info: tuple[Path, dict] | None, inline: dict, source: str) -> dict:
    """One `dataset:` name as a train.data entry (a mapping TrainData is built from)."""
    if info is None or (name not in info[1] and "/" in name):  # a hub id (dataset_dir: ONLINE, or no entry)
        attrs: dict = dict(inline)
        out = {"source": name}
    elif name not in info[1]:
        folder = info[0]
        listed = ", ".join(sorted(info[1])[:5]) + (", …" if len(info[1]) > 5 else "")
        have = f"it has {listed}" if info[1] else "there is none there"
        raise ConfigError(f"{source}: dataset '{short(name, 60)[1:-1]}' is not in {folder / INFO} ({have}); add it "
                          "there, or name a hub dataset (owner/name)")
    else:
        folder, entries = info
        attrs = _attrs(name, entries[name], folder / INFO)
        out = _where(name, attrs, folder, folder / INFO)
    formatting = attrs.get("formatting", "alpaca")
    out["formatting"] = formatting
    columns, tags = attrs.get("columns") or {}, attrs.get("tags") or {}
    if formatting == "alpaca":
        for key, default in (("prompt", "instruction"), ("query", "input"), ("response", "output")):
            out[key] = columns.get(key, default)
        for key in ("history", "system"):
            if columns.get(key):
                out[key] = columns[key]
    else:
        out["messages"] = columns.get("messages", "conversations")
        if columns.get("system"):
            out["system"] = columns["system"]
        out["role_tag"] = tags.get("role_tag", "from")
        out["content_tag"] = tags.get("content_tag", "value")
        out["roles"] = {tags.get("user_tag", "human"): "user", tags.get("assistant_tag", "gpt"): "assistant",
                        tags.get("system_tag", "system"): "system",
                        tags.get("observation_tag", "observation"): "observation",
                        tags.get("function_tag", "function_call"): "function"}
    if attrs.get("split"):
        out["split"] = str(attrs["split"])
    if attrs.get("num_samples") is not None:
        out["num_samples"] = attrs["num_samples"]
    return out
