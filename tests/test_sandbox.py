"""The code sandbox against programs that try to hurt the machine, and the code verifier."""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest

from distill.verify.code import check_code, extract_program
from distill.verify.sandbox import UNSAFE, Limits, run_python, unavailable

# where bwrap cannot run, as a user who cannot install it: said once, not failed per test (as root,
# `make test` installs it, and these tests must run)
pytestmark = pytest.mark.skipif(unavailable() is not None and os.getuid() != 0,
                                reason=f"no code sandbox here: {unavailable()}")
FAST = Limits(wall_seconds=5, cpu_seconds=5, memory_mb=512)


def test_a_plain_program_runs_and_reads_stdin():
    result = run_python("print(int(input()) * 2)", "21\n", FAST)
    assert (result.returncode, result.stdout.strip(), result.timed_out) == (0, "42", False)


def test_an_endless_loop_is_killed_on_time():
    start = time.monotonic()
    result = run_python("while True:\n    pass\n", "", Limits(wall_seconds=2, cpu_seconds=10))
    assert result.timed_out and result.returncode is None
    assert time.monotonic() - start < 6


def test_a_sleeping_program_is_killed_by_the_wall_clock():
    result = run_python("import time\ntime.sleep(60)\n", "", Limits(wall_seconds=1.5, cpu_seconds=10))
    assert result.timed_out


def test_a_fork_bomb_stops_and_leaves_no_process_behind():
    marker = f"distill-bomb-{uuid.uuid4().hex}"
    program = f"import os\n# {marker}\nwhile True:\n    os.fork()\n"
    result = run_python(program, "", FAST)
    assert result.returncode != 0
    time.sleep(0.5)
    leftovers = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"harness.py" in f.read():
                    leftovers.append(pid)
        except OSError:
            pass
    assert not leftovers


def test_a_shell_started_inside_sees_only_the_sandbox():
    # bwrap is the wall, not an audit hook: a shell may start, but in the sandbox's namespaces
    program = ("import subprocess\nprint(subprocess.run(['sh', '-c', 'ls /; ls /proc | grep -c \"^[0-9]\"; id -u'],"
               " capture_output=True, text=True).stdout)\n")
    result = run_python(program, "", FAST)
    assert result.returncode == 0, result.stderr
    *root, processes, uid = result.stdout.split()
    assert "etc" not in root and "home" not in root and "usr" in root
    assert int(processes) < 10 and uid != "0"  # its own few processes, not root


def test_the_program_runs_without_privileges():
    program = ("print(''.join(l for l in open('/proc/self/status') "
               "if l.startswith(('Uid', 'CapPrm', 'CapEff', 'CapAmb', 'NoNewPrivs'))))")
    status = dict(line.split(":", 1) for line in run_python(program, "", FAST).stdout.strip().splitlines())
    assert {k: v.split() for k, v in status.items()} == {
        "Uid": [status["Uid"].split()[0]] * 4, "CapPrm": ["0000000000000000"], "CapEff": ["0000000000000000"],
        "CapAmb": ["0000000000000000"], "NoNewPrivs": ["1"]}
    assert status["Uid"].split()[0] != "0"


@pytest.mark.skipif(__import__("platform").machine() != "x86_64", reason="the seccomp filter is x86_64 only")
def test_the_seccomp_filter_denies_namespaces_mounts_and_ptrace_but_not_threads_or_fork():
    program = ("import ctypes, os, subprocess, threading\nlibc = ctypes.CDLL(None, use_errno=True)\n"
               "for call, args in [('unshare', (0x10000000,)), ('mount', (b'none', b'/tmp', b'tmpfs', 0, None)),"
               " ('ptrace', (16, 1, 0, 0))]:\n"
               "    print(call, getattr(libc, call)(*args), ctypes.get_errno())\n"
               "t = threading.Thread(target=print, args=('thread',)); t.start(); t.join()\n"
               "pid = os.fork()\nif pid == 0:\n    os._exit(7)\nprint('fork', os.waitpid(pid, 0)[1] >> 8)\n"
               "print(subprocess.run(['echo', 'spawn'], capture_output=True, text=True).stdout.strip())\n")
    result = run_python(program, "", FAST)
    assert result.stdout.split("\n")[:6] == ["unshare -1 1", "mount -1 1", "ptrace -1 1", "thread", "fork 7", "spawn"]


