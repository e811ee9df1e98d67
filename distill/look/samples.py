"""`distill inspect DIR --sample N`: single traces in the terminal, the reasoning (the `<think>`
part) and the final answer in separate panels, with the verdict where one is known.

Which rows: N drawn by a seeded generator over the row positions (counted from the Parquet
footers, without reading a row), so the same seed shows the same rows; then only the shards
that hold a drawn row are read, one at a time.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from .. import shards
from ..errors import ConfigError, UserError
from .inspect import REJECTED, locate
from ..prompting import split_think

SOURCES = ("kept", "rejected", "traces", "eval")
COLUMNS = ("id", "problem", "answer", "source", "sample_idx", "completion", "finish_reason", "completion_tokens",
           "extracted_answer", "verifier", "pass_rate", "reject_reason", "correct", "reason")
ELIDE = 3000  # characters of reasoning shown without --full: its start and its end


def _folders(stages: dict[str, Path], source: str) -> list[Path]:
    """The Parquet files of one source of rows."""
    if source in ("kept", "rejected"):
        stage = stages.get("filtered")
        folder = stage and stage / (shards.DATA if source == "kept" else REJECTED)
        return shards.list_files(folder) if folder and folder.is_dir() else []
    if source == "traces":
        stage = stages.get("traces")
        if stage is None:
            return []
        folder = shards.data_folder(stage)
        return shards.list_files(folder)
    stage = stages.get("eval")
    if stage is None:
        return []
    # scored samples carry the verdict; a benchmark not scored yet shows its bare samples
    files = []
    for bench in sorted(p for p in stage.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        scored = bench / "scored.parquet"
        files += [scored] if scored.is_file() else shards.list_files(bench / shards.DATA) if (bench / shards.DATA).is_dir() else []
    return files


def pick(path: Path, n: int, source: str | None = None, seed: int = 0) -> tuple[str, list[dict]]:
    """`n` rows of `source` (default: kept rows when the filter wrote some, else traces, else
    eval samples), drawn with `seed`; (the source used, the rows)."""
    if n < 1:
        raise ConfigError(f"--sample must be at least 1, got {n}")
    if source is not None and source not in SOURCES:
        raise ConfigError(f"--from must be one of {', '.join(SOURCES)}, got '{source}'")
    stages = locate(path)
    if source is None:
        source = next((s for s in SOURCES if s != "rejected" and _folders(stages, s)), "kept")
    files = _folders(stages, source)
    sizes = [shards.open_file(f).metadata.num_rows for f in files]
    total = sum(sizes)
    if not total:
        where = {"kept": "filtered/data", "rejected": "filtered/rejected", "traces": "traces", "eval": "eval"}[source]
        raise UserError(f"{path}: no {source} rows to sample (nothing in {where})")
    chosen = sorted(random.Random(seed).sample(range(total), min(n, total)))
    rows, start = [], 0
    for f, size in zip(files, sizes):
        here = [i - start for i in chosen if start <= i < start + size]
        start += size
        if here:
            names = shards.open_file(f).schema_arrow.names
            table = shards.read_file(f, [c for c in COLUMNS if c in names]).take(here)
            rows += [{**r, "_file": str(f), "_of": total} for r in table.to_pylist()]
    if source == "traces":
        _add_filter_verdicts(stages, rows)
    return source, rows


def _add_filter_verdicts(stages: dict[str, Path], rows: list[dict]) -> None:
    """Sampled traces get the filter's verdict, when this run's filter judged them: kept, or
    rejected and why (key columns only are read, a shard at a time)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    want = {(r["id"], r["sample_idx"]): r for r in rows}
    ids = pa.array(sorted({k[0] for k in want}))
    for kept, files in ((True, _folders(stages, "kept")), (False, _folders(stages, "rejected"))):
        for f in files:
            names = shards.open_file(f).schema_arrow.names
            cols = [c for c in ("id", "sample_idx", "reject_reason", "extracted_answer", "verifier") if c in names]
            table = shards.read_file(f, cols)
            table = table.filter(pc.is_in(table.column("id"), value_set=ids.cast(table.column("id").type)))
            for hit in table.to_pylist():
                row = want.get((hit["id"], hit.get("sample_idx")))
                if row is not None:
                    row.update({k: v for k, v in hit.items() if k not in ("id", "sample_idx")}, _kept=kept)


