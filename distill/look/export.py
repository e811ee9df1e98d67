"""run_export(): a run folder's rows as a dataset to share: JSON Lines, Parquet or a
`datasets.save_to_disk` folder, with a dataset card (README.md) and provenance.json, optionally
pushed to the Hugging Face hub.

The export is built in a hidden folder beside OUT and moved into place only when whole, so a
killed export leaves OUT as it was (an earlier export, or nothing); the next run removes the
leftovers. Rows stream shard by shard (jsonl), are hard-linked (parquet), or go through
datasets' own memory-mapped loading (hf): never all in memory.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import hub, provenance
from .. import shards
from ..errors import ConfigError, UserError, reason
from ..filter.report import INPUTS, PASS1, REJECTED
from ..runfolder import RESOLVED

FORMATS = ("jsonl", "parquet", "hf")
ROWS = ("kept", "rejected", "traces")
COMMAND = {"traces": "generate", "kept": "filter", "rejected": "filter"}
TMP = ".export-tmp-"
FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".arrow")
BATCH = 64  # rows per JSON Lines write: tens of MB at most, even for 32k-token traces


@dataclass(frozen=True)
class Source:
    """What an export reads. `rows` is None for a folder that distill did not write."""

    path: Path  # as the user gave it
    data: Path  # the folder (or file) of Parquet files read
    files: tuple[Path, ...]
    rows: str | None
    stage: Path | None  # the distill stage folder (traces/ or filtered/), if any
    run: Path | None  # the run folder holding recipe.resolved.yaml, if any


def _stage_kind(folder: Path) -> str | None:
    """'generate' or 'filter' for a distill stage folder, finished or not; None otherwise."""
    manifest = shards.read_manifest(folder)
    if manifest is not None:
        return manifest.get("stage") if manifest.get("stage") in ("generate", "filter") else None
    if any((folder / name).exists() for name in (PASS1, INPUTS, REJECTED, "report.json")):
        return "filter"
    return "generate" if (folder / shards.DONE).is_dir() else None


def _as_stage(path: Path) -> tuple[Path, tuple[str, ...]] | None:
    """(stage folder, the rows it holds) for a stage folder or its data/ or rejected/ folder."""
    if not path.is_dir():
        return None
    kind = _stage_kind(path)
    if kind is not None:
        return path, ("traces",) if kind == "generate" else ("kept", "rejected")
    kind = _stage_kind(path.parent) if path.name in (shards.DATA, "rejected") else None
    if kind is None:
        return None
    return path.parent, ("rejected",) if path.name == "rejected" else ("traces",) if kind == "generate" else ("kept",)


def resolve_source(path: Path, rows: str | None = None) -> Source:
    """The rows to export for `path`: a run folder (kept rows unless `rows` says otherwise), a
    stage folder or its data/ or rejected/ folder, or any folder of Parquet files (as it is)."""
    path = Path(path)
    if rows is not None and rows not in ROWS:
        raise ConfigError(f"--rows must be one of {', '.join(ROWS)}; got '{rows}'")
    if not path.exists():
        raise UserError(f"{path}: no such folder")
    run = stage = None
    if path.is_dir() and any((path / n).exists() for n in (RESOLVED, "traces", "filtered")):
        run, rows = path, rows or "kept"
        stage = path / ("traces" if rows == "traces" else "filtered")
        if not stage.is_dir():
            raise UserError(f"{path}: a run folder without {stage.name}/; run `distill {COMMAND[rows]}` into it first")
    elif (found := _as_stage(path)) is not None:
        stage, held = found
        if rows is not None and rows not in held:
            raise ConfigError(f"{path}: holds {' or '.join(held)} rows, not {rows}; "
                              f"give the run folder with --rows {rows}")
        rows = rows or held[0]
        if (stage.parent / RESOLVED).is_file() and stage.name == ("traces" if held == ("traces",) else "filtered"):
            run = stage.parent
    elif rows is not None:
        raise ConfigError(f"{path}: not a distill run or stage folder, so --rows does not apply; "
                          "leave it out to export its Parquet files as they are")
    if stage is not None and not shards.is_complete(stage):
        raise UserError(f"{stage}: not finished ({len(shards.done(stage))} shards done, no manifest); "
                        f"rerun the same `distill {COMMAND[rows]}` command first")
    data = (stage / ("rejected" if rows == "rejected" else shards.DATA)) if stage else shards.data_folder(path)
    if stage is None and data.is_dir() and (inner := next(data.rglob(shards.MANIFEST), None)):
        raise UserError(f"{path}: holds distill stage folders ({inner}); export one run folder at a time")
    files = shards.list_files(data) if data.exists() else []
    if not files:
        raise UserError(f"{data}: no Parquet files to export")
    return Source(path, data, tuple(files), rows, stage, run)


def _is_export(out: Path) -> bool:
    try:
        return json.loads((out / "provenance.json").read_text()).get("exported_by") == provenance.MARK
    except (OSError, ValueError, AttributeError):
        return False


def check_out(out: Path, source: Source) -> None:
    """OUT is a folder of its own: new, empty, or an earlier export, which is replaced whole.
    Anything else is refused rather than deleted: there is deliberately no --force, since a
    typo such as `--out ~` would cost a home folder."""
    if out.suffix in FILE_SUFFIXES and not out.is_dir():
        raise ConfigError(f"--out {out}: names a file; --out is a folder (data files, README.md, provenance.json)")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file; give a folder")
    read, target = (source.stage or source.data).resolve(), out.resolve()
    if target == read or target in read.parents or read in target.parents:
        raise ConfigError(f"--out {out}: overlaps the folder being exported ({source.stage or source.data}); "
                          "choose a folder outside it")
    if any((out / n).exists() for n in (RESOLVED, shards.MANIFEST, shards.DONE)):
        raise ConfigError(f"--out {out}: is a distill run or stage folder; an export goes in a folder of its own")
    if out.is_dir() and any(out.iterdir()) and not _is_export(out):
        raise ConfigError(f"--out {out}: exists and is not an earlier distill export (no provenance.json from "
                          "one); choose a new or empty folder")


# ---------------------------------------------------------------- the three formats


def _nonempty(files: tuple[Path, ...]) -> list[Path]:
    """Files with rows (one empty file is kept when all are, so the schema still travels)."""
    return [f for f in files if shards.open_file(f).metadata.num_rows] or list(files[:1])


def write_parquet(files: tuple[Path, ...], folder: Path) -> list[str]:
    """The shards under the hub's split naming (`train-00000-of-00008.parquet`), hard-linked:
    a distill shard is never changed in place (it is replaced by rename), so a link is a copy."""
    keep = _nonempty(files)
    names = [f"data/train-{i:05d}-of-{len(keep):05d}.parquet" for i in range(len(keep))]
    for source, name in zip(keep, names):
        shards.link_file(source, folder / name)
    return names


def _round_float32(value):
    # float32 0.3555 reads back as 0.35550001263618469: write the digits float32 actually holds
    return value if value is None else float(f"{value:.7g}")


def write_jsonl(files: tuple[Path, ...], folder: Path) -> list[str]:
    """One JSON object per row in data/train.jsonl, read a batch at a time."""
    import pyarrow as pa

    name = "data/train.jsonl"
    (folder / "data").mkdir(parents=True, exist_ok=True)
    with open(folder / name, "w", encoding="utf-8") as out:
        for path in files:
            pf = shards.open_file(path)
            floats = [f.name for f in pf.schema_arrow if pa.types.is_float32(f.type)]
            try:
                for batch in pf.iter_batches(batch_size=BATCH):
                    shards.check_text(path, pa.Table.from_batches([batch]))
                    lines = []
                    for row in batch.to_pylist():
                        for column in floats:
                            row[column] = _round_float32(row[column])
                        lines.append(json.dumps(row, ensure_ascii=False, default=str))
                    out.write("".join(line + "\n" for line in lines))
            except (pa.ArrowException, OSError) as e:
                raise UserError(f"{path}: damaged Parquet shard ({reason(e)}); "
                                "delete it and rerun the stage that wrote it") from None
        out.flush()
        os.fsync(out.fileno())
    return [name]


def write_hf(files: tuple[Path, ...], folder: Path, cache: Path) -> list[str]:
    """datasets.save_to_disk of the rows, loaded by datasets itself from the Parquet files
    (memory-mapped). A fresh cache folder, removed after: datasets' shared cache can hand back
    another folder's rows for files of the same names."""
    import datasets

    datasets.disable_progress_bars()  # the export prints its own one line
    if not any(shards.open_file(f).metadata.num_rows for f in files):
        # datasets cannot read a Parquet file of no rows ("BatchSize must be greater than 0"):
        # an empty dataset of the same columns, as the Parquet and JSON Lines exports give
        schema = shards.open_file(files[0]).schema_arrow
        features = datasets.Features.from_arrow_schema(schema)
        datasets.Dataset.from_dict({name: [] for name in schema.names}, features=features).save_to_disk(str(folder), num_shards=1)
        return sorted(p.name for p in folder.iterdir())
    try:
        ds = datasets.Dataset.from_parquet([str(f) for f in _nonempty(files)], cache_dir=str(cache))
    except (datasets.exceptions.DatasetGenerationError, ValueError, TypeError) as e:  # say, files of two schemas
        raise UserError(f"{files[0].parent}: datasets cannot load these Parquet files as one dataset "
                        f"({reason(e.__cause__ or e)}); export --format parquet or jsonl instead") from None
    ds.save_to_disk(str(folder))
    del ds
    shutil.rmtree(cache, ignore_errors=True)
    return sorted(p.name for p in folder.iterdir())