def test_the_unsafe_mode_refuses_subprocesses_from_python():
    result = run_python("import subprocess\nsubprocess.run(['true'])\n", "", FAST, mode=UNSAFE)
    assert result.returncode != 0 and "not allowed" in result.stderr


def test_a_100_gb_allocation_fails_inside_the_sandbox():
    result = run_python("x = bytearray(100 * 1024**3)\nprint('allocated')\n", "", FAST)
    assert result.returncode != 0 and "allocated" not in result.stdout
    assert "MemoryError" in result.stderr


@pytest.mark.parametrize("target", ["/tmp", os.path.expanduser("~"), os.getcwd()])
def test_nothing_is_written_outside_the_sandbox(target):
    path = os.path.join(target, f"distill-escape-{uuid.uuid4().hex}")
    for program in (
        f"open({path!r}, 'w').write('x')\n",
        f"import os\nfd = os.open({path!r}, os.O_CREAT | os.O_WRONLY)\nos.write(fd, b'x')\n",
        f"import pathlib\npathlib.Path({path!r}).write_text('x')\n",
    ):
        result = run_python(program, "", FAST)
        assert result.returncode != 0 or target == "/tmp", program  # /tmp is the sandbox's own tmpfs
        assert not os.path.exists(path), program


def test_writing_inside_the_scratch_dir_works():
    result = run_python("open('out.txt', 'w').write('hi')\nprint(open('out.txt').read())\n", "", FAST)
    assert result.returncode == 0 and result.stdout.strip() == "hi"


def test_sockets_are_refused():
    program = "import socket\ns = socket.create_connection(('1.1.1.1', 53), timeout=2)\nprint('connected')\n"
    result = run_python(program, "", FAST)
    assert result.returncode != 0 and "connected" not in result.stdout


def test_the_environment_is_scrubbed():
    os.environ["DISTILL_TEST_SECRET"] = "hunter2"
    try:
        result = run_python("import os\nprint(sorted(os.environ))\n", "", FAST)
    finally:
        del os.environ["DISTILL_TEST_SECRET"]
    assert result.returncode == 0 and "DISTILL_TEST_SECRET" not in result.stdout


def _row(response: str, tests: dict) -> dict:
    return {"domain": "code", "response": response, "tests": json.dumps(tests)}


OPTIONS = {"code_timeout": 3, "code_memory_mb": 512}
STDIO = {"inputs": ["1 2\n", "10 -3\n"], "outputs": ["3\n", "7\n"]}
ASSERTS = {"asserts": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]}


@pytest.mark.parametrize(
    "response,tests,kept,reason",
    [
        ("```python\na, b = map(int, input().split())\nprint(a + b)\n```", STDIO, True, None),
        ("```python\na, b = map(int, input().split())\nprint(a - b)\n```", STDIO, False, "wrong_output"),
        ("```python\ndef add(a, b):\n    return a + b\n```", ASSERTS, True, None),
        ("```python\ndef add(a, b):\n    return a * b\n```", ASSERTS, False, "tests_failed"),
        ("First try:\n```python\ndef add(a, b):\n    return 0\n```\nFixed:\n```py\ndef add(a, b):\n    return a + b\n```",
         ASSERTS, True, None),
        ("def add(a, b): return a + b", ASSERTS, False, "no_code"),
        ("```python\nwhile True: pass\n```", ASSERTS, False, "code_timeout"),
        ("```python\nimport os\nwhile True: os.fork()\n```", ASSERTS, False, "tests_failed"),
        ("```python\nx = bytearray(100 * 1024**3)\n```", STDIO, False, "tests_failed"),
        ("```python\nimport socket\nsocket.create_connection(('1.1.1.1', 80))\n```", STDIO, False, "tests_failed"),
        ("```python\nopen('/etc/distill-owned', 'w').write('x')\n```", STDIO, False, "tests_failed"),
    ],
)
def test_code_verdicts(response, tests, kept, reason):
    verdict = check_code(_row(response, tests), OPTIONS)
    assert (verdict.ok, verdict.reason) == (kept, reason)
    assert not os.path.exists("/etc/distill-owned")


def test_rows_without_tests_are_rejected():
    assert check_code({"domain": "code", "response": "```python\nprint(1)\n```", "tests": None}, OPTIONS).reason == "no_tests"


def test_extract_program_takes_the_last_block():
    assert extract_program("```python\na\n```\ntext\n```python\nb\n```") == "b\n"
