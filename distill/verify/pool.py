"""A pool of verifier processes with a hard wall-clock limit per row.

Each worker takes one row at a time. A row that overruns its limit has its worker killed
(SIGKILL: it stops C-level work such as a huge sympy power that no alarm can interrupt) and
replaced; the row is rejected as `timeout`. A worker that dies on its own has its row retried
once on a fresh worker, then rejected as `crashed`. Nothing is dropped silently.

Workers fork from a forkserver that has math-verify imported already, so a replacement is
ready in milliseconds, and nothing of the parent (threads, open files) leaks into them.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
from multiprocessing.connection import wait
from typing import Any

from . import Verdict

_WORKER_MODULE = "distill.verify.worker"


class _Worker:
    def __init__(self, ctx) -> None:
        from .worker import serve

        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=serve, args=(child,), daemon=True)
        self.process.start()
        child.close()
        self.task: tuple | None = None  # (key, payload, attempt)
        self.deadline = 0.0

    def send(self, task: tuple, timeout: float) -> None:
        self.task = task
        self.deadline = time.monotonic() + timeout
        self.conn.send(task[1])

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


class VerifyPool:
    """`imap(tasks)` runs (key, names, row, options) tasks and yields (key, Verdict) as they finish."""

    def __init__(self, workers: int = 0, timeout: float = 5.0) -> None:
        self.size = workers or os.cpu_count() or 1
        self.timeout = timeout
        self.ctx = mp.get_context("forkserver")
        # "__main__" too: the server imports the main module once, so each worker skips
        # multiprocessing's per-child re-import of it and starts in milliseconds.
        self.ctx.set_forkserver_preload(["__main__", _WORKER_MODULE])
        self.workers = [_Worker(self.ctx) for _ in range(self.size)]
        self.stats = {"timeout": 0, "crashed": 0, "retried": 0}

    def _replace(self, worker: _Worker) -> _Worker:
        worker.kill()
        fresh = _Worker(self.ctx)
        self.workers[self.workers.index(worker)] = fresh
        return fresh

    def imap(self, tasks: Iterable[tuple[Any, tuple[str, ...], dict, dict]]) -> Iterator[tuple[Any, Verdict]]:
        source = iter(tasks)
        retries: deque = deque()
        idle = list(self.workers)
        busy: list[_Worker] = []
        exhausted = False
        while True:
            while idle and (retries or not exhausted):
                if retries:
                    task = retries.popleft()
                else:
                    try:
                        key, names, row, options = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    task = (key, (names, row, options), 0)
                worker = idle.pop()
                worker.send(task, self.timeout)
                busy.append(worker)
            if not busy:
                return
            wait_for = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=wait_for))
            now = time.monotonic()
            for worker in list(busy):
                key, payload, attempt = worker.task
                if worker.conn in ready or worker.process.sentinel in ready:
                    try:
                        if worker.conn.poll():
                            verdict = worker.conn.recv()
                            busy.remove(worker)
                            idle.append(worker)
                            yield key, verdict
                            continue
                    except (EOFError, OSError):
                        pass
                    # the worker died under this row (killed from outside, out of memory, segfault)
                    busy.remove(worker)
                    idle.append(self._replace(worker))
                    if attempt == 0:
                        self.stats["retried"] += 1
                        retries.append((key, payload, 1))
                    else:
                        self.stats["crashed"] += 1
                        yield key, Verdict(False, "crashed")
                elif now >= worker.deadline:
                    busy.remove(worker)
                    idle.append(self._replace(worker))
                    self.stats["timeout"] += 1
                    yield key, Verdict(False, "timeout")

    def close(self) -> None:
        for worker in self.workers:
            try:
                worker.conn.send(None)
            except OSError:
                pass
        for worker in self.workers:
            worker.process.join(timeout=2)
            worker.kill()

    def __enter__(self) -> VerifyPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