def _load_hint(fmt: str, where: str, hub: bool) -> str:
    if hub:
        return f'from datasets import load_dataset\n\nds = load_dataset("{where}", split="train")'
    if fmt == "hf":
        return f'from datasets import load_from_disk\n\nds = load_from_disk("{where}")'
    if fmt == "jsonl":
        return f'from datasets import load_dataset\n\nds = load_dataset("json", data_files="{where}/data/train.jsonl", split="train")'
    return f'from datasets import load_dataset\n\nds = load_dataset("parquet", data_dir="{where}/data", split="train")'


DATA_FILES = {"jsonl": "data/train.jsonl", "parquet": "data/train-*.parquet", "hf": None}


def _write(source: Source, folder: Path, fmt: str, found: dict, command: str, where: str, hub: bool) -> list[str]:
    """Data files, README.md, provenance.json and the run's recipe into `folder`."""
    if fmt == "jsonl":
        names = write_jsonl(source.files, folder)
    elif fmt == "parquet":
        names = write_parquet(source.files, folder)
    else:
        names = write_hf(source.files, folder, folder.parent / "cache")
    prov = provenance.collect(source, found, fmt, names, command)
    shards.write_json(folder / "provenance.json", prov)
    (folder / "README.md").write_text(provenance.card(prov, DATA_FILES[fmt], _load_hint(fmt, where, hub)))
    if source.run is not None and (source.run / RESOLVED).is_file():
        shutil.copyfile(source.run / RESOLVED, folder / "recipe.yaml")
    return names


