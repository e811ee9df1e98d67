"""Sharded Parquet folders: atomic shard writes, done markers, resume, robust reads (DESIGN §2).

A stage folder looks like

    STAGE/data/shard-00000.parquet   the rows; `data/` holds nothing else, so
                                     datasets.load_dataset("parquet", data_dir=STAGE/data) works
    STAGE/_done/00000                empty marker, written after the shard file
    STAGE/manifest.json              written last, when every shard is done

A shard is written to a hidden temporary name and `os.replace`d into place, then marked done;
a rerun skips marked shards and rewrites anything else, so a crash never loses or doubles rows.
"""

from __future__ import annotations

import errno
import json
import os
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import UserError, reason

DATA = "data"
DONE = "_done"
MANIFEST = "manifest.json"


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.parquet"


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def writing(path: Path, tmp: Path | None = None):
    """Name `path` in a failed write that names no file (pyarrow's and `write()`'s errors do not,
    e.g. a full disk), so the CLI says what failed where in one line; the temp file goes."""
    try:
        yield
    except OSError as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if e.filename:
            raise
        code = e.errno or errno.EIO
        text = os.strerror(code) + ("; free some space or write to another --out" if code == errno.ENOSPC else "")
        raise OSError(code, text, str(path)) from None


def write_table(path: Path, table: pa.Table) -> None:
    """Write a Parquet file atomically: temp name in the same folder, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    with writing(path, tmp):
        pq.write_table(table, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def link_file(source: Path, path: Path) -> None:
    """Put an already written shard at `path` too, atomically, without copying it (a hard link;
    a copy where the file system has none)."""
    import shutil

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        with writing(path, tmp):
            shutil.copyfile(source, tmp)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def write_text(path: Path, text: str) -> None:
    """Write a small text file atomically (temp file + rename): a reader sees the old or the new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    with writing(path, tmp):
        tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: Path, obj: object) -> None:
    """Write JSON atomically (temp file + rename)."""
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def mark_done(stage: Path, index: int) -> None:
    marker = stage / DONE / f"{index:05d}"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    _fsync_dir(marker.parent)


def done(stage: Path) -> set[int]:
    """Indices of the shards marked done in a stage folder."""
    folder = stage / DONE
    if not folder.is_dir():
        return set()
    return {int(p.name) for p in folder.iterdir() if p.name.isdigit()}


def write_card(stage: Path, title: str, configs: dict[str, str], body: str = "") -> None:
    """A dataset-card README.md, so `datasets.load_dataset(str(stage))` loads the stage's rows
    (config `default`, plus any others, e.g. `rejected`) without naming the data folder."""
    lines = ["---", "configs:"]
    for name, folder in configs.items():
        lines += [f"- config_name: {name}", "  data_files:", "  - split: train", f"    path: {folder}/*.parquet"]
    lines += ["---", f"# {title}", "", body.strip(), ""]
    write_text(stage / "README.md", "\n".join(lines))


def forget_missing(stage: Path, files_for) -> set[int]:
    """Drop done markers whose shard files are gone (say a damaged shard deleted by hand), and the
    manifest with them, so that the rerun writes those shards again. Returns what is still done."""
    still = set()
    for index in done(stage):
        if all(f.is_file() for f in files_for(index)):
            still.add(index)
        else:
            (stage / DONE / f"{index:05d}").unlink(missing_ok=True)
            (stage / MANIFEST).unlink(missing_ok=True)
    return still


def clean_temp(stage: Path) -> None:
    """Remove temporary files a killed writer left behind."""
    for p in stage.rglob(".*.tmp-*"):
        p.unlink(missing_ok=True)


def is_complete(stage: Path) -> bool:
    return (stage / MANIFEST).is_file()


def read_manifest(stage: Path) -> dict | None:
    path = stage / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: unreadable manifest ({e}); delete it and rerun the stage") from None


def data_folder(path: Path) -> Path:
    """The folder of Parquet shards for `path`: a stage folder (its data/) or a shard folder itself."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such folder")
    if path.is_dir() and (path / DATA).is_dir():
        return path / DATA
    return path


def input_folder(path: Path, stage: str, command: str) -> Path:
    """The shards to read for `path`: a run folder (its `stage`/), a stage folder, or any folder
    of Parquet files. A stage that has started but not finished is refused, not half-read."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such folder")
    folder = path / stage if (path / stage).is_dir() else path
    if folder == path and (path / "recipe.resolved.yaml").is_file():
        raise UserError(f"{path}: a run folder without {stage}/; run `distill {command}` into it first")
    if (folder / DONE).is_dir() and not is_complete(folder):
        raise UserError(
            f"{folder}: not finished ({len(done(folder))} shards done, no manifest); "
            f"rerun the same `distill {command}` command first"
        )
    return data_folder(folder)


def list_files(path: Path) -> list[Path]:
    """Parquet files of a folder (hidden and _-prefixed entries skipped), or the single file given."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UserError(f"{path}: no such file or folder")
    return sorted(
        p
        for p in path.rglob("*.parquet")
        if not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
    )


def open_file(path: Path) -> pq.ParquetFile:
    """Open a Parquet file; a truncated or foreign file is one clear line."""
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise UserError(
            f"{path}: not a readable Parquet file ({reason(e)}); "
            "replace it (or delete it and rerun the stage that wrote it)"
        ) from None


def read_file(path: Path, columns: list[str] | None = None) -> pa.Table:
    """Read one shard, naming the file and the missing column on failure."""
    pf = open_file(path)
    if columns:
        missing = [c for c in columns if c not in pf.schema_arrow.names]
        if missing:
            raise UserError(f"{path}: missing column '{missing[0]}' (has: {', '.join(pf.schema_arrow.names)})")
    try:
        table = pf.read(columns=columns)
    except (pa.ArrowException, OSError) as e:
        raise UserError(
            f"{path}: damaged Parquet shard ({reason(e)}); delete it and rerun the stage that wrote it"
        ) from None
    check_text(path, table)
    return table


def check_text(path: Path, table: pa.Table) -> None:
    """Arrow keeps a text column's bytes unchecked until they are read: name the bad column
    here rather than fail with a UnicodeDecodeError wherever a value is first used."""
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            try:
                column.validate(full=True)
            except pa.ArrowInvalid:
                raise UserError(f"{path}: column '{name}' holds bytes that are not valid UTF-8; "
                                f"re-encode that text as UTF-8 (or drop those rows) and rerun") from None


def count_rows(path: Path) -> int:
    return sum(open_file(p).metadata.num_rows for p in list_files(path))
