"""A pool of verifier processes with a hard wall-clock limit per row.

Rows go to a worker in small batches (so a worker never waits on the parent between rows) and
come back one verdict at a time, each a length-prefixed pickle on a plain pipe that the parent
drains with one non-blocking read per wake-up (a Connection's poll()+recv() per verdict cost the
parent a third of a core, which the workers need). A worker works through its rows in order, so the row it is on
has been running since its previous verdict: when that exceeds the limit, the worker is killed
(SIGKILL: it stops C-level work such as a huge sympy power that no alarm can interrupt) and
replaced, the row is rejected as `timeout`, and the rest of its batch goes back in the queue. A
worker that dies on its own has its current row retried once on a fresh worker, then rejected
as `crashed`. Nothing is dropped silently.

Besides single rows, a task may be a `Job`: a range of rows that the worker reads itself (the
filter's trace files) and answers row by row, so that the parent ships no row at all; a row in
it that overruns or kills its worker costs that row only, and the rest of the range goes back in
the queue. A job's row may announce its own time limit first. Jobs run `run_job(fn, args, start,
stop, emit)` of the module the pool is given as `jobs` (the filter's: distill/filter/filterwork.py),
so that this layer imports no stage.

Workers fork from a forkserver that has math-verify (and the `jobs` module) imported already, so
a replacement is ready in milliseconds, and nothing of the parent (threads, open files) leaks
into them.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import time
from collections import deque
from collections.abc import Iterable, Iterator
from multiprocessing.connection import wait
from typing import Any

from .registry import Verdict
from .wire import HEADER, Job

_WORKER_MODULE = "distill.verify.worker"
SETTLE = 0.002  # seconds
AHEAD = 2  # batches a worker may hold beyond the one it works on: the queue keeps all of them fed
JOB_WEIGHT = 16  # a job in a worker's queue counts as this many rows: one job ahead of the current


def _serve(conn, out, jobs: str | None) -> None:
    # imported here, in the worker, so the parent never loads math-verify itself
    from .worker import serve

    serve(conn, out.fileno(), jobs)


def _context(jobs: str | None = None):
    ctx = mp.get_context("forkserver")
    # "__main__" too: the server imports the main module once, so each worker skips
    # multiprocessing's per-child re-import of it and starts in milliseconds.
    ctx.set_forkserver_preload(["__main__", _WORKER_MODULE] + ([jobs] if jobs else []))
    return ctx


def start_server(jobs: str | None = None) -> None:
    """Start the forkserver now, without waiting for it: it imports the worker module (and
    `jobs`, the module that runs the pool's Jobs; about half a second) while the caller gets on
    with other work; the pool's workers fork from it."""
    from multiprocessing import forkserver

    _context(jobs)
    forkserver.ensure_running()


class _Worker:
    def __init__(self, ctx, jobs: str | None = None) -> None:
        self.conn, child = ctx.Pipe()  # tasks, parent -> worker
        self.reader, writer = ctx.Pipe(duplex=False)  # verdicts, worker -> parent, as raw frames
        self.process = ctx.Process(target=_serve, args=(child, writer, jobs), daemon=True)
        self.process.start()
        child.close()
        writer.close()  # the worker holds the only write end: its death reads as end of file
        os.set_blocking(self.reader.fileno(), False)
        self.buffer = bytearray()
        self.pending: deque = deque()  # tasks sent and not answered, in the order it runs them
        self.since = 0.0  # when the row it is on started (its previous verdict, or the send)
        self.limit: float | None = None  # the time limit the row it is on announced, if any

    def read(self) -> list:
        """Every verdict that has arrived, without blocking; [] at end of file (a dead worker)."""
        fd = self.reader.fileno()
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.buffer += chunk
        verdicts, at = [], 0
        while len(self.buffer) - at >= HEADER.size:
            (size,) = HEADER.unpack_from(self.buffer, at)
            if len(self.buffer) - at - HEADER.size < size:
                break
            start = at + HEADER.size
            verdicts.append(pickle.loads(self.buffer[start : start + size]))
            at = start + size
        del self.buffer[:at]
        return verdicts

    def deadline(self, default: float) -> float:
        """When the row it is on runs out of time (rows may carry their own limit, e.g. code)."""
        return self.since + (self.limit or self.pending[0][3] or default)

    def send(self, tasks: list[tuple]) -> None:
        if not self.pending:
            self.since = time.monotonic()
        self.pending.extend(tasks)
        self.conn.send([payload for _, payload, _, _ in tasks])

    def load(self) -> int:
        """Rows sent and not answered; a job counts as one batch, however long."""
        return sum(1 if not isinstance(p, Job) else JOB_WEIGHT for _, p, _, _ in self.pending)

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()
        self.reader.close()


class VerifyPool:
    """`imap(tasks)` runs (key, names, row, options[, timeout]) tasks and yields (key, Verdict) as
    they finish; a task's own timeout (seconds) replaces the pool's for that row. `jobs`: the
    module whose `run_job` runs the `Job` tasks (none: the pool takes single rows only)."""

    def __init__(self, workers: int = 0, timeout: float = 5.0, batch: int = 16, jobs: str | None = None) -> None:
        self.size = workers or os.cpu_count() or 1
        self.timeout, self.batch, self.jobs = timeout, batch, jobs
        self.ctx = _context(jobs)
        self.workers = [_Worker(self.ctx, jobs) for _ in range(self.size)]
        self.stats = {"timeout": 0, "crashed": 0, "retried": 0}

    def _replace(self, worker: _Worker) -> _Worker:
        worker.kill()
        fresh = _Worker(self.ctx, self.jobs)
        self.workers[self.workers.index(worker)] = fresh
        return fresh

    def imap(self, tasks: Iterable) -> Iterator[tuple[Any, Any]]:
        """Tasks: (key, names, row, options[, timeout]) or `Job`s; the source may also yield None
        for "nothing to hand out now" (while answers it waits for are outstanding)."""
        source = iter(tasks)
        queue: deque = deque()  # (key, payload, attempt, timeout) waiting for a worker
        exhausted = False
        outstanding = 0  # rows sent to workers and not answered

        def refill() -> None:
            nonlocal exhausted
            while not exhausted and len(queue) < self.batch * self.size * (AHEAD + 1):
                try:
                    task = next(source)
                except StopIteration:
                    exhausted = True
                    return
                if task is None:
                    return
                if isinstance(task, Job):
                    queue.append((task.key, task, 0, task.timeout))
                    continue
                key, names, row, options, *timeout = task
                queue.append((key, (names, row, options), 0, timeout[0] if timeout else None))

        def size(payload) -> int:
            return payload.stop - payload.start if isinstance(payload, Job) else 1

        def current(worker: _Worker):
            """What the worker is on: (its key, its payload, attempt, time limit, the rest of its
            job after it or None); for a job, the key is (job key, row) and the payload that row
            alone, to be retried or reported by itself."""
            key, payload, attempt, limit = worker.pending[0]
            if not isinstance(payload, Job):
                return key, payload, attempt, limit, None
            row = payload.start
            rest = payload.rest(row + 1) if row + 1 < payload.stop else None
            return (key, row), payload.rest(row, row + 1), attempt, limit, rest

        while True:
            refill()
            for i, worker in enumerate(self.workers):
                # up to AHEAD + 1 batches per worker: it goes on without waiting on us, also
                # while the parent is busy writing a finished file's results
                while queue and worker.load() < AHEAD * self.batch:
                    take = [queue.popleft()]
                    while queue and len(take) < self.batch and not isinstance(take[-1][1], Job) \
                            and not isinstance(queue[0][1], Job):
                        take.append(queue.popleft())
                    worker.send(take)
                    outstanding += sum(size(p) for _, p, _, _ in take)
            if not outstanding:
                if exhausted:
                    return
                raise RuntimeError("the task source has nothing to hand out and waits on nothing")
            busy = [w for w in self.workers if w.pending]
            wait_for = max(0.0, min(w.deadline(self.timeout) for w in busy) - time.monotonic())
            ready = set(wait([w.reader for w in busy] + [w.process.sentinel for w in busy], timeout=wait_for))
            if ready and wait_for > 2 * SETTLE:
                # let a few more verdicts arrive before draining: one wake-up per handful of rows
                # instead of one per row leaves the cores to the workers (each has rows queued)
                time.sleep(SETTLE)
                ready = set(wait([w.reader for w in busy] + [w.process.sentinel for w in busy], timeout=0))
            for worker in busy:
                if worker.reader in ready or worker.process.sentinel in ready:
                    arrived = worker.read()
                    if arrived:
                        # the row after the last one answered started about now
                        worker.since = time.monotonic()
                    for value in arrived:
                        key, payload, attempt, limit = worker.pending[0]
                        if isinstance(payload, Job):
                            if isinstance(value, float):  # the limit for what follows (0: ours)
                                worker.limit = value or None
                                continue
                            key = (key, payload.start)
                            if payload.start + 1 < payload.stop:
                                worker.pending[0] = (payload.key, payload.rest(payload.start + 1), attempt, limit)
                            else:
                                worker.pending.popleft()
                        else:
                            worker.pending.popleft()
                        worker.limit = None
                        outstanding -= 1
                        yield key, value
                    if worker.pending and not worker.process.is_alive():
                        # it died under its current row (killed from outside, out of memory, …)
                        outstanding -= sum(size(p) for _, p, _, _ in worker.pending)
                        key, payload, attempt, limit, rest = current(worker)
                        later = list(worker.pending)[1:]
                        self._replace(worker)
                        queue.extendleft(reversed(([(rest.key, rest, 0, limit)] if rest else []) + later))
                        if attempt == 0:
                            self.stats["retried"] += 1
                            queue.appendleft((payload.key if isinstance(payload, Job) else key, payload, 1, limit))
                        else:
                            self.stats["crashed"] += 1
                            yield key, Verdict(False, "crashed")
                elif worker.pending and time.monotonic() >= worker.deadline(self.timeout):
                    outstanding -= sum(size(p) for _, p, _, _ in worker.pending)
                    key, payload, attempt, limit, rest = current(worker)
                    later = list(worker.pending)[1:]
                    self._replace(worker)
                    queue.extendleft(reversed(([(rest.key, rest, 0, limit)] if rest else []) + later))
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
