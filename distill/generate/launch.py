"""`distill generate --data-parallel N`: N engine processes on one node, each with its own GPU
group (tensor × pipeline parallel GPUs) and its own shards (--rank i --world-size N)."""

from __future__ import annotations

import os
import subprocess
import sys

from ..config import TeacherCard
from ..errors import ConfigError, UserError
from ..ui import console


def gpus_per_engine(teacher: TeacherCard) -> int:
    engine = teacher.engine
    return int(engine.get("tensor_parallel_size", 1)) * int(engine.get("pipeline_parallel_size", 1))


def _devices() -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d for d in visible.split(",") if d.strip()]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - no torch or no CUDA: a CPU machine
        return []


def data_parallel(args: list[str], workers: int, teacher: TeacherCard) -> None:
    """Run `distill generate ARGS` as `workers` ranks at once and wait for all of them."""
    if workers < 1:
        raise ConfigError(f"--data-parallel must be at least 1, got {workers}")
    devices, per = _devices(), gpus_per_engine(teacher)
    if devices and workers * per > len(devices):
        raise ConfigError(
            f"--data-parallel {workers} × {per} GPUs per engine needs {workers * per} GPUs; {len(devices)} visible"
        )
    procs = []
    for rank in range(workers):
        env = dict(os.environ)
        if devices:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(devices[rank * per : (rank + 1) * per])
        cmd = [sys.executable, "-m", "distill", "generate", *args, "--rank", str(rank), "--world-size", str(workers)]
        procs.append(subprocess.Popen(cmd, env=env))
        console.print(f"data parallel: rank {rank} started (pid {procs[-1].pid}"
                      + (f", GPUs {env['CUDA_VISIBLE_DEVICES']})" if devices else ")"))
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        raise
    failed = [(rank, code) for rank, code in enumerate(codes) if code != 0]
    if failed:
        raise UserError(
            "data parallel: " + ", ".join(f"rank {r} exited with {c}" for r, c in failed)
            + "; finished shards are kept, rerun the same command to resume"
        )
