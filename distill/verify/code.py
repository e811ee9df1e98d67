"""Code: the last fenced Python block of the response, run against the row's tests in the
sandbox (verify/sandbox.py), every test in a fresh process.

`tests` (a JSON string on the row) is one of
- {"inputs": [...], "outputs": [...]}: stdin/stdout pairs, compared token by token
  (APPS / CodeContests style);
- {"asserts": ["assert f(1) == 2", ...]} or {"test_code": "..."}: code run after the program
  (HumanEval / MBPP style).

A stdin/stdout test passes when the program exits 0 and its whole output (up to the sandbox's
file size limit; a larger one is rejected, never cut) matches; an assert test passes only on the
harness's proof that the program and every statement of the tests ran to the end, with asserts
strict about types (verify/harness.py) — an exit status proves nothing.
"""

from __future__ import annotations

import json
import re
import signal

from .registry import Verdict, register
from .sandbox import BWRAP, Limits, run_python

_FENCE = re.compile(r"```(?:python3?|py)?[ \t]*\n(.*?)```", re.S | re.I)


def extract_program(response: str) -> str | None:
    blocks = _FENCE.findall(response or "")
    return blocks[-1] if blocks else None


def parse_tests(tests) -> list[tuple[str | None, str | None, str]] | None:
    """(test code or None, expected stdout or None, stdin) per test case."""
    if tests is None:
        return None
    try:
        spec = json.loads(tests) if isinstance(tests, str) else tests
    except ValueError:
        return None
    if isinstance(spec, dict) and "inputs" in spec and "outputs" in spec:
        return [(None, str(o), str(i)) for i, o in zip(spec["inputs"], spec["outputs"])]
    if isinstance(spec, dict) and "asserts" in spec:
        return [("\n".join(map(str, spec["asserts"])) + "\n", None, "")]
    if isinstance(spec, dict) and "test_code" in spec:
        return [(str(spec["test_code"]) + "\n", None, "")]
    return None


def limits(options: dict) -> Limits:
    seconds = float(options.get("code_timeout", 10.0))
    return Limits(wall_seconds=seconds, cpu_seconds=max(1, int(seconds)),
                  memory_mb=int(options.get("code_memory_mb", 1024)))


@register("code", isolated=True, domains=("code",))
def check_code(row: dict, options: dict) -> Verdict:
    cases = parse_tests(row.get("tests"))
    if not cases:
        return Verdict(False, "no_tests")
    program = extract_program(row.get("response") or "")
    if program is None:
        return Verdict(False, "no_code")
    mode = options.get("code_sandbox", BWRAP)
    for test_code, expected, stdin in cases:
        result = run_python(program, stdin, limits(options), tests=test_code, mode=mode)
        if result.timed_out or result.returncode == -signal.SIGXCPU:  # wall clock or CPU limit
            return Verdict(False, "code_timeout")
        if result.output_too_large:
            return Verdict(False, "output_too_large")
        if test_code is not None and not result.proved:
            return Verdict(False, "tests_failed")
        if result.returncode != 0:
            return Verdict(False, "tests_failed")
        if expected is not None and result.stdout.split() != expected.split():
            return Verdict(False, "wrong_output")
    return Verdict(True)
