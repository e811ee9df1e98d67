"""Training conversations named by a recipe (`train.data`): local files and folders, dataset
cards and hub datasets, as one `datasets.Dataset` with a `messages` column.

Rows come as chat `messages` ({role, content}), as ShareGPT `conversations` ({from, value},
with an optional `system` column; the format of OpenThoughts, Bespoke-Stratos and Sky-T1
data), or as prompt / reasoning / response columns (LIMO, s1K). Several sources are mixed the
way open-r1 mixes them: each shuffled and cut to its `weight`, then all shuffled together.
"""

from __future__ import annotations

from pathlib import Path

from ..config import TrainData
from ..prompting import assistant_content
from ..errors import ConfigError, UserError, reason

_FORMATS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv", ".arrow": "arrow"}
# ShareGPT speakers as LLaMA-Factory and the published reasoning sets write them
_SPEAKERS = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def _files(folder: Path) -> list[Path]:
    from .. import shards

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
        raise UserError(f"{path}: train on .parquet, .jsonl, .json, .csv or .arrow files, one kind per source")
    (kind,) = kinds
    try:
        return datasets.load_dataset(kind, data_files=[str(f) for f in files], split="train")
    except Exception as e:  # noqa: BLE001 - any parse failure is the file's fault
        raise UserError(f"{path}: cannot be read as {kind} ({reason(e, limit=200)})") from None


def _hub(name: str, config: str | None, split: str, what: str, data_dir: str | None = None):
    import datasets

    try:
        return datasets.load_dataset(name, config, split=split, data_dir=data_dir)
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
    from .. import cards

    if "/" not in src.source and src.source in cards.names("datasets"):
        from ..config import DatasetCard
        from ..recipes import load_card

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
    return _hub(src.source, src.config, src.split or "train", "train.data", src.data_dir), src.source


def _think(reasoning: str | None, response: str) -> str:
    """The assistant turn as DESIGN §3 writes it."""
    return assistant_content(reasoning.strip(), response.strip()) if reasoning else response


def _need(names: list[str], origin: str):
    def need(column: str) -> str:
        if column not in names:
            raise UserError(f"{origin}: no column '{column}' (has: {', '.join(names)[:150]})")
        return column

    return need


def _text(value) -> bool:
    return isinstance(value, str)


def _columns(src: TrainData, names: list[str], origin: str):
    """prompt / (reasoning) / response columns: one user turn and one assistant turn (LIMO, s1K)."""
    need = _need(names, origin)
    prompt, response = need(src.prompt), need(src.response)
    reasoning = need(src.reasoning) if src.reasoning else None

    def convert(row: dict) -> dict:
        if not (_text(row[prompt]) and _text(row[response]) and (reasoning is None or row[reasoning] is None
                                                                  or _text(row[reasoning]))):
            return _skip("a prompt or response that is not text")
        return _keep([{"role": "user", "content": row[prompt]},
                      {"role": "assistant", "content": _think(row[reasoning] if reasoning else None, row[response])}])

    return convert


def _alpaca(src: TrainData, names: list[str], origin: str):
    """LLaMA-Factory's alpaca formatting: history pairs as earlier turns, then the instruction and
    its input joined by a newline as the user turn, the output as the assistant turn."""
    need = _need(names, origin)
    prompt, response = need(src.prompt or "instruction"), need(src.response or "output")
    query = src.query or "input"
    query = query if query in names else None  # optional: many alpaca files have no input column
    history = need(src.history) if src.history else None
    system = need(src.system) if src.system else None

    def convert(row: dict) -> dict:
        if not _text(row[response]):
            return _skip("no output text (an unsupervised row)")
        turns = [{"role": "system", "content": row[system]}] if system and _text(row[system]) and row[system] else []
        pairs = row[history] if history and isinstance(row[history], list) else []
        for pair in pairs:
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(map(_text, pair))):
                return _skip("a history entry that is not a [prompt, response] pair of texts")
            turns += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
        parts = [row[c] for c in (prompt, query) if c and row.get(c)]
        if not all(map(_text, parts)):
            return _skip("an instruction or input that is not text")
        turns += [{"role": "user", "content": "\n".join(parts)}, {"role": "assistant", "content": row[response]}]
        return _keep(turns)

    return convert


def _sharegpt(src: TrainData, names: list[str], origin: str):
    """LLaMA-Factory's sharegpt/openai formattings: turns under role/content tags, a first system
    turn or a system column, roles alternating user and assistant; other rows are skipped, as
    LLaMA-Factory skips them."""
    column = _need(names, origin)(src.messages or "conversations")
    system = src.system if src.system in names else None
    roles = dict(src.roles)
    role_tag, content_tag = src.role_tag, src.content_tag

    def convert(row: dict) -> dict:
        turns = row[column]
        if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
            return _skip(f"'{column}' is not a list of turns")
        named = [(roles.get(t.get(role_tag)), t.get(content_tag)) for t in turns]
        head = []
        if named and named[0][0] == "system":
            head, named = [{"role": "system", "content": named[0][1]}], named[1:]
        elif system and _text(row.get(system)) and row[system]:
            head = [{"role": "system", "content": row[system]}]
        if not named:
            return _skip("no turns")
        if any(role in ("observation", "function") for role, _ in named):
            return _skip("tool turns (observation / function call)")
        if any(role != ("user", "assistant")[i % 2] for i, (role, _) in enumerate(named)) or len(named) % 2:
            return _skip("roles that do not alternate user, assistant, …, assistant")
        if not all(_text(text) for _, text in named) or not all(_text(h["content"]) for h in head):
            return _skip("a turn with no text")
        return _keep(head + [{"role": role, "content": text} for role, text in named])

    return convert


