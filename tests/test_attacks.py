"""The code verifier attacked as a hostile teacher would: every attack is a trace row run through
`distill filter` (workers, pool and sandbox as in production), next to control rows that are
right. Run as root (as CI does), this is also the check that root's exemptions do not leak into
the sandbox. docs/security.md names these tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import run_cli, trace, write_traces

from distill.verify.sandbox import unavailable

pytestmark = pytest.mark.skipif(unavailable() is not None and os.getuid() != 0,
                                reason=f"no code sandbox here: {unavailable()}")

STDIO = "stdio"
SECRET = f"distill-secret-{uuid.uuid4().hex[:8]}"


def _row(name: str, program: str, tests: dict) -> dict:
    row = trace(name, None, f"Here it is.\n```python\n{program}\n```\n", domain="code")
    row["tests"] = json.dumps(tests)
    return row


def _io(output: str, given: str = "") -> dict:
    return {"inputs": [given], "outputs": [output]}


ADD = {"asserts": ["assert add(1, 2) == 3", "assert add(-4, 4) == 0"]}
WRONG_ADD = "def add(a, b):\n    return a - b\n"


class _Listener:
    """A TCP server on 127.0.0.1 that hands out a secret: nothing in the sandbox may reach it."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port, self.connections, self.stop = self.server.getsockname()[1], 0, False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop:
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            self.connections += 1
            conn.sendall(SECRET.encode())
            conn.close()

    def close(self) -> None:
        self.stop = True
        self.thread.join(timeout=2)
        self.server.close()


