"""The verifier worker process: receive (names, row, options), write back a Verdict frame; or
receive a Job (a range of a trace file) and write a frame per row, as `run_job` of the pool's
`jobs` module does it (the filter's: distill/filter/filterwork.py).

Imported by the forkserver before any worker forks, so math-verify (and sympy) load once.
"""

from __future__ import annotations

import importlib
import logging
import resource
import signal

import math_verify  # noqa: F401 - preloaded on purpose: workers fork with it imported

from .registry import Verdict, run
from .wire import Job, write_frame

logging.getLogger("math_verify").setLevel(logging.CRITICAL)


def _warm() -> None:
    """Do once here, in the forkserver before any worker forks, what each worker would
    otherwise pay for on its first rows: pyarrow imports pandas the first time it converts a
    Python list (0.3 s; a worker writes its files' shards from lists), math-verify imports parts
    of sympy on its first parse and verify, and sympy's simplify() imports sympy.physics on its
    first call (0.3 s). The verdicts math-verify caches here are pure functions of their strings."""
    import pyarrow as pa
    import pyarrow.compute  # noqa: F401 - the shards are built with it
    from math_verify import parse, verify
    from sympy import Symbol, simplify

    pa.array([0])
    verify(parse("$x^2 + 1$", parsing_timeout=None), parse("$\\boxed{1 + x^2}$", parsing_timeout=None),
           timeout_seconds=None)
    simplify(Symbol("x") ** 2 - 1)


_warm()

# A runaway expression (9^{9^{9}} expanded, a huge factorial) fails with MemoryError inside
# the worker instead of taking the machine's memory.
MEMORY_LIMIT_BYTES = 4 << 30


def serve(conn, out: int, jobs: str | None = None) -> None:
    # the forkserver imported `jobs` already (pool.start_server): a lookup, not an import
    run_job = importlib.import_module(jobs).run_job if jobs else None
    # Ctrl-C reaches the whole process group: the parent handles it and closes the pool, so a
    # worker stays quiet instead of printing a traceback of the row it was on.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    except (ValueError, OSError):  # not allowed here (some containers): the time limit still holds
        pass
    while True:
        try:
            batch = conn.recv()
        except (EOFError, OSError):
            return
        if batch is None:
            return
        for payload in batch:  # one verdict per row, in order: the parent times each
            if isinstance(payload, Job):
                run_job(payload.fn, payload.args, payload.start, payload.stop, lambda value: write_frame(out, value))
                continue
            names, row, options = payload
            try:
                verdict = run(names, row, options)
            except Exception:  # noqa: BLE001 - a verifier bug rejects one row, not the run
                verdict = Verdict(False, "verifier_error")
            write_frame(out, verdict)
