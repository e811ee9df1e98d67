"""Seconds per sandboxed test run: bwrap against the unisolated mode, same programs, same script.

    python bench/sandbox_start.py [RUNS]
"""

import statistics
import sys
import time

from distill.verify.sandbox import BWRAP, UNSAFE, run_python

PROGRAMS = {"print": "print(1)", "numpy": "import numpy\nprint(numpy.arange(3).sum())"}


def main(runs: int) -> None:
    for name, program in PROGRAMS.items():
        # interleaved: the machine's noise hits both; numpy needs ctypes, which the unisolated
        # mode's audit hook refuses
        for mode in (UNSAFE, BWRAP, UNSAFE, BWRAP) if name == "print" else (BWRAP, BWRAP):
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                result = run_python(program, mode=mode)
                times.append(time.perf_counter() - start)
                assert result.returncode == 0 and result.proved, result.stderr
            print(f"{name:6} {mode:20} median {1000 * statistics.median(times):6.1f} ms  "
                  f"p90 {1000 * sorted(times)[int(0.9 * runs)]:6.1f} ms  ({runs} runs)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
