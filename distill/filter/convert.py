"""convert_published(): a published trace dataset → RUN/traces, written as `distill generate`
writes it (DESIGN §1–2), so that `distill filter` reads it unchanged.

Input: a local Parquet / JSONL / JSON file, a folder of them, or a hub id (datasets.load_dataset).
Each published row becomes a problem (distill.filter.published) and each of its samples a trace row;
every `generate.shard_size` problems make one shard, written atomically and marked done, the
manifest last. The conversion is deterministic, so a killed run, rerun with the same command,
rewrites only the shards not marked done and ends with the same rows; a rerun with other
settings (layout, columns, teacher, input files, shard size, limit) is refused.

A row that cannot become traces (no problem text, mismatched sample lists, a line that is not
JSON) costs only itself, and so does an empty sample: they are counted and reported, never
silently dropped. A missing column is one line before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import published
from .. import schema, shards
from ..errors import ConfigError, UserError, reason
from ..ui import console, plural

STAGE = "traces"
SETTINGS = "_published.json"  # what the shards were converted from, and how: the resume guard
SUFFIXES = {".parquet": "parquet", ".jsonl": "jsonl", ".json": "json"}
METADATA = {"dataset_info.json", "dataset_infos.json", "state.json", "dataset_dict.json"}  # never rows
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class Input:
    name: str  # for messages and the `source` of columns-mapped rows
    files: tuple[Path, ...] = ()
    hub: str | None = None
    subset: str | None = None
    split: str = "train"
    saved: Path | None = None  # a folder written by datasets' save_to_disk


# ---------------------------------------------------------------- reading


def resolve_input(path: str, subset: str | None, split: str | None) -> Input:
    local = Path(path).expanduser()
    if local.is_file():
        if local.suffix.lower() not in SUFFIXES:
            raise UserError(f"{local}: not a Parquet, JSONL or JSON file (give a .parquet, .jsonl or .json file)")
        files = (local,)
    elif local.is_dir() and (local / "state.json").is_file() and (local / "dataset_info.json").is_file():
        files = ()
        if not (subset or split):
            return Input(name=local.name, saved=local)
    elif local.is_dir():
        files = tuple(sorted(p for p in local.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()
                             and p.name not in METADATA
                             and not any(part.startswith((".", "_")) for part in p.relative_to(local).parts)))
        if not files:
            raise UserError(f"{local}: no .parquet, .jsonl or .json files in this folder")
    elif _HUB_ID.match(path) and not path.startswith((".", "/")):
        return Input(name=path, hub=path, subset=subset, split=split or "train")
    else:
        raise UserError(f"{path}: no such file or folder (nor a hub dataset id like open-r1/OpenR1-Math-220k)")
    if subset or split:
        raise ConfigError("--subset and --split choose a part of a hub dataset; for local files give the file or folder")
    return Input(name=local.stem if local.is_file() else local.name, files=files)


def _load_hub(inp: Input):
    import datasets

    from ..sources import quiet_hub

    quiet_hub()
    if inp.saved is not None:
        try:
            loaded = datasets.load_from_disk(str(inp.saved))
        except Exception as e:  # noqa: BLE001 - a damaged or foreign folder
            raise UserError(f"{inp.saved}: cannot be read with datasets.load_from_disk ({reason(e)})") from None
        if isinstance(loaded, datasets.DatasetDict):
            raise UserError(f"{inp.saved}: holds several splits ({', '.join(loaded)}); give one split's folder")
        return loaded
    try:
        return datasets.load_dataset(inp.hub, inp.subset, split=inp.split)
    except Exception as e:  # noqa: BLE001 - offline, gated, missing, bad split: all the same to the user
        raise UserError(f"cannot load '{inp.hub}' from the hub ({reason(e, kind=True)}); download it and give "
                        "the local file or folder instead") from None


def _json_rows(path: Path) -> Iterator[tuple[int, dict | Exception]]:
    """Rows of a JSON Lines file, or of a JSON file holding one array of rows; a bad line is an
    exception in place of its row, so it costs only itself."""
    with open(path, encoding="utf-8") as f:
        head = f.read(1 << 16).lstrip()
    if path.suffix.lower() == ".json" and head.startswith("["):
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise UserError(f"{path}: not valid JSON ({e}); fix or re-export the file") from None
        for i, row in enumerate(rows):
            yield i, row if isinstance(row, dict) else ValueError("not a JSON object")
        return
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                yield i, ValueError("not valid JSON")
                continue
            yield i, row if isinstance(row, dict) else ValueError("not a JSON object")


def _parquet(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise UserError(f"{path}: not a readable Parquet file ({reason(e)}); download or export it again") from None


def file_columns(path: Path) -> list[str]:
    """The column names of one input file (a JSON file's: those of its first row)."""
    if path.suffix.lower() == ".parquet":
        return list(_parquet(path).schema_arrow.names)
    for _, row in _json_rows(path):
        if isinstance(row, dict):
            return list(row)
    raise UserError(f"{path}: no JSON rows in this file")


def iter_rows(inp: Input, dataset=None) -> Iterator[tuple[str, int, dict | Exception]]:
    """(where, row number, row) for every input row, in order."""
    if dataset is not None:
        for i, row in enumerate(dataset):
            yield inp.hub or str(inp.saved), i, row
        return
    for path in inp.files:
        if path.suffix.lower() == ".parquet":
            number = 0
            try:
                for batch in _parquet(path).iter_batches(batch_size=64):
                    for row in batch.to_pylist():
                        yield str(path), number, row
                        number += 1
            except (OSError, ValueError) as e:  # pyarrow's errors are both
                raise UserError(f"{path}: damaged Parquet file ({reason(e)}); download or export it again") from None
        else:
            for number, row in _json_rows(path):
                yield str(path), number, row


def _files_of(inp: Input) -> list[Path]:
    """The files whose names and sizes guard a resume (a saved dataset's Arrow files)."""
    return sorted(inp.saved.rglob("*.arrow")) if inp.saved is not None else list(inp.files)


# ---------------------------------------------------------------- choosing the layout


def _missing(columns: list[str], needs: tuple[str, ...]) -> str | None:
    return next((c for c in needs if c not in columns), None)


def named_layout(fmt: str | None, columns_spec: str | None):
    """(name, layout) for --format NAME or --columns MAP; None for --format auto (decided on the
    columns). Checked before any data is read or downloaded."""
    if columns_spec is not None:
        if fmt not in (None, "columns"):
            raise ConfigError(f"--format {fmt} and --columns: give one of them (--columns maps any other layout)")
        return "columns", published.ColumnsLayout.parse(columns_spec)
    if fmt == "auto":
        return None
    if fmt not in published.LAYOUTS:
        import difflib

        close = difflib.get_close_matches(fmt or "", list(published.LAYOUTS) + ["auto"], n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(f"--format: unknown layout '{fmt}' ({hint}known: {published.names_for_help()})")
    return fmt, published.LAYOUTS[fmt]


def detect_layout(where: str, columns: list[str]):
    """(name, layout) for --format auto: the most specific layout whose columns are all there."""
    found = published.detect(columns)
    if not found:
        raise UserError(f"{where}: matches no published trace layout (has {_shown(columns)[8:]}); map its "
                        "columns with --columns problem=COL,response=COL,… (docs/published-traces.md)")
    top = [n for n in found if published.LAYOUTS[n].needs == published.LAYOUTS[found[0]].needs]
    if len(top) > 1:  # one layout published under several names (OpenThoughts, Bespoke-Stratos)
        raise ConfigError(f"{where}: the {' / '.join(top)} layout; name the dataset with "
                          + " or ".join(f"--format {n}" for n in top) + " (it becomes the rows' source)")
    return found[0], published.LAYOUTS[found[0]]


def _shown(columns: list[str]) -> str:
    text = ", ".join(columns)
    return f"columns {text}" if len(text) <= 120 else f"columns {text[:117]}..."


def check_columns(name: str, lay, where: str, columns: list[str]) -> None:
    """Every column the layout reads is there, or one line naming the first one missing."""
    missing = _missing(columns, lay.needs)
    if missing is None:
        return
    others = [n for n in published.detect(columns) if n != name]
    fix = (f"it looks like --format {others[0]}" if others else
           "map its columns with --columns problem=COL,response=COL,…")
    what = "--columns" if name == "columns" else f"--format {name}"
    raise UserError(f"{where}: no column '{missing}' for {what} (has {_shown(columns)[8:]}); {fix}")


# ---------------------------------------------------------------- converting


def _id(layout_name: str, problem: published.Problem, seen: Counter) -> str:
    key = problem.key or hashlib.sha1(problem.problem.encode()).hexdigest()[:16]
    base = f"{published.safe(layout_name)}/{key}"
    seen[base] += 1
    # a problem published twice stays two problems: its samples keep their own positions, and no
    # two rows share an (id, sample_idx) pair
    return base if seen[base] == 1 else f"{base}~{seen[base]}"


def _teacher(value: str) -> str:
    """--teacher: a teacher card (bundled name or .yaml path) is recorded as `distill generate`
    records it (model@revision); any other text as it is."""
    from .. import cards

    if value in cards.names("teachers") or value.endswith((".yaml", ".yml")):
        from ..config import TeacherCard
        from ..models import describe
        from ..recipes import load_card

        return describe(load_card(TeacherCard, value))
    return value


def _gen_config(layout_name: str, dataset: str, system: str | None) -> str:
    config: dict = {"published": layout_name, "dataset": dataset}
    if system:  # the filter builds the student's prompt from this: the dataset's own system turn
        config["template"] = {"system": system, "user": "{problem}", "think_prefix": False}
    return json.dumps(config, sort_keys=True)


class _Tally:
    """What was skipped, why, and where first."""

    def __init__(self) -> None:
        self.rows: Counter = Counter()
        self.samples = 0
        self.first: dict[str, str] = {}
        self.verdicts: Counter = Counter()

    def skip_row(self, why: str, where: str, number: int) -> None:
        self.rows[why] += 1
        self.first.setdefault(why, f"{where} row {number}")

    def line(self) -> str | None:
        parts = []
        if self.rows:
            top = ", ".join(f"{n}× {why}" for why, n in self.rows.most_common(3))
            more = f", {len(self.rows) - 3} other reasons" if len(self.rows) > 3 else ""
            first = self.first[self.rows.most_common(1)[0][0]]
            parts.append(f"{plural(sum(self.rows.values()), 'row')} ({top}{more}; first at {first})")
        if self.samples:
            parts.append(f"{plural(self.samples, 'empty or null sample')}")
        return " and ".join(parts) if parts else None


def convert_published(path: str, out: Path, fmt: str | None, columns_spec: str | None, teacher: str | None,
                      subset: str | None, split: str | None, shard_size: int, limit: int | None) -> Path:
    """Write the published dataset at `path` as trace shards in `out/traces`; return that folder."""
    chosen = named_layout(fmt, columns_spec)
    inp = resolve_input(str(path), subset, split)
    dataset = _load_hub(inp) if inp.hub is not None or inp.saved is not None else None
    sources = [(inp.hub or str(inp.saved), list(dataset.column_names))] if dataset is not None else \
              [(str(f), file_columns(f)) for f in inp.files]
    name, lay = chosen or detect_layout(*sources[0])
    for where, cols in sources:  # every file has the layout's columns before anything is written
        check_columns(name, lay, where, cols)
    teacher_name = _teacher(teacher) if teacher else (lay.teacher if name != "columns" else "unknown")
    dataset_name = lay.hub if name != "columns" else inp.name
    settings = {
        "format": name,
        "columns": lay.columns if name == "columns" else None,
        "teacher": teacher_name,
        "input": ({"hub": inp.hub, "subset": inp.subset, "split": inp.split} if inp.hub is not None else
                  [[str(f.resolve()), f.stat().st_size] for f in _files_of(inp)]),
        "shard_size": shard_size,
        "limit": limit,
    }
    stage = Path(out) / STAGE
    if _claim(stage, settings):
        console.print(f"convert: {stage} already holds {name} traces from {inp.name}")
        return stage

    seen: Counter = Counter()
    tally = _Tally()
    problems, rows, index, written = 0, [], 0, Counter()
    done = shards.done(stage)

    def flush() -> None:
        nonlocal rows, index
        if index not in done:
            shards.write_table(stage / shards.DATA / shards.shard_name(index), schema.table(rows, schema.TRACE))
            shards.mark_done(stage, index)
            written["shards"] += 1
        written["rows"] += len(rows)
        written["truncated"] += sum(r["finish_reason"] == "length" for r in rows)
        rows, index = [], index + 1

    console.print(f"convert: {inp.name} as {name} (teacher {teacher_name}) into {stage}")
    for where, number, raw in iter_rows(inp, dataset):
        if limit is not None and problems >= limit:
            break
        try:
            if isinstance(raw, Exception):
                raise published.RowError(str(raw))
            problem = lay.convert(raw)
        except published.RowError as e:
            tally.skip_row(str(e), where, number)
            continue
        usable = [(i, s) for i, s in enumerate(problem.samples) if s is not None]
        if not usable:
            tally.skip_row("no usable sample", where, number)
            continue
        tally.samples += len(problem.samples) - len(usable)  # the row stays; these samples go
        for v in problem.verdicts:
            tally.verdicts["correct" if v else "incorrect" if v is not None else "unknown"] += 1
        pid = _id(name, problem, seen)
        source = f"{published.safe(name)}/{problem.source}" if problem.source else (
            name if name != "columns" else published.safe(inp.name))
        gen_config = _gen_config(name, dataset_name, problem.system)
        for i, sample in usable:
            rows.append({"id": pid, "problem": problem.problem, "answer": problem.answer, "source": source,
                         "domain": problem.domain, "choices": None, "tests": problem.tests, "sample_idx": i,
                         "teacher": teacher_name, "completion": sample.completion,
                         "finish_reason": sample.finish_reason, "prompt_tokens": None, "completion_tokens": None,
                         "gen_config": gen_config})
        problems += 1
        if problems % shard_size == 0:
            flush()
    if rows:
        flush()
    skipped = tally.line()
    if problems == 0:
        raise UserError(f"{inp.name}: no usable rows for {'--columns' if name == 'columns' else '--format ' + name}"
                        + (f": skipped {skipped}" if skipped else " (the input is empty)"))
    if skipped:
        console.print(f"[yellow]convert: skipped {skipped}")
    _finish(stage, settings, index, problems, written, tally, dataset_name)
    console.print(f"convert: {plural(problems, 'problem')}, {plural(written['rows'], 'sample')} in "
                  f"{plural(index, 'shard')} ({written['shards']} written now)")
    if name != "columns" and not lay.has_gold:  # said before filtering, not only after
        console.print(f"  note: {name} has no gold answers: no answer verifier checks these rows "
                      "(see docs/published-traces.md)")
    return stage


def _claim(stage: Path, settings: dict) -> bool:
    """Record the settings for a conversion into `stage`, or refuse a changed one. True when the
    stage is already complete with these settings."""
    path = stage / SETTINGS
    started = bool(shards.done(stage)) or shards.is_complete(stage)
    if started and not path.is_file():
        raise ConfigError(f"{stage}: holds traces that `distill generate` wrote; convert into a new --out")
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            stored = None
        if stored != settings and started:
            key = next((k for k in settings if (stored or {}).get(k) != settings[k]), "settings")
            old = (stored or {}).get(key)
            raise ConfigError(f"{stage}: converted with {key}={_short(old)}, now {_short(settings[key])}; "
                              "rerun with the same settings, or use a new --out")
    if shards.is_complete(stage):
        return True
    done = shards.forget_missing(stage, lambda i: [stage / shards.DATA / shards.shard_name(i)])
    shards.clean_temp(stage)
    if not done or not path.is_file():
        shards.write_json(path, settings)
    return False


def _short(value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _finish(stage: Path, settings: dict, shard_count: int, problems: int, written: Counter, tally: _Tally,
            dataset: str) -> None:
    from ..versions import versions as _versions

    body = (f"Converted by `distill filter --format {settings['format']}` from {dataset}; teacher "
            f"{settings['teacher']}. See manifest.json.")
    shards.write_card(stage, "distill traces (published)", {"default": shards.DATA}, body)
    shards.write_json(stage / shards.MANIFEST, {
        "stage": "published",  # not "generate": no teacher card or sampling settings made these rows
        "format": settings["format"],
        "dataset": dataset,
        "teacher": settings["teacher"],
        "input": settings["input"],
        "counts": {"prompts": problems, "samples": written["rows"], "completion_tokens": None,
                   "truncated": written["truncated"], "shards": shard_count},
        "skipped": {"rows": dict(tally.rows), "samples": tally.samples},
        # the dataset's own per-sample verdicts (e.g. correctness_math_verify), counted for
        # comparison with the filter's report; the filter verifies every row itself
        "published_verdicts": dict(tally.verdicts),
        "versions": _versions(),
    })
