"""Dataset cards to prompt rows (DESIGN §3): hub datasets, local files, or registered generators."""

from __future__ import annotations

import hashlib
import inspect
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from .arithmetic import arithmetic
from .config import DataSource, DatasetCard
from .errors import ConfigError, UserError, reason

# Prompt generators: plain functions (**params) -> iterable of {problem, answer[, id]}.
GENERATORS: dict[str, Callable[..., Iterable[dict]]] = {"arithmetic": arithmetic}

_LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


def register_generator(name: str, fn: Callable[..., Iterable[dict]]) -> None:
    """Make a prompt generator available to dataset cards as `generator: NAME`."""
    GENERATORS[name] = fn


def _as_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # AMC-style 27.0 → "27"
    return str(value)


def _generated(card: DatasetCard) -> list[dict]:
    fn = GENERATORS.get(card.generator or "")
    if fn is None:
        raise ConfigError(
            f"dataset card '{card.name}': unknown generator '{card.generator}' (known: {', '.join(GENERATORS)})"
        )
    accepted = inspect.signature(fn).parameters
    for key in card.params:
        if key not in accepted:
            raise ConfigError(
                f"dataset card '{card.name}': unknown generator param '{key}' (valid: {', '.join(accepted)})"
            )
    try:
        return list(fn(**card.params))
    except (KeyError, ValueError, TypeError) as e:
        raise ConfigError(f"dataset card '{card.name}': generator '{card.generator}' failed: {e}") from None


def quiet_hub() -> None:
    """No progress bars from datasets, and no warning per retry from huggingface_hub (offline,
    five retries print five warnings over 40 s); a failed load is one line of ours instead."""
    import datasets
    from huggingface_hub.utils import logging as hub_logging

    datasets.disable_progress_bars()
    hub_logging.set_verbosity_error()


def _loaded(card: DatasetCard, path: str | None, split: str) -> tuple[list[dict], str]:
    """Raw rows from a local file (when a path is given) or the hub, and a name for messages."""
    import datasets  # heavy: only when prompts are actually loaded

    quiet_hub()
    if path:
        file = Path(path).expanduser()
        if not file.is_file():
            raise UserError(f"{file}: no such file (data path of dataset card '{card.name}')")
        fmt = _LOCAL_FORMATS.get(file.suffix.lower())
        if fmt is None:
            raise UserError(f"{file}: unsupported file type (use .jsonl, .json, .parquet or .csv)")
        if file.stat().st_size == 0:
            raise UserError(f"{file}: the file is empty (data path of dataset card '{card.name}')")
        if fmt != "parquet":
            check_utf8(file)
        try:
            ds = datasets.load_dataset(fmt, data_files=str(file), split="train")
        except Exception as e:  # noqa: BLE001 - any parse failure is the file's fault
            raise UserError(f"{file}: cannot be read as {fmt} ({reason(e, limit=200)})") from None
        return _rows(ds, str(file)), str(file)
    if not card.hub:
        raise ConfigError(f"dataset card '{card.name}' names no hub dataset, path or generator")
    try:
        ds = datasets.load_dataset(card.hub, card.subset, split=split)
    except Exception as e:  # noqa: BLE001 - offline, gated, missing: all the same to the user
        raise UserError(
            f"cannot load '{card.hub}' from the hub ({reason(e, kind=True)}); "
            f"give a local file: `path: FILE` beside `card: {card.name}` in the recipe "
            f"(e.g. --set data.N.path=FILE)"
        ) from None
    return _rows(ds, card.hub), card.hub


def _rows(ds, origin: str) -> list[dict]:
    try:
        return ds.to_list()
    except UnicodeDecodeError:  # Arrow keeps text columns' bytes unchecked until read
        raise UserError(f"{origin}: a text column holds bytes that are not valid UTF-8; "
                        f"re-encode the file as UTF-8") from None


