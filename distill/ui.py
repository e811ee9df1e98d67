"""One console for the whole tool, and the live generation progress (or its log-line form)."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from contextlib import contextmanager

from rich.console import Console

console = Console(highlight=False, soft_wrap=True)  # log lines stay whole in files
err_console = Console(stderr=True, highlight=False)


LINE = 80  # progress lines fit a classic terminal; the most useful fields come first


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def duration(seconds: float) -> str:
    """Seconds as 1m05s, or 2h03m past an hour."""
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def time_left(elapsed: float, done: float, left: float) -> str:
    """The time `left` more units take at the pace of the `done` ones so far ("?" before any)."""
    return duration(elapsed / done * max(left, 0)) if done > 0 else "?"


class Countdown:
    """An ETA over units of about equal work (files, steps): the time per unit so far."""

    def __init__(self, total: int, unit: str) -> None:
        self.total, self.unit, self.done, self.start = total, unit, 0, time.monotonic()

    def tick(self) -> str:
        """One more unit done: "ETA 1m05s · 3/8 files"."""
        self.done += 1
        left = time_left(time.monotonic() - self.start, self.done, self.total - self.done)
        return f"ETA {left} · {self.done}/{self.total} {self.unit}"


class GenProgress:
    """Counters that backends update as work goes (from any thread).

    Tokens count while they are generated: a backend reports an unfinished sample's length with
    `partial(key, tokens)` (vLLM each engine step, a streaming client each chunk, transformers
    each decoding step) and the finished sample with `sample(..., key=key)`, so a long trace
    shows speed and an ETA before the first sample of a shard finishes."""

    def __init__(self, prompts_total: int, samples_total: int, max_tokens: int | None = None) -> None:
        self.prompts_total, self.samples_total, self.max_tokens = prompts_total, samples_total, max_tokens
        self.prompts = self.samples = self.tokens = self.truncated = self.errors = 0
        self.prompt_tokens = self.restored_samples = 0
        self.cost = 0.0  # this run's spend; `spent_before` is what earlier runs spent
        self.spent_before, self.budget, self.priced = 0.0, None, False
        self.rate: dict = {}  # a served teacher's pacing: budgets, lowest concurrency, seconds waited
        self.retries: Counter = Counter()
        self.start = time.monotonic()
        self._live: dict = {}  # key -> tokens so far of a sample still being generated
        self._lock = threading.Lock()
        self._drained: tuple[Counter, int] = (Counter(), 0)

    def partial(self, key, tokens: int, running: int = 1) -> None:
        """Unfinished samples (one, or `running` of them) have `tokens` so far; replaces what
        was said for `key` before."""
        with self._lock:
            self._live[key] = (tokens, running)

    def discard(self, key) -> None:
        """An attempt that failed: its partial tokens no longer count (a retry starts again)."""
        with self._lock:
            self._live.pop(key, None)

    def sample(self, tokens: int, truncated: bool = False, key=None) -> None:
        with self._lock:
            if key is not None:
                self._live.pop(key, None)
            self.samples += 1
            self.tokens += tokens
            self.truncated += int(truncated)

    def restored(self, count: int) -> None:
        """Samples an earlier run paid for, read back from a journal."""
        with self._lock:
            self.samples += count
            self.restored_samples += count

    def paid(self, prompt_tokens: int, cost: float | None) -> None:
        with self._lock:
            self.prompt_tokens += prompt_tokens
            if cost is not None:
                self.cost += cost

    def set_budget(self, budget: float | None, spent_before: float, priced: bool) -> None:
        self.budget, self.spent_before, self.priced = budget, spent_before, priced

    def pacing(self, **values) -> None:
        """The backend's rate figures (rpm, tpm, concurrency now and lowest, seconds waited)."""
        with self._lock:
            self.rate.update(values)

    def over_budget(self) -> bool:
        return self.budget is not None and self.spent_before + self.cost >= self.budget

    def spent_line(self) -> str:
        text = f"${self.spent_before + self.cost:,.4f}"
        return text + (f" of ${self.budget:,.2f}" if self.budget is not None else "")

    def prompts_done(self, count: int) -> None:
        with self._lock:
            self.prompts += count

    def retry(self, reason: str) -> None:
        with self._lock:
            self.retries[reason] += 1

    def error(self) -> None:
        with self._lock:
            self.errors += 1

    def drain(self) -> tuple[Counter, int]:
        """Retries and errors counted since the last drain (to add to a folder's running totals)."""
        with self._lock:
            retries, errors = self.retries - self._drained[0], self.errors - self._drained[1]
            self._drained = (Counter(self.retries), self.errors)
        return retries, errors

    def _running(self) -> tuple[int, int]:
        """Tokens so far of the unfinished samples, and how many they are."""
        with self._lock:
            return (sum(tokens for tokens, _ in self._live.values()),
                    sum(count for _, count in self._live.values()))

    def eta(self) -> str:
        """Time left from the token rate. A sample not started is expected to be as long as the
        finished ones on average, or as the running ones already are when that is longer (short
        answers finish first); a running one to reach that mean, and at least to double what it
        has (without that, running samples past the mean would read as done), within max_tokens.
        Before any sample finishes, `max_tokens` bounds it: "ETA ≤…"."""
        live, running = self._running()
        with self._lock:
            finished = self.samples - self.restored_samples
            left = self.samples_total - self.samples
            tokens = self.tokens
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = (tokens + live) / elapsed
        if left <= 0:
            return "0m00s"
        if rate <= 0 or not (finished or self.max_tokens):
            return "?"
        if not finished:
            return "≤" + duration(max(left * self.max_tokens - live, 0) / rate)
        mean = tokens / finished
        queued = max(left - running, 0) * max(mean, live / running if running else 0.0)
        to_come = max(running * mean - live, live)
        if self.max_tokens:
            to_come = min(to_come, running * self.max_tokens - live)
        return duration((queued + max(to_come, 0)) / rate)

    def parts(self) -> list[str]:
        """The line's fields, most important first (a narrow line keeps the first ones)."""
        elapsed = max(time.monotonic() - self.start, 1e-9)
        generated = self.tokens + self._running()[0]
        parts = [f"ETA {self.eta()}", f"{self.samples}/{self.samples_total} samples"]
        if self.priced:  # money before speed
            parts.append(f"cost {self.spent_line()}")
        parts += [f"{generated / elapsed:,.0f} tok/s", f"{duration(elapsed)} elapsed"]
        if self.truncated:
            parts.append(f"truncated {100 * self.truncated / self.samples:.1f}%")
        if self.errors:
            parts.append(f"errors {self.errors}")
        if self.retries:
            parts.append("retries " + ", ".join(f"{k}×{v}" for k, v in sorted(self.retries.items())))
        if self.rate:
            parts.append(_pacing(self.rate))
        parts.append(f"{self.prompts}/{self.prompts_total} prompts")
        if self.restored_samples:
            parts.append(f"{self.restored_samples} journaled before")
        if self.prompt_tokens:
            parts.append(f"tokens in {self.prompt_tokens:,} out {self.tokens:,}")
        return parts

    def line(self, width: int | None = None) -> str:
        """The fields joined; with `width`, only as many leading fields as fit in it."""
        parts = self.parts()
        return " · ".join(parts) if width is None else _wrap(parts, width, width)[0]

    def report(self, head: str = "  ") -> str:
        """`head`, then the fields, in lines of at most LINE columns: on a terminal one line (the
        live line below shows the rest); in a log every field, the rest indented below."""
        lines = _wrap(self.parts(), LINE - len(head), LINE - 6)
        if console.is_terminal:
            return head + lines[0]
        return "\n".join([head + lines[0]] + ["      " + line for line in lines[1:]])