def _clean_stale(out: Path) -> None:
    """Remove the build folders of exports to OUT that were killed (their process is gone)."""
    for path in out.parent.glob(f".{out.name}{TMP}*"):
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _swap(built: Path, out: Path, tmp: Path) -> None:
    """Put the finished export at OUT: the earlier one moves aside first (a directory cannot be
    renamed over a non-empty one), then goes once the new one is in place."""
    old = tmp / "old"
    if out.exists():
        os.replace(out, old)
    os.replace(built, out)
    shutil.rmtree(old, ignore_errors=True)


def export_command(folder, out, fmt, rows, push_to_hub, private) -> str:
    args = ["distill", "export", str(folder), "--format", fmt, "--out", str(out)]
    args += ["--rows", rows] if rows else []
    args += ["--push-to-hub", push_to_hub] if push_to_hub else []
    return shlex.join(args + (["--private"] if private else []))


def run_export(folder: Path, out: Path, fmt: str, rows: str | None = None, push_to_hub: str | None = None,
               private: bool = False) -> dict:
    """Export the rows of `folder` to `out` in `fmt`; with `push_to_hub`, upload them too."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}; got '{fmt}'")
    if private and not push_to_hub:
        raise ConfigError("--private needs --push-to-hub REPO")
    out = Path(out)
    source = resolve_source(folder, rows)
    check_out(out, source)
    if push_to_hub:  # before any work: a typo or a missing token costs nothing
        hub.check(push_to_hub)
    out.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale(out)
    tmp = out.parent / f".{out.name}{TMP}{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    command = export_command(folder, out, fmt, rows, push_to_hub, private)
    try:
        found = provenance.scan(list(source.files))
        try:
            names = _write(source, tmp / "export", fmt, found, command, str(out), hub=False)
            _swap(tmp / "export", out, tmp)
        except OSError as e:  # disk full, no permission: OUT is as it was
            raise UserError(f"{out}: cannot write the export ({e.strerror or e}); {out} is unchanged") from None
        result = {"out": out, "rows": found["rows"], "kind": source.rows, "format": fmt, "files": names, "url": None}
        if push_to_hub:
            # the hub gets Parquet whatever the local format: its viewer and load_dataset(REPO) read it best
            _write(source, tmp / "hub", "parquet", found, command, push_to_hub, hub=True)
            result["url"] = hub.push(tmp / "hub", push_to_hub, private, out, found["rows"], source.rows)
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