def _elide(text: str, full: bool) -> str:
    if full or len(text) <= ELIDE:
        return text
    half = ELIDE // 2
    return f"{text[:half]}\n\n… {len(text) - 2 * half:,} characters left out (--full shows all) …\n\n{text[-half:]}"


def _verdict(source: str, row: dict) -> str:
    """The verdict line (rich markup; the row's own values escaped: answers hold [brackets])."""
    from rich.markup import escape

    extracted = row.get("extracted_answer")
    got = f" · answer read: {escape(extracted)}" if extracted is not None else ""
    verifiers = escape(row.get("verifier") or "-")
    if source == "kept":
        rate = row.get("pass_rate")
        rate = f" · problem pass rate {100 * rate:.0f}%" if rate is not None else ""
        return f"[green]kept[/]{got} · verifiers: {verifiers}{rate}"
    if source == "rejected":
        return f"[red]rejected: {escape(str(row.get('reject_reason')))}[/]{got} · verifiers: {verifiers}"
    if "_kept" in row:  # a trace the filter judged
        return _verdict("kept" if row["_kept"] else "rejected", row)
    if row.get("correct") is not None:
        return ("[green]correct[/]" if row["correct"] else f"[red]wrong: {escape(str(row.get('reason')))}[/]") + got
    return "not verified (run `distill filter` for a verdict)"


# control characters (ESC starts terminal commands: clear screen, colours, window titles) and
# bidirectional overrides (text that reads other than it is): shown as escapes, never sent raw
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256
                            else f"\\u{ord(m.group()):04x}", text)


def print_samples(source: str, rows: list[dict], full: bool = False) -> None:
    """Each row: problem, gold answer, then the reasoning and the answer in separate panels."""
    from rich.markup import escape
    from rich.panel import Panel
    from rich.rule import Rule
    from rich.text import Text

    from ..ui import console, plural

    def show(renderable) -> None:
        console.print(renderable, soft_wrap=False)  # the shared console keeps lines whole; a panel must wrap

    for i, row in enumerate(rows, 1):
        row = {k: printable(v) if isinstance(v, str) else v for k, v in row.items()}
        # split as the filter splits, so the panels show exactly what it judged
        reasoning, answer, state = split_think(row.get("completion") or "")
        tokens = row.get("completion_tokens")
        console.print(Rule(escape(f"{source} sample {i} of {len(rows)} · {row.get('id')} #{row.get('sample_idx')}")))
        console.print(escape(f"source {row.get('source')} · {tokens if tokens is not None else '?'} completion tokens · "
                             f"finish {row.get('finish_reason')}"), style="dim")
        # Text, not markup: traces are full of [brackets] that rich would read as styles
        show(Panel(Text(row.get("problem") or ""), title="problem", title_align="left"))
        console.print(Text.assemble(("gold answer: ", "bold"), str(row.get("answer"))))
        if reasoning is None:
            console.print("[dim](no <think> block: the whole completion is the answer)")
        else:
            title = "reasoning (<think>, never closed: there is no answer)" if state == "unclosed" else "reasoning (<think>)"
            show(Panel(Text(_elide(reasoning, full)), title=f"{title} · {len(reasoning):,} characters",
                                title_align="left", border_style="dim"))
        if state != "unclosed":
            show(Panel(Text(answer or "(empty)"), title="answer (after </think>)" if reasoning is not None
                                else "answer", title_align="left", border_style="cyan"))
        console.print(_verdict(source, row))
    total = rows[0]["_of"] if rows else 0
    more = "; another --seed draws others" if len(rows) < total else " (all there are)"
    console.print(f"[dim]{plural(len(rows), source + ' row')} of {total}{more}")
