"""run_filter(): trace shards → verifiers → kept shards with `messages`, rejected shards with
`reject_reason`, and report.json (DESIGN §2–3). One output shard per input file, resumable."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path

from . import runfolder, schema, shards, verify
from .config import PromptTemplate, Recipe
from .errors import ConfigError, UserError
from .prompting import assistant_content, prompt_messages, split_think
from .ui import console, plural

STAGE = "filtered"
REJECTED = "rejected"
INPUTS = "_inputs.json"
REQUIRED = ("id", "sample_idx", "problem", "completion")
DEFAULTS = {"answer": None, "source": "unknown", "domain": "math", "finish_reason": None, "teacher": None,
            "prompt_tokens": None, "completion_tokens": None, "gen_config": None}


@lru_cache(maxsize=64)
def _template(gen_config: str | None) -> PromptTemplate | None:
    """The prompt template a trace was generated with (None for traces from elsewhere)."""
    if not gen_config:
        return None
    try:
        return PromptTemplate(**json.loads(gen_config)["template"])
    except (ValueError, KeyError, TypeError):
        return None


def messages_for(row: dict) -> list[dict]:
    """The conversation a student learns: the teacher's own prompt, then its verified answer."""
    template = _template(row.get("gen_config"))
    if template is None:
        prompt = [{"role": "user", "content": row["problem"]}]
    else:
        prompt = prompt_messages(template, row["problem"])
    return prompt + [{"role": "assistant", "content": assistant_content(row["reasoning"], row["response"])}]


def _read_traces(path: Path) -> list[dict]:
    table = shards.read_file(path)
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise UserError(
            f"{path}: missing column '{missing[0]}'; trace shards need at least {', '.join(REQUIRED)}"
        )
    rows = table.to_pylist()
    for row in rows:
        for key, default in DEFAULTS.items():
            row.setdefault(key, default)
    return rows


def check_config(recipe: Recipe) -> None:
    """Fail on a bad filter section before any stage runs (not after hours of generation)."""
    for name in recipe.filter.verifiers:
        if name not in verify.VERIFIERS:
            raise ConfigError(f"filter.verifiers: unknown verifier '{name}' (known: {', '.join(verify.VERIFIERS)})")


# What isolated verifiers may read: the reasoning and the raw completion (the bulk of a row)
# stay in the parent; only this crosses to the worker.
PAYLOAD = ("id", "problem", "answer", "response", "domain", "choices", "tests", "finish_reason", "think")


def _payload(row: dict) -> dict:
    return {k: row.get(k) for k in PAYLOAD}


def _verify_shard(rows: list[dict], names: tuple[str, ...], options: dict, pool) -> list[verify.Verdict]:
    """Cheap checks inline, then the isolated verifiers through the killable pool."""
    inline = [n for n in names if not verify.VERIFIERS[n].isolated]
    isolated = [n for n in names if verify.VERIFIERS[n].isolated]
    verdicts: list[verify.Verdict] = []
    for row in rows:
        row["reasoning"], row["response"], row["think"] = split_think(row["completion"] or "")
        verdicts.append(verify.run(inline, row, options))
    pending = {
        i for i, row in enumerate(rows) if verdicts[i].ok and any(verify.applies(n, row) for n in isolated)
    }
    tasks = (
        (i, tuple(n for n in isolated if verify.applies(n, rows[i])), _payload(rows[i]), options)
        for i in sorted(pending)
    )
    if pending:
        for i, verdict in pool.imap(tasks):
            verdicts[i] = verdict
            pending.discard(i)
    if pending:  # fail closed: a row nobody verified is never kept as verified
        raise RuntimeError(f"the verifier pool returned no verdict for {len(pending)} rows")
    return verdicts


