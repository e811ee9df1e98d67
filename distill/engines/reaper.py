"""Engine processes die with distill, even after `kill -9`.

vLLM runs its engine core and workers as separate processes; when the process that started them
is killed outright they are orphaned and keep their memory (GPU memory, on a GPU). `watch()`
starts a small watchdog in its own session that waits for this process to end, then SIGKILLs
the engine processes recorded at start (each checked by its start time, so a reused pid is left
alone). After a normal shutdown they are gone already and it has nothing to do.
"""

from __future__ import annotations

import os
import subprocess
import sys

WATCHDOG = r"""
import os, signal, sys, time
parent, targets = int(sys.argv[1]), [tuple(map(int, t.split(":"))) for t in sys.argv[2:]]
def started(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None
parent_start = started(parent)
while started(parent) == parent_start and parent_start is not None:
    time.sleep(0.5)
for pid, start in targets:
    if started(pid) == start:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
"""


def _start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: start time in ticks
    except (OSError, ValueError, IndexError):
        return None


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def watch() -> None:
    """Have this process's current descendants killed when it dies (no-op off Linux)."""
    if not os.path.isdir("/proc"):
        return
    targets = [f"{pid}:{start}" for pid in descendants(os.getpid()) if (start := _start_time(pid)) is not None]
    if targets:
        subprocess.Popen([sys.executable, "-c", WATCHDOG, str(os.getpid()), *targets], start_new_session=True,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
