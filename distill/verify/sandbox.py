"""Run untrusted Python in a kernel sandbox made by bubblewrap (`bwrap`, what Flatpak uses).

Each run gets a fresh sandbox (docs/security.md says what it guarantees and what not):
- new PID, network, mount, IPC and UTS namespaces (and a user namespace when distill is not
  root); when the sandbox's PID 1 exits, everything the program started dies with it, and
  `--die-with-parent` ends it with the verifier worker that started it;
- an unprivileged uid with no capabilities: as root, bwrap runs privileged and the harness drops
  to a uid of this sandbox's own (so RLIMIT_NPROC counts only its processes); otherwise bwrap's
  user namespace maps uid 65534 to the caller;
- a file system of the Python runtime only (/usr, the interpreter's prefixes), read-only; a
  fresh /proc of its own PID namespace, a minimal /dev, and a size-limited tmpfs at /tmp as the
  only writable place; no /etc, no home, no project, no run folder;
- resource limits set inside (CPU seconds, address space, processes, file size, open files) and
  a wall-clock limit that kills the sandbox; a scrubbed environment, `python -I`;
- a seccomp filter (verify/seccomp.py, x86_64) that denies new namespaces, mounts, ptrace,
  BPF, io_uring and other calls no test program needs.

The harness (verify/harness.py) reports success with a token the program never sees through
its own channel: a test passes on that proof, not on an exit status.

`unsafe-no-isolation` (filter.code_sandbox) runs the harness as a plain child process with the
resource limits and an audit hook only: for machines without bwrap, where the recipe says so.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

BWRAP, UNSAFE = "bwrap", "unsafe-no-isolation"
MODES = (BWRAP, UNSAFE)
HARNESS = Path(__file__).with_name("harness.py")
INSTALL = "apt-get install bubblewrap (Debian/Ubuntu; dnf install bubblewrap on Fedora)"
PR_SET_PDEATHSIG = 1
UID_BASE = 1 << 30  # as root, sandbox uids are this plus the verifier worker's pid: no user has them


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 10.0
    cpu_seconds: int = 10
    memory_mb: int = 1024
    processes: int = 16  # new processes and threads the program may start
    file_mb: int = 16  # largest file, stdout included: a larger output is rejected, not cut
    disk_mb: int = 64  # all files in the sandbox's /tmp together
    open_files: int = 64


@dataclass(frozen=True)
class Result:
    returncode: int | None  # None when killed for time; -N when killed by signal N
    stdout: str
    stderr: str
    timed_out: bool
    proved: bool = False  # the harness ran the program (and its tests) to the end
    output_too_large: bool = False


def _runtime_binds() -> list[str]:
    """The interpreter and its packages, read-only, at the paths they have here."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    prefixes = {os.path.abspath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    made = {Path("/tmp")}  # the sandbox's own tmpfs, mounted before these binds
    for prefix in sorted(prefixes):
        if prefix != "/usr" and not prefix.startswith("/usr/"):
            # bwrap makes the folders above a mount point 0700: readable for the uid it runs
            # the program as only when made 0755 first
            for parent in reversed(Path(prefix).parents[:-1]):
                if parent not in made:
                    args += ["--perms", "0755", "--dir", str(parent)]
                    made.add(parent)
            args += ["--ro-bind", prefix, prefix]
    return args


def _seccomp_fd() -> int | None:
    """A pipe holding the compiled seccomp filter (verify/seccomp.py), for bwrap --seccomp."""
    from .seccomp import program

    code = program()
    if code is None:
        return None
    read, write = os.pipe()
    os.write(write, code)  # a few hundred bytes: the pipe holds them
    os.close(write)
    return read


def _bwrap(src: str, limits: Limits, config: dict, fds: list[int]) -> list[str]:
    args = [shutil.which("bwrap") or "bwrap", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--hostname", "sandbox", "--die-with-parent", "--new-session", "--clearenv"]
    if os.getuid() == 0:
        # bwrap as root maps the sandbox's uid to root outside, which RLIMIT_NPROC exempts: run
        # it privileged instead, keeping only the right to change uid, which the harness uses
        # once, first thing, to become a uid nobody else has (a worker runs one sandbox at a
        # time, and no two live workers share a pid)
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        config["uid"] = UID_BASE + os.getpid()
    else:
        args += ["--unshare-user", "--uid", "65534", "--gid", "65534", "--disable-userns"]
    # the tmpfs first: an interpreter or virtual environment that lives under /tmp (a CI checkout)
    # is then bound on top of it instead of being hidden by it
    args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(limits.disk_mb << 20),
             "--tmpfs", "/tmp"]
    args += _runtime_binds()
    args += ["--ro-bind", src, "/sandbox", "--ro-bind", str(HARNESS), "/sandbox-harness.py", "--chdir", "/tmp"]
    for name, value in _ENV.items():
        args += ["--setenv", name, value]
    seccomp = _seccomp_fd()
    if seccomp is not None:
        fds.append(seccomp)
        args += ["--seccomp", str(seccomp)]
    return args + ["--", sys.executable, "-I", "/sandbox-harness.py", "/sandbox", json.dumps(config)]