def _messages(src: TrainData, names: list[str], origin: str):
    """Chat `messages` ({role, content}) or ShareGPT `conversations` ({from, value}), as TRL and
    the published reasoning sets write them."""
    column = src.messages or next((c for c in ("messages", "conversations") if c in names), None)
    if column is None:
        raise UserError(
            f"{origin}: no 'messages' column (has: {', '.join(names)[:150]}); give rows with chat `messages`, "
            "ShareGPT `conversations`, or name the columns (messages: COL, or prompt: / response:)"
        )
    _need(names, origin)(column)
    system = src.system or ("system" if "system" in names else None)
    speakers = {**_SPEAKERS, **src.roles}

    def convert(row: dict) -> dict:
        turns = row[column]
        if not isinstance(turns, list):
            raise UserError(f"{origin}: column '{column}' holds {type(turns).__name__}, not a list of turns "
                            "({role, content} mappings)")
        messages = []
        for turn in turns:
            if isinstance(turn, dict) and "role" in turn and "content" in turn and src.role_tag not in turn:
                role, content = turn["role"], turn["content"]
            elif isinstance(turn, dict) and src.role_tag in turn and src.content_tag in turn:
                role = speakers.get(turn[src.role_tag])
                if role is None:
                    raise UserError(f"{origin}: unknown speaker '{str(turn[src.role_tag])[:40]}' in '{column}'; map "
                                    f"it with `roles: {{{str(turn[src.role_tag])[:40]}: user}}` in train.data")
                content = turn[src.content_tag]
            else:
                raise UserError(f"{origin}: a turn in '{column}' is not a {{role, content}} mapping (nor "
                                f"{src.role_tag}/{src.content_tag}): {str(turn)[:60]!r}")
            if not _text(content):
                return _skip("a turn whose content is not text (null, or multimodal parts)")
            messages.append({"role": role, "content": content})
        if system and _text(row.get(system)) and row[system] and (not messages or messages[0]["role"] != "system"):
            messages.insert(0, {"role": "system", "content": row[system]})
        return _keep(messages)

    return convert


def _keep(messages: list[dict]) -> dict:
    return {"messages": messages, "_skip": ""}


def _skip(why: str) -> dict:
    return {"messages": [], "_skip": why}


def _converter(src: TrainData, names: list[str], origin: str):
    """A row -> {"messages": […], "_skip": reason} function for this source's layout."""
    if src.formatting == "alpaca":
        return _alpaca(src, names, origin)
    if src.formatting in ("sharegpt", "openai"):
        return _sharegpt(src, names, origin)
    if src.prompt is not None:
        return _columns(src, names, origin)
    return _messages(src, names, origin)


def _sample(ds, n: int, seed: int):
    """LLaMA-Factory's num_samples: every row once in a random order, then rows drawn again at
    random until there are n (seeded here; LLaMA-Factory's draw is not)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ds))[:n]
    extra = rng.choice(len(ds), n - len(order)) if n > len(order) else np.array([], dtype=int)
    return ds.select(np.concatenate([order, extra]).tolist())


def _convert(ds, src: TrainData, origin: str):
    """The rows as conversations; rows that cannot be one are dropped with one line per reason."""
    from collections import Counter

    from ..ui import console

    convert = _converter(src, ds.column_names, origin)
    out = ds.map(convert, remove_columns=ds.column_names)
    reasons = Counter(r for r in out["_skip"] if r)
    for why, n in reasons.items():
        console.print(f"train: {origin}: {n} of {len(out)} rows skipped: {why}")
    if reasons:
        out = out.filter(lambda row: not row["_skip"])
    if len(out) == 0:
        raise UserError(f"{origin}: no row is a conversation to train on ({', '.join(reasons)})")
    return out.remove_columns("_skip")


def load_conversations(sources: tuple[TrainData, ...], seed: int = 0, mix: str = "concat",
                       probabilities: tuple[float, ...] = ()):
    """Every source's rows as one Dataset with a single `messages` column: concatenated and
    shuffled, or interleaved (LLaMA-Factory's interleave_* mix strategies)."""
    import datasets

    from ..sources import quiet_hub

    quiet_hub()
    parts = []
    for src in sources:
        ds, origin = _read(src)
        if src.columns:
            missing = [c for c in src.columns if c not in ds.column_names]
            if missing:
                raise UserError(f"{origin}: no column '{missing[0]}' (has: {', '.join(ds.column_names)[:150]})")
            ds = ds.select_columns(list(src.columns))
        if src.weight is not None:  # open-r1's way: shuffle, then keep the first share
            ds = ds.shuffle(seed=seed).select(range(int(len(ds) * src.weight)))
        if src.num_samples is not None and len(ds):
            ds = _sample(ds, src.num_samples, seed)
        if src.limit is not None:
            ds = ds.select(range(min(src.limit, len(ds))))
        if len(ds) == 0:
            raise UserError(f"{origin}: no rows to train on")
        media = [c for c in ("image", "images", "video", "videos", "audio", "audios") if c in ds.column_names]
        if media and src.formatting == "auto":  # TRL would train a vision model on them; distill would drop them
            raise UserError(f"{origin}: rows carry media (column '{media[0]}'); distill trains text-only students: "
                            f"select the text columns (columns: [messages]) or remove the source")
        parts.append(_convert(ds, src, origin))
    if len(parts) == 1:
        return parts[0]
    if mix != "concat":
        strategy = {"interleave_under": "first_exhausted", "interleave_over": "all_exhausted",
                    "interleave_once": "all_exhausted_without_replacement"}[mix]
        return datasets.interleave_datasets(parts, probabilities=list(probabilities) or None, seed=seed,
                                            stopping_strategy=strategy)
    return datasets.concatenate_datasets(parts).shuffle(seed=seed)
