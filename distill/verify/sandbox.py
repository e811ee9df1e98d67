"""Run untrusted Python in a separate process that cannot hurt the machine.

Layers, each covering for the others:
- resource limits: CPU seconds, address space (a 100 GB allocation fails), processes (a fork
  bomb stops), file size, open files;
- a fresh scratch directory as the working directory, a scrubbed environment, `python -I`;
- where the kernel allows user namespaces: a new network namespace (no network at all) and a
  new mount namespace in which every mount but the scratch directory is read-only; leaving
  the initial user namespace also drops root's exemption from the process limit;
- an audit hook in the runner refuses writes outside the scratch directory, sockets, process
  creation and ctypes, for code that would try from Python;
- a wall-clock limit that kills the whole process group, and PR_SET_PDEATHSIG so the program
  dies with the verifier worker that started it.
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass

CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWNS = 0x10000000, 0x40000000, 0x00020000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG = 1

# Runs first in the sandboxed interpreter; the program is main.py in the working directory.
RUNNER = r"""
import os, sys
_scratch = os.path.realpath(os.getcwd())
_source = open("main.py").read()
_BLOCKED = {"socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo", "os.fork",
            "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "subprocess.Popen",
            "ctypes.dlopen", "ctypes.dlsym", "os.kill", "os.killpg", "pty.spawn"}
_WRITES = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "shutil.rmtree", "os.truncate",
           "os.symlink", "os.link", "os.chmod", "os.chown", "os.utime"}

def _inside(path):
    try:
        path = os.fsdecode(path)
    except TypeError:
        return False
    return os.path.realpath(path).startswith(_scratch + os.sep)

def _hook(event, args):
    if event in _BLOCKED:
        raise PermissionError(f"{event} is not allowed in the sandbox")
    if event == "open" and args and args[1] is not None and any(c in str(args[1]) for c in "wax+"):
        if not _inside(args[0]):
            raise PermissionError(f"writing {args[0]!r} is not allowed in the sandbox")
    elif event == "os.open" and args and args[2] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC):
        if not _inside(args[0]):
            raise PermissionError(f"writing {args[0]!r} is not allowed in the sandbox")
    elif event in _WRITES and args and not _inside(args[0]):
        raise PermissionError(f"{event} outside the sandbox is not allowed")

sys.addaudithook(_hook)
del _hook
exec(compile(_source, "main.py", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
"""


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 10.0
    cpu_seconds: int = 10
    memory_mb: int = 1024
    processes: int = 16  # new processes and threads the program may start
    file_mb: int = 16
    open_files: int = 64


@dataclass(frozen=True)
class Result:
    returncode: int | None  # None when killed for time
    stdout: str
    stderr: str
    timed_out: bool


def _own_processes() -> int:
    """Processes (and threads) this user runs now: RLIMIT_NPROC counts them all, not only ours."""
    uid, count = os.getuid(), 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                pass
    return count


def _mounts() -> list[bytes]:
    try:
        with open("/proc/self/mounts", "rb") as f:
            # mount points escape spaces as \040
            return [line.split()[1].decode("unicode_escape").encode() for line in f]
    except OSError:
        return []


def _preexec(limits: Limits, scratch: str):
    nproc = _own_processes() + limits.processes
    mounts = _mounts()

    def setup() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # die with the worker that started us
        # Not allowed everywhere (hardened kernels, some containers): then the rlimits and the
        # runner's audit hook are what holds.
        if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWNS) == 0:
            path = scratch.encode()
            libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None)  # nothing leaks back out
            libc.mount(path, path, None, MS_BIND | MS_REC, None)  # the one writable place
            for point in mounts:
                if point != path:
                    libc.mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY, None)
            os.chdir(scratch)  # onto the writable bind mount (the cwd was set before it existed)
        # CPU: SIGXCPU at the limit (the caller reads it as a timeout), SIGKILL a second later
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
        for which, value in [
            (resource.RLIMIT_AS, limits.memory_mb << 20),
            (resource.RLIMIT_FSIZE, limits.file_mb << 20),
            (resource.RLIMIT_NOFILE, limits.open_files),
            (resource.RLIMIT_NPROC, nproc),
            (resource.RLIMIT_CORE, 0),
        ]:
            try:
                resource.setrlimit(which, (value, value))
            except (ValueError, OSError):
                pass

    return setup


def run_python(program: str, stdin: str = "", limits: Limits = Limits()) -> Result:
    """Run `program` with `stdin`; return its exit status and (size-capped) output."""
    scratch = tempfile.mkdtemp(prefix="distill-sandbox-")
    try:
        with open(os.path.join(scratch, "main.py"), "w") as f:
            f.write(program)
        with open(os.path.join(scratch, "runner.py"), "w") as f:
            f.write(RUNNER)
        out_path, err_path = os.path.join(scratch, ".stdout"), os.path.join(scratch, ".stderr")
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
        with open(out_path, "w") as out, open(err_path, "w") as err:
            proc = subprocess.Popen(
                [sys.executable, "-I", "runner.py"],
                cwd=scratch,
                env=env,
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=err,
                preexec_fn=_preexec(limits, os.path.realpath(scratch)),
                start_new_session=True,
            )
            timed_out = False
            try:
                proc.communicate(stdin.encode(), timeout=limits.wall_seconds)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # whatever it left running
                except (ProcessLookupError, PermissionError):
                    pass
                proc.wait()
        cap = 1 << 20
        with open(out_path, errors="replace") as f:
            stdout = f.read(cap)
        with open(err_path, errors="replace") as f:
            stderr = f.read(cap)
        return Result(None if timed_out else proc.returncode, stdout, stderr, timed_out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