_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp", "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1"}


def _die_with_parent() -> None:
    import ctypes

    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def run_python(program: str, stdin: str = "", limits: Limits = Limits(), tests: str | None = None,
               mode: str = BWRAP) -> Result:
    """Run `program` with `stdin`, then `tests` (Python run after it, in its namespace)."""
    job = tempfile.mkdtemp(prefix="distill-sandbox-")
    try:
        src, work = os.path.join(job, "src"), os.path.join(job, "work")
        os.mkdir(src)
        os.mkdir(work)
        Path(src, "main.py").write_text(program)
        if tests is not None:
            Path(src, "tests.py").write_text(tests)
        token = secrets.token_hex(16).encode()
        token_in, token_out = os.pipe()
        os.write(token_out, token)
        os.close(token_out)
        proof = open(os.path.join(job, "proof"), "wb")
        config = {"cpu_seconds": limits.cpu_seconds, "memory_mb": limits.memory_mb, "file_mb": limits.file_mb,
                  "open_files": limits.open_files, "processes": limits.processes, "token_fd": token_in,
                  "proof_fd": proof.fileno(), "prefix": f"_distill_{secrets.token_hex(8)}_", "audit": mode == UNSAFE}
        fds = [token_in, proof.fileno()]
        if mode == BWRAP:
            command, extra = _bwrap(src, limits, config, fds), {}
        else:
            command = [sys.executable, "-I", str(HARNESS), src, json.dumps(config)]
            extra = {"cwd": work, "env": {**_ENV, "HOME": work}, "preexec_fn": _die_with_parent,
                     "start_new_session": True}
        out_path, err_path = os.path.join(job, "stdout"), os.path.join(job, "stderr")
        with open(out_path, "wb") as out, open(err_path, "wb") as err, proof:
            proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=out, stderr=err,
                                    pass_fds=fds, **({"env": {}} | extra))
            for fd in fds[:1] + fds[2:]:  # the token's and the filter's pipes: the child has them
                os.close(fd)
            timed_out = False
            try:
                proc.communicate(stdin.encode(errors="replace"), timeout=limits.wall_seconds)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill(proc, mode)
        returncode = proc.returncode
        if mode == BWRAP and returncode > 128:  # bwrap's PID 1 reports a signal as 128 + N
            returncode = -(returncode - 128)
        cap = limits.file_mb << 20
        too_large = os.path.getsize(out_path) >= cap
        stdout = Path(out_path).read_bytes().decode(errors="replace")
        with open(err_path, "rb") as f:
            stderr = f.read(1 << 16).decode(errors="replace")
        proved = Path(job, "proof").read_bytes() == token
        return Result(None if timed_out else returncode, stdout, stderr, timed_out, proved, too_large)
    finally:
        shutil.rmtree(job, ignore_errors=True)


def _kill(proc: subprocess.Popen, mode: str) -> None:
    """Whatever is left: bwrap's death takes its whole PID namespace along (--die-with-parent);
    without bwrap, the process group the program was started in."""
    try:
        if mode == BWRAP:
            proc.kill()
        else:
            os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


@lru_cache(maxsize=4)
def unavailable(mode: str = BWRAP) -> str | None:
    """Why code cannot be run in `mode` here (one line naming the fix), or None when it can."""
    if mode == UNSAFE:
        return None
    if shutil.which("bwrap") is None:
        return f"bubblewrap (bwrap) is not installed: {INSTALL}"
    result = run_python("print('ok')", limits=Limits(wall_seconds=30))
    if result.proved and result.stdout.strip() == "ok":
        return None
    said = next((line for line in result.stderr.splitlines() if line.startswith("bwrap:")), None)
    return (f"bwrap cannot make a sandbox here ({said or result.stderr.strip()[:200] or 'no output'}); "
            f"it needs user namespaces or root (see docs/security.md)")