def _wrap(parts: list[str], first: int, rest: int) -> list[str]:
    """Fields joined with " · " into lines of at most `first`, then `rest`, characters; a field
    never split, the first line gets the leading fields."""
    lines, width = [parts[0]], first
    for part in parts[1:]:
        if len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " · " + part
        else:
            lines.append(part)
            width = rest
    return lines


def _pacing(rate: dict) -> str:
    """"rpm ≤600 · tpm ≤1,000,000 · concurrency 32/64 · waited 12s", whichever apply."""
    parts = [f"{k} ≤{rate[k]:,.0f}" for k in ("rpm", "tpm") if rate.get(k)]
    if rate.get("concurrency", 0) < rate.get("max_concurrency", 0):
        parts.append(f"concurrency {rate['concurrency']}/{rate['max_concurrency']}")
    if rate.get("waited_s", 0) >= 1:
        parts.append(f"waited {rate['waited_s']:,.0f}s")
    return " · ".join(parts) or f"concurrency {rate.get('concurrency', 0)}"


@contextmanager
def live_progress(prompts_total: int, samples_total: int, max_tokens: int | None = None):
    """Yield a GenProgress: a live line on a terminal, otherwise a log line every 30 s (or every
    $DISTILL_PROGRESS_EVERY seconds)."""
    log_every = float(os.environ.get("DISTILL_PROGRESS_EVERY") or 30)
    progress = GenProgress(prompts_total, samples_total, max_tokens)
    if console.is_terminal:
        from rich.live import Live
        from rich.text import Text

        with Live(get_renderable=lambda: Text("  " + progress.line(min(console.width, 80) - 3)), console=console, refresh_per_second=2, transient=True):
            yield progress
        return
    stop = threading.Event()

    def log() -> None:
        while not stop.wait(log_every):
            console.print(progress.report())

    thread = threading.Thread(target=log, daemon=True)
    thread.start()
    try:
        yield progress
    finally:
        stop.set()