def check_utf8(file: Path) -> None:
    """Name the first line of a text file that is not valid UTF-8 (read in 1 MiB pieces)."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    line, offset = 1, 0
    with open(file, "rb") as f:
        while piece := f.read(1 << 20):
            try:
                decoder.decode(piece)
            except UnicodeDecodeError as e:
                at = max(0, e.start - len(decoder.getstate()[0]))
                line += piece[:at].count(b"\n")
                raise UserError(f"{file}: line {line} is not valid UTF-8 (byte 0x{piece[at]:02x} at offset "
                                f"{offset + at}); re-encode the file as UTF-8") from None
            line += piece.count(b"\n")
            offset += len(piece)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise UserError(f"{file}: ends inside a UTF-8 character; re-encode the file as UTF-8") from None


def prompt_rows(source: DataSource, loaded: tuple[list[dict], str] | None = None, fix: str | None = None) -> list[dict]:
    """The prompt rows of one recipe data source, with stable ids and gold answers. `loaded`:
    its raw rows and their name, when the caller read them already; `fix`: how to map a
    missing column, where the recipe's `columns:` is not the way (distill eval's --set)."""
    card = source.card
    cols = source.columns or card.columns
    if loaded is not None:
        raw, origin = loaded
    elif card.generator and not source.path:
        raw, origin = _generated(card), f"generator '{card.generator}'"
        cols = type(cols)(problem="problem", answer="answer", id="id")
    else:
        raw, origin = _loaded(card, source.path or card.path, source.split or card.split)
    if raw:
        have = list(raw[0])
        for want in (cols.problem, cols.answer, cols.id):
            if want is not None and want not in raw[0]:
                raise UserError(
                    f"{origin}: no column '{want}' (has: {', '.join(have)}); map it with "
                    + (fix or f"`columns: {{problem: …, answer: …}}` beside `card: {card.name}` in the recipe")
                )
    pattern = re.compile(card.answer_pattern) if card.answer_pattern else None
    rows, seen = [], set()
    for i, r in enumerate(raw):
        problem = r[cols.problem]
        if not isinstance(problem, str) or not problem.strip():
            raise UserError(f"{origin}: row {i} has an empty '{cols.problem}'")
        answer = _as_text(r[cols.answer]) if cols.answer else None
        if pattern is not None and answer is not None:
            m = pattern.search(answer)
            answer = m.group(1).strip() if m else None
        if cols.id is not None:
            if r[cols.id] is None:  # "card/None" for every such row would fold them into one
                raise UserError(f"{origin}: row {i} has no '{cols.id}' (null); give every row an id, "
                                f"or drop `id:` from the columns to derive ids from the problems")
            rid = f"{card.name}/{r[cols.id]}"
        else:  # stable across runs and machines: derived from the source and the problem text
            rid = f"{card.name}/{hashlib.sha1(problem.encode()).hexdigest()[:16]}"
        if rid in seen:  # a repeated problem would give repeated (id, sample_idx) pairs
            continue
        seen.add(rid)
        rows.append(
            {
                "id": rid,
                "problem": problem,
                "answer": answer,
                "source": card.name,
                "domain": card.domain,
                "choices": r.get("choices"),
                "tests": r.get("tests"),
            }
        )
        if source.limit is not None and len(rows) >= source.limit:
            break
    _check_answers(raw, cols, card, pattern, origin)
    return rows


def _check_answers(raw: list[dict], cols, card, pattern, origin: str) -> None:
    """A card's answer_pattern that matches few of a file's answers would turn every gold answer
    into nothing (a user's file behind a bundled card): say so before anything is generated."""
    if pattern is None or not cols.answer:
        return
    answers = [a for a in (_as_text(r.get(cols.answer)) for r in raw[:1000]) if a]
    missed = [a for a in answers if not pattern.search(a)]
    if answers and len(missed) > len(answers) / 2:
        raise UserError(
            f"{origin}: card '{card.name}' reads gold answers with the pattern {card.answer_pattern!r}, which "
            f"matches {len(answers) - len(missed)} of {len(answers)} answers here (e.g. {missed[0][:30]!r}): "
            "for your own file drop `card:` and give `path:` with `columns:`"
        )


def load_prompts(sources: tuple[DataSource, ...], limit: int | None = None) -> list[dict]:
    """All prompt rows of a recipe, in order, first `limit` only when given."""
    if not sources:
        raise ConfigError("the recipe has no `data:` section: name at least one dataset card")
    rows: list[dict] = []
    seen: set[str] = set()
    for source in sources:
        for row in prompt_rows(source):
            if row["id"] not in seen:
                seen.add(row["id"])
                rows.append(row)
    return rows[:limit] if limit is not None else rows
