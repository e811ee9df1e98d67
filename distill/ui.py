"""One console for the whole tool, and a progress display that degrades to log lines."""

from __future__ import annotations

import time
from contextlib import contextmanager

from rich.console import Console

console = Console(highlight=False, soft_wrap=True)  # log lines stay whole in files
err_console = Console(stderr=True, highlight=False)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


@contextmanager
def progress(description: str, total: int, unit: str = "samples"):
    """Yield `advance(count, tokens)`; a live bar on a terminal, nothing extra in a log."""
    start = time.monotonic()
    state = {"done": 0, "tokens": 0}
    if not console.is_terminal:

        def advance(count: int, tokens: int = 0) -> None:
            state["done"] += count
            state["tokens"] += tokens

        yield advance
        return

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total, rate="")

        def advance(count: int, tokens: int = 0) -> None:
            state["tokens"] += tokens
            elapsed = max(time.monotonic() - start, 1e-9)
            bar.update(task, advance=count, rate=f"{state['tokens'] / elapsed:,.0f} tok/s" if tokens else "")

        yield advance
