"""Training conversations named by a recipe (`train.data`): local files and folders, dataset
cards and hub datasets, as one `datasets.Dataset` with a `messages` column.

Rows come as chat `messages` ({role, content}), as ShareGPT `conversations` ({from, value},
with an optional `system` column; the format of OpenThoughts, Bespoke-Stratos and Sky-T1
data), or as prompt / reasoning / response columns (LIMO, s1K). Several sources are mixed the
way open-r1 mixes them: each shuffled and cut to its `weight`, then all shuffled together.
"""

from __future__ import annotations

from pathlib import Path

from .config import TrainData
from .prompting import assistant_content
from .errors import ConfigError, UserError, reason

_FORMATS = {".parquet": "parquet", ".jsonl": "json", ".json": "json"}
# ShareGPT speakers as LLaMA-Factory and the published reasoning sets write them
_SPEAKERS = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def _files(folder: Path) -> list[Path]:
    from . import shards

    # a run folder or a filtered/ stage (refused while unfinished): its Parquet shards
    found = shards.list_files(shards.input_folder(folder, "filtered", "filter"))
    return found or sorted(p for p in folder.rglob("*") if p.suffix.lower() in _FORMATS and p.is_file())


def _local(path: Path):
    import datasets

    files = _files(path) if path.is_dir() else [path]
    if not files:
        raise UserError(f"{path}: no Parquet, JSONL or JSON files to train on")
    kinds = {_FORMATS.get(f.suffix.lower()) for f in files}
    if None in kinds or len(kinds) != 1:
        raise UserError(f"{path}: train on .parquet, .jsonl or .json files, one kind per source")
    (kind,) = kinds
    try:
        return datasets.load_dataset(kind, data_files=[str(f) for f in files], split="train")
    except Exception as e:  # noqa: BLE001 - any parse failure is the file's fault
        raise UserError(f"{path}: cannot be read as {kind} ({reason(e, limit=200)})") from None


def _hub(name: str, config: str | None, split: str, what: str):
    import datasets

    try:
        return datasets.load_dataset(name, config, split=split)
    except Exception as e:  # noqa: BLE001 - offline, gated, missing: all one line to the user
        raise UserError(
            f"{what}: cannot load hub dataset '{name}' ({reason(e)}); download it while online, "
            "or point the recipe at a local Parquet/JSONL copy"
        ) from None


def _read(src: TrainData):
    """The raw rows of one source, and a name for messages."""
    path = Path(src.source).expanduser()
    if path.exists():
        return _local(path), str(path)
    if path.suffix.lower() in _FORMATS or src.source.startswith((".", "/", "~")):
        raise UserError(f"{src.source}: no such file or folder (train.data source)")
    from . import cards

    if "/" not in src.source and src.source in cards.names("datasets"):
        from .config import DatasetCard
        from .recipes import load_card

        card = load_card(DatasetCard, src.source)
        if card.path:
            return _local(Path(card.path).expanduser()), card.path
        if not card.hub:
            raise ConfigError(f"dataset card '{card.name}' names no hub dataset or path to train on")
        what = f"dataset card '{card.name}'"
        return _hub(card.hub, src.config or card.subset, src.split or card.split, what), card.hub
    if "/" not in src.source:
        raise ConfigError(
            f"train.data: '{src.source}' is not a file, a dataset card ({', '.join(cards.names('datasets'))}) "
            "or a hub id (owner/name); for a LLaMA-Factory dataset name, give dataset_dir with its dataset_info.json"
        )
    return _hub(src.source, src.config, src.split or "train", "train.data"), src.source


def _think(reasoning: str | None, response: str) -> str:
    """The assistant turn as DESIGN §3 writes it."""
    return assistant_content(reasoning.strip(), response.strip()) if reasoning else response


def _converter(src: TrainData, names: list[str], origin: str):
    """A row -> {"messages": […]} function for this source's layout, or a one-line error."""
    def need(column: str) -> str:
        if column not in names:
            raise UserError(f"{origin}: no column '{column}' (has: {', '.join(names)})")
        return column

    if src.prompt is not None:
        prompt, response = need(src.prompt), need(src.response)
        reasoning = need(src.reasoning) if src.reasoning else None

        def from_columns(row: dict) -> dict:
            return {"messages": [{"role": "user", "content": row[prompt]},
                                 {"role": "assistant", "content": _think(row[reasoning] if reasoning else None,
                                                                         row[response])}]}

        return from_columns
    column = src.messages or next((c for c in ("messages", "conversations") if c in names), None)
    if column is None:
        raise UserError(
            f"{origin}: no 'messages' column (has: {', '.join(names)}); give rows with chat `messages`, "
            "ShareGPT `conversations`, or name the columns in the recipe (messages: COL, or prompt: / response:)"
        )
    need(column)
    system = src.system or ("system" if "system" in names else None)
    speakers = {**_SPEAKERS, **src.roles}

    def from_turns(row: dict) -> dict:
        turns = row[column]
        if not isinstance(turns, list):
            raise UserError(f"{origin}: column '{column}' holds {type(turns).__name__}, not a list of turns")
        messages = []
        for turn in turns:
            if isinstance(turn, dict) and "role" in turn and "content" in turn and src.role_tag not in turn:
                messages.append({"role": turn["role"], "content": turn["content"]})
                continue
            if not isinstance(turn, dict) or src.role_tag not in turn or src.content_tag not in turn:
                raise UserError(f"{origin}: a turn in '{column}' has neither role/content nor "
                                f"{src.role_tag}/{src.content_tag} keys: {str(turn)[:80]}")
            role = speakers.get(turn[src.role_tag])
            if role is None:
                raise UserError(f"{origin}: unknown speaker '{turn[src.role_tag]}' in '{column}'; map it with "
                                f"`roles: {{{turn[src.role_tag]}: user}}` in train.data")
            messages.append({"role": role, "content": turn[src.content_tag]})
        if system and row.get(system) and (not messages or messages[0]["role"] != "system"):
            messages.insert(0, {"role": "system", "content": row[system]})
        return {"messages": messages}

    return from_turns


def load_conversations(sources: tuple[TrainData, ...], seed: int = 0):
    """Every source's rows as one Dataset with a single `messages` column."""
    import datasets

    from .sources import quiet_hub

    quiet_hub()
    parts = []
    for src in sources:
        ds, origin = _read(src)
        if src.columns:
            missing = [c for c in src.columns if c not in ds.column_names]
            if missing:
                raise UserError(f"{origin}: no column '{missing[0]}' (has: {', '.join(ds.column_names)})")
            ds = ds.select_columns(list(src.columns))
        if src.weight is not None:  # open-r1's way: shuffle, then keep the first share
            ds = ds.shuffle(seed=seed).select(range(int(len(ds) * src.weight)))
        if src.limit is not None:
            ds = ds.select(range(min(src.limit, len(ds))))
        if len(ds) == 0:
            raise UserError(f"{origin}: no rows to train on")
        convert = _converter(src, ds.column_names, origin)
        parts.append(ds.map(convert, remove_columns=ds.column_names))
    if len(parts) == 1:
        return parts[0]
    return datasets.concatenate_datasets(parts).shuffle(seed=seed)
