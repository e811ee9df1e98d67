"""Per-shard append-only journals: every finished (paid-for) sample is kept the moment it arrives.

A shard is written only when all its samples are in (DESIGN §1), so without this a kill loses
every finished request of the unfinished shards. While a shard is under way its samples go, one
JSON line each, to `STAGE/_journal/NNNNN.jsonl`; a rerun reads the journal first and asks the
teacher only for what is missing. The shard file is still written atomically from the complete
set, then the journal goes.

Each line is one `os.write` on an `O_APPEND` descriptor, so a `kill -9` leaves whole lines plus
at most one torn last line (dropped, and cut off before anything is appended after it). Lines
are fsynced in small groups (every `GROUP` lines or `INTERVAL` seconds): a kill of the process
loses nothing that was written, a power cut at most the last group.

Line 1 is a header naming the shard's prompt ids and a hash of the generation config: a journal
left by another plan or config is refused with one line, never mixed in.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from .errors import UserError

FOLDER = "_journal"
GROUP = 32  # lines per fsync at most
INTERVAL = 1.0  # seconds between fsyncs at most


def path_for(stage: Path, index: int) -> Path:
    return Path(stage) / FOLDER / f"{index:05d}.jsonl"


def _header(prompts: list[dict], gen_config: str) -> dict:
    return {
        "journal": 1,
        "gen_config": hashlib.sha256(gen_config.encode()).hexdigest()[:16],
        "prompts": [p["id"] for p in prompts],
    }


class ShardJournal:
    """One shard's journal: `samples` holds what earlier runs kept, keyed (prompt_index, sample_idx);
    `append` keeps a new one; `finish` removes the file once the shard is written."""

    def __init__(self, stage: Path, index: int, prompts: list[dict], gen_config: str) -> None:
        self.path = path_for(stage, index)
        self.index = index
        self._position = {p["id"]: j for j, p in enumerate(prompts)}
        self._ids = [p["id"] for p in prompts]
        self.samples: dict[tuple[int, int], dict] = {}
        header = _header(prompts, gen_config)
        good = self._read(header)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if good is None:  # a new journal (or one torn inside its header): start it afresh
            os.ftruncate(self._fd, 0)
            self._write(header)
        else:
            os.ftruncate(self._fd, good)  # drop a torn last line before appending after it
        self._sync()

    def _read(self, header: dict) -> int | None:
        """Load the kept samples; return the byte length of the whole lines (None: no header)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        good, offset = None, 0
        for raw in data.splitlines(keepends=True):
            if not raw.endswith(b"\n"):
                break  # the torn last line of a killed writer
            try:
                record = json.loads(raw)
            except json.JSONDecodeError:
                break
            if good is None:
                if record != header:
                    raise UserError(
                        f"{self.path}: a journal of another plan or generation config; "
                        "rerun with the settings that started this run, or use a new --out"
                    )
            else:
                j = self._position.get(record.get("id"))
                if j is None:
                    raise UserError(f"{self.path}: holds a sample of prompt {record.get('id')!r}, not in this shard; use a new --out")
                sample = record["sample"]
                self.samples.setdefault((j, sample["sample_idx"]), {"prompt_index": j, **sample})
            offset += len(raw)
            good = offset
        return good

    def _write(self, record: dict) -> None:
        os.write(self._fd, (json.dumps(record, ensure_ascii=False) + "\n").encode())

    def _sync(self) -> None:
        os.fsync(self._fd)
        self._unsynced, self._synced_at = 0, time.monotonic()

    def append(self, sample: dict) -> None:
        """Keep one finished sample (with `prompt_index`); durable against a kill on return."""
        key = (sample["prompt_index"], sample["sample_idx"])
        if key in self.samples:
            return
        self.samples[key] = sample
        record = {k: v for k, v in sample.items() if k != "prompt_index"}
        self._write({"id": self._ids[sample["prompt_index"]], "sample": record})
        self._unsynced += 1
        if self._unsynced >= GROUP or time.monotonic() - self._synced_at >= INTERVAL:
            self._sync()

    def close(self) -> None:
        if self._fd >= 0:
            self._sync()
            os.close(self._fd)
            self._fd = -1

    def finish(self) -> None:
        """The shard is written: the journal has done its job."""
        self.close()
        self.path.unlink(missing_ok=True)


class Journals:
    """What generate hands a backend that keeps answers as they arrive: the stage's journals, and
    a folder for the backend's own resume state (say, batch ids)."""

    def __init__(self, stage: Path, gen_config: str, rank: int = 0) -> None:
        self.stage, self.gen_config, self.rank = Path(stage), gen_config, rank
        self.folder = self.stage / FOLDER

    def open(self, index: int, prompts: list[dict]) -> ShardJournal:
        return ShardJournal(self.stage, index, prompts, self.gen_config)


def clean_done(stage: Path, done: set[int]) -> None:
    """Journals of shards already written (a kill between the shard's write and the journal's
    removal) are spent: remove them."""
    folder = Path(stage) / FOLDER
    if folder.is_dir():
        for p in folder.glob("*.jsonl"):
            if p.stem.isdigit() and int(p.stem) in done:
                p.unlink(missing_ok=True)


def pending_cost(stage: Path) -> float:
    """What the samples kept in journals (shards not yet written) cost, as recorded."""
    total = 0.0
    folder = Path(stage) / FOLDER
    for p in folder.glob("*.jsonl") if folder.is_dir() else ():
        for raw in p.read_bytes().splitlines(keepends=True)[1:]:
            try:
                total += json.loads(raw)["sample"].get("cost") or 0.0
            except (json.JSONDecodeError, KeyError, TypeError):
                break
    return total
