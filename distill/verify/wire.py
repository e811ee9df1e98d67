"""What travels between the verify pool and its workers: a `Job` (a range of rows the worker reads
itself) and the verdict frame (a length-prefixed pickle on a plain pipe). Shared by pool.py (the
parent) and worker.py (the child), so that neither imports the other's module for it."""

from __future__ import annotations

import os
import pickle
import struct
from typing import Any

HEADER = struct.Struct("!I")  # a verdict frame: its pickle's length, then the pickle


def write_frame(fd: int, obj: Any) -> None:
    """One verdict to the parent (the worker side of `_Worker.read`)."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


class Job:
    """Rows [start, stop) of `run_job(fn, args, start, stop, emit)` of the pool's `jobs` module; the
    pool yields ((key, row), value) for each row, value being what the job emitted for it (or a
    Verdict of `timeout` / `crashed`); `timeout` replaces the pool's for its rows."""

    __slots__ = ("key", "fn", "args", "start", "stop", "timeout")

    def __init__(self, key, fn: str, args: tuple, start: int, stop: int, timeout: float | None = None) -> None:
        self.key, self.fn, self.args, self.start, self.stop, self.timeout = key, fn, args, start, stop, timeout

    def rest(self, start: int, stop: int | None = None) -> Job:
        return Job(self.key, self.fn, self.args, start, self.stop if stop is None else stop, self.timeout)