def _attacks(tmp: Path, port: int, victim: int, marker: str) -> tuple[list[dict], set[str]]:
    """(rows, ids of the controls that must be kept)."""
    private = tmp / "private.txt"
    private.write_text(SECRET)
    private.chmod(0o600)
    outside = tmp / "written-from-the-sandbox"
    first_passwd = Path("/etc/passwd").read_text().splitlines()[0]
    big = "7\n" * 1_000_000  # a right answer of 2 MB
    controls = [
        _row("control_stdio", "a, b = map(int, input().split())\nprint(a + b)", _io("5", "2 3")),
        _row("control_asserts", "def add(a, b):\n    return a + b", ADD),
        _row("control_numpy", "import numpy as np\nprint(int(np.arange(int(input())).sum()))", _io("45", "10")),
        _row("control_scipy", "from scipy.special import comb\nprint(int(comb(10, 3)))", _io("120")),
        _row("control_exit_after_output", "import sys\nprint(42)\nsys.exit(0)", _io("42")),
        _row("control_two_megabytes", "import sys\nsys.stdout.write('7\\n' * 1_000_000)", _io(big)),
        _row("control_test_code", "def add(a, b):\n    return a + b",
             {"test_code": "def check(candidate):\n    assert candidate(2, 2) == 4\n    assert candidate(0, 5) == 5\n\n"
                           "check(add)"}),
        # the competitive-programming idiom: the work in a thread with a larger stack, not joined
        _row("control_thread", "import sys, threading\ndef main():\n    print(sum(map(int, input().split())))\n"
                               "threading.stack_size(1 << 26)\nthreading.Thread(target=main).start()", _io("7", "3 4")),
        _row("control_tolerance", "def area(r):\n    return 3.14159 * r * r",
             {"asserts": ["assert abs(area(1) - 3.14159) < 1e-6"]}),
    ]
    attacks = [
        # escapes: a shell, libc's system() through ctypes, writes to the host
        _row("shell_writes_host", f"import os\nos.system('echo x > {outside} && cat {outside}')", _io("x")),
        _row("ctypes_system", "import ctypes\nlibc = ctypes.CDLL(None)\n"
                              f"libc.system(b'echo x > {outside}')\nprint(open({str(outside)!r}).read())", _io("x")),
        _row("writes_host_path", f"print(open({str(outside)!r}, 'w').write('x'))", _io("1")),
        # reads: files, another user's 0600 file, the filter's environment and ancestors, the traces
        _row("reads_etc_passwd", "print(open('/etc/passwd').readline().strip())", _io(first_passwd)),
        _row("reads_private_file", f"print(open({str(private)!r}).read())", _io(SECRET)),
        _row("reads_filter_environment", "import os\nprint(os.environ.get('DISTILL_ATTACK_SECRET'))", _io(SECRET)),
        _row("reads_parent_environment", "import os\nfor p in os.listdir('/proc'):\n"
                                         "    try:\n        e = open(f'/proc/{p}/environ', 'rb').read()\n"
                                         "    except OSError:\n        continue\n"
                                         f"    if {SECRET!r}.encode() in e:\n        print({SECRET!r}); break",
             _io(SECRET)),
        _row("reads_expected_from_traces", "import os, re\nfound = set()\nfor p in os.listdir('/proc'):\n"
                                           "    try:\n        found.update(open(f'/proc/{p}/cmdline', 'rb').read().split(b'\\0'))\n"
                                           "    except OSError:\n        pass\n"
                                           "for arg in (a for a in found if b'traces' in a):\n    for root, _, files in os.walk(arg.decode(errors='ignore') or '/nonexistent'):\n"
                                           "        for f in files:\n            m = re.search(rb'answer-[0-9a-f]{12}', open(os.path.join(root, f), 'rb').read())\n"
                                           "            if m:\n                print(m.group().decode()); raise SystemExit",
             _io(f"answer-{uuid.uuid4().hex[:12]}")),
        # network
        _row("reaches_localhost", f"import socket\nprint(socket.create_connection(('127.0.0.1', {port}), 2).recv(100).decode())",
             _io(SECRET)),
        # processes: kill or stop the filter, an unrelated process, outlive the verdict
        _row("kills_parent", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nprint('ok')", _io("no")),
        _row("kills_everything", "import os, signal\nos.kill(-1, signal.SIGKILL)", _io("no")),
        _row("kills_victim", f"import os, signal\nos.kill({victim}, signal.SIGKILL)\nprint('ok')", _io("ok")),
        _row("stops_everything", "import os, signal\nfor p in os.listdir('/proc'):\n    if p.isdigit() and int(p) != os.getpid():\n"
                                 "        try:\n            os.kill(int(p), signal.SIGSTOP)\n        except OSError:\n            pass\n"
                                 "os.kill(os.getpid(), signal.SIGSTOP)", _io("no")),
        _row("outlives_verdict", f"import subprocess\nsubprocess.Popen(['sleep', '{marker}'], start_new_session=True)\nprint('ok')",
             _io("not this")),
        # a namespace of its own (as root the sandbox has no user namespace to forbid that)
        _row("new_namespaces", "import ctypes\nprint(ctypes.CDLL(None).unshare(0x10000000 | 0x20000))", _io("0")),
        # limits that root would be exempt from, and the disk
        _row("three_hundred_processes", "import os, time\nn = 0\ntry:\n    for _ in range(300):\n"
                                        "        if os.fork() == 0:\n            time.sleep(5); os._exit(0)\n        n += 1\n"
                                        "except OSError:\n    pass\nprint(n)", _io("300")),
        _row("fills_disk", "n = 0\ntry:\n    for i in range(40):\n        with open(f'/tmp/f{i}', 'wb') as f:\n"
                           "            f.write(b'x' * (15 << 20))\n        n += 15\nexcept OSError:\n    pass\nprint(n)",
             _io("600")),
        # forged passes
        _row("os_exit_0", WRONG_ADD + "import os\nos._exit(0)", ADD),
        _row("sys_exit_0", WRONG_ADD + "import sys\nsys.exit(0)", ADD),
        _row("raise_system_exit", WRONG_ADD + "raise SystemExit", ADD),
        _row("atexit_exit_0", WRONG_ADD + "import atexit, os\natexit.register(lambda: os._exit(0))", ADD),
        _row("excepthook_exit_0", WRONG_ADD + "import os, sys\nsys.excepthook = lambda *a: os._exit(0)", ADD),
        _row("eq_always_true", "class Yes:\n    def __eq__(self, other):\n        return True\n    __hash__ = None\n"
                               "def add(a, b):\n    return Yes()", ADD),
        _row("dunders_agree", "class Z(float):\n    def __sub__(self, o):\n        return 0.0\n"
                              "def area(r):\n    return Z(0)", {"asserts": ["assert abs(area(1) - 3.14159) < 1e-6"]}),
        _row("rebinds_builtins", "import builtins\nbuiltins.abs = lambda x: 0\ndef area(r):\n    return 0",
             {"asserts": ["assert abs(area(1) - 3.14159) < 1e-6"]}),
        _row("right_then_garbage", "print(5)\nprint('garbage ' * 10)", _io("5")),
        _row("huge_output", "import sys\nsys.stdout.write('5' + ' ' * (20 << 20))", _io("5")),
    ]
    return controls + attacks, {r["id"] for r in controls}


def _leftovers(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            pass
    return found


def test_attacks_through_distill_filter_are_contained(tmp_path):
    listener = _Listener()
    victim = subprocess.Popen(["sleep", "120"])
    marker = f"{time.time_ns() % 10**9}.5"  # a sleep length nobody else uses
    try:
        rows, controls = _attacks(tmp_path, listener.port, victim.pid, marker)
        expected_hidden = [r for r in rows if r["id"] == "reads_expected_from_traces"][0]
        assert "answer-" in expected_hidden["tests"]  # the trace shard holds what it would look for
        traces = write_traces(tmp_path / "traces", [rows[: len(rows) // 2], rows[len(rows) // 2:]])
        start = time.monotonic()
        # 8 s a test: on two busy cores (load 8) importing numpy alone took over a second
        result = run_cli("filter", traces, "--out", tmp_path / "run", "--set", "filter.verifiers=[code]",
                         "--set", "filter.code_timeout=8", "--set", "filter.workers=2",
                         env={"DISTILL_ATTACK_SECRET": SECRET}, timeout=300)
        elapsed = time.monotonic() - start
        # the filter was neither killed nor frozen, and finished in bounded time
        assert result.returncode == 0, result.stderr
        assert elapsed < 240
        stage = tmp_path / "run" / "filtered"
        kept = {r["id"] for r in pq.ParquetDataset(stage / "data").read().to_pylist()}
        rejected = {r["id"]: r["reject_reason"] for r in pq.ParquetDataset(stage / "rejected").read().to_pylist()}
        assert kept == controls, (kept ^ controls, rejected)
        assert set(rejected) == {r["id"] for r in rows} - controls
        assert rejected["huge_output"] == "output_too_large"
        assert rejected["right_then_garbage"] == "wrong_output"
        # nothing written outside, nothing reached, nothing outside touched, nothing left running
        assert not (tmp_path / "written-from-the-sandbox").exists()
        assert listener.connections == 0
        assert victim.poll() is None
        time.sleep(0.5)
        assert _leftovers(marker) == []
        assert _leftovers("harness.py") == []
    finally:
        listener.close()
        victim.kill()
        victim.wait()
        for pid in _leftovers(marker):
            os.kill(pid, signal.SIGKILL)


def test_code_rows_are_refused_in_one_line_without_bubblewrap(tmp_path):
    traces = write_traces(tmp_path / "traces", [[_row("control_asserts", "def add(a, b):\n    return a + b", ADD)]])
    no_tools = tmp_path / "bin"
    no_tools.mkdir()
    result = run_cli("filter", traces, "--out", tmp_path / "run", "--set", "filter.verifiers=[code]",
                     env={"PATH": str(no_tools)})
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "bubblewrap (bwrap) is not installed: apt-get install bubblewrap" in result.stderr
    assert "filter.code_sandbox=unsafe-no-isolation" in result.stderr
    assert not (tmp_path / "run" / "filtered").exists()
    # the recipe may opt out, by a name that says what it does
    result = run_cli("filter", traces, "--out", tmp_path / "run", "--set", "filter.verifiers=[code]",
                     "--set", "filter.code_sandbox=unsafe-no-isolation", env={"PATH": str(no_tools)})
    assert result.returncode == 0, result.stderr
    assert pq.read_table(tmp_path / "run" / "filtered" / "data").num_rows == 1


def test_a_bwrap_that_cannot_make_namespaces_is_one_line(tmp_path):
    traces = write_traces(tmp_path / "traces", [[_row("control_asserts", "def add(a, b):\n    return a + b", ADD)]])
    tools = tmp_path / "bin"
    tools.mkdir()
    fake = tools / "bwrap"  # what bwrap says in a container that allows no user namespaces
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    result = run_cli("filter", traces, "--out", tmp_path / "run", "--set", "filter.verifiers=[code]",
                     env={"PATH": f"{tools}:/usr/bin:/bin"})
    line = result.stderr.strip()
    assert result.returncode == 2 and len(line.splitlines()) == 1, result.stderr
    assert "bwrap cannot make a sandbox here (bwrap: No permissions to create new namespace)" in line
    assert "docs/security.md" in line and not (tmp_path / "run" / "filtered").exists()


def test_distill_run_refuses_code_data_without_a_sandbox_before_generating(tmp_path):
    prompts = tmp_path / "code.jsonl"
    prompts.write_text(json.dumps({"problem": "Write add(a, b).", "answer": None,
                                   "tests": json.dumps(ADD)}) + "\n")
    card = tmp_path / "code-card.yaml"
    card.write_text(f"name: code-card\ndomain: code\npath: {prompts}\n")
    no_tools = tmp_path / "bin"
    no_tools.mkdir()
    result = run_cli("run", "--recipe", "quickstart", "--out", tmp_path / "run", "--set", f"data.0.card={card}",
                     "--set", "filter.verifiers=[code]", env={"PATH": str(no_tools)})
    line = result.stderr.strip()
    assert result.returncode == 2 and len(line.splitlines()) == 1, result.stderr
    assert line.startswith("error: filter: the code rows of dataset card 'code-card' to run in a sandbox, but "
                           "bubblewrap (bwrap) is not installed")
    assert not (tmp_path / "run" / "traces").exists()