def run_filter(recipe: Recipe, source: Path, out: Path, rank: int = 0, world_size: int = 1) -> dict:
    """Verify the traces in `source` and write `out/filtered` (kept, rejected, report)."""
    cfg = recipe.filter
    check_config(recipe)
    data = shards.input_folder(source, "traces", "generate")
    files = shards.list_files(data)
    if not files:
        raise UserError(f"{data}: no Parquet files to filter")
    stage = Path(out) / STAGE
    done = shards.forget_missing(
        stage, lambda i: [stage / shards.DATA / shards.shard_name(i), stage / REJECTED / shards.shard_name(i)]
    )
    runfolder.claim(Path(out), recipe, "filter", started=bool(done))
    _claim_inputs(stage, data, files, started=bool(done))
    shards.clean_temp(stage)
    todo = [i for i in range(len(files)) if i % world_size == rank and i not in done]
    options = {k: getattr(cfg, k) for k in ("require_think", "reject_truncated", "timeout")}
    needs_pool = any(verify.VERIFIERS[n].isolated for n in cfg.verifiers)
    if todo:
        console.print(f"filter: {plural(len(files), 'trace file')} ({len(done)} done) with {', '.join(cfg.verifiers)}")
        from .verify.pool import VerifyPool

        pool = VerifyPool(cfg.workers, cfg.timeout) if needs_pool else None
        try:
            for index in todo:
                _filter_file(files[index], index, stage, cfg.verifiers, options, pool)
        finally:
            if pool is not None:
                pool.close()
    complete = all(i in shards.done(stage) for i in range(len(files)))
    if not complete:
        return {"complete": False, "files": len(files), "files_done": len(shards.done(stage))}
    report = build_report(stage)
    if not shards.is_complete(stage):
        shards.write_json(stage / "report.json", report)
        shards.write_card(stage, "distill filtered traces", {"default": shards.DATA, "rejected": REJECTED},
                          f"{report['kept']} of {report['rows_in']} rows kept; see report.json.")
        shards.write_json(stage / shards.MANIFEST, {"stage": "filter", "inputs": [str(f) for f in files],
                                                    "counts": {k: report[k] for k in ("rows_in", "kept", "rejected")}})
    return {"complete": True, **report}


def _claim_inputs(stage: Path, data: Path, files: list[Path], started: bool) -> None:
    """Output shard i belongs to input file i: the input list may not change under a resume."""
    path = stage / INPUTS
    names = [str(f.relative_to(data)) if f != data else f.name for f in files]
    if started and path.is_file() and json.loads(path.read_text()) != names:
        raise UserError(f"{stage}: the input trace files changed since this filter run started; use a new --out")
    shards.write_json(path, names)


def _filter_file(path: Path, index: int, stage: Path, names, options, pool) -> None:
    rows = _read_traces(path)
    verdicts = _verify_shard(rows, names, options, pool)
    kept, rejected = [], []
    for row, verdict in zip(rows, verdicts):
        row["extracted_answer"] = verdict.extracted
        row["verifier"] = ",".join(n for n in names if verify.applies(n, row))
        if verdict.ok:
            row["messages"] = messages_for(row)
            kept.append(row)
        else:
            row["reject_reason"] = verdict.reason
            rejected.append(row)
    shards.write_table(stage / shards.DATA / shards.shard_name(index), schema.table(kept, schema.FILTERED))
    shards.write_table(stage / REJECTED / shards.shard_name(index), schema.table(rejected, schema.REJECTED))
    shards.mark_done(stage, index)
    console.print(f"  {path.name}: {len(kept)} kept, {len(rejected)} rejected")


def build_report(stage: Path) -> dict:
    """Counts kept / dropped per reason and per source, read back from the shards themselves."""
    kept_by_source: Counter = Counter()
    reasons: Counter = Counter()
    by_source: dict[str, Counter] = defaultdict(Counter)
    for f in shards.list_files(stage / shards.DATA):
        kept_by_source.update(shards.read_file(f, ["source"]).column("source").to_pylist())
    for f in shards.list_files(stage / REJECTED):
        t = shards.read_file(f, ["source", "reject_reason"])
        for src, reason in zip(t.column("source").to_pylist(), t.column("reject_reason").to_pylist()):
            reasons[reason] += 1
            by_source[src][reason] += 1
    kept, rejected = sum(kept_by_source.values()), sum(reasons.values())
    sources = sorted(set(kept_by_source) | set(by_source))
    return {
        "rows_in": kept + rejected,
        "kept": kept,
        "rejected": rejected,
        "reasons": dict(reasons.most_common()),
        "by_source": {
            s: {
                "rows_in": kept_by_source[s] + sum(by_source[s].values()),
                "kept": kept_by_source[s],
                "reasons": dict(by_source[s].most_common()),
            }
            for s in sources
        },
    }


def print_report(report: dict) -> None:
    from rich.table import Table

    total = max(report["rows_in"], 1)
    table = Table(title="filter", show_edge=False)
    table.add_column("")
    table.add_column("rows", justify="right")
    table.add_column("%", justify="right")
    table.add_row("[bold]in", str(report["rows_in"]), "100.0")
    table.add_row("[green]kept", str(report["kept"]), f"{100 * report['kept'] / total:.1f}")
    for reason, count in report["reasons"].items():
        table.add_row(f"[red]dropped: {reason}", str(count), f"{100 * count / total:.1f}")
    console.print(table)
