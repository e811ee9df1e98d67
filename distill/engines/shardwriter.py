"""Sampled rows written as resumable shards: used by generate (the teacher's traces) and eval
(the model's benchmark samples).

- `resume(stage, done, plan, gen_config)`: before more shards are written, a killed writer's temp
  files go and each done shard must belong to this plan and generation config.
- `write_shard(stage, index, rows, prompts, n)`: a shard's samples, complete and in order,
  written atomically, then marked done.
- `finish(stage, plan, gen_config, teacher, written)`: the dataset card and manifest once every
  shard (of every rank) is done.
- `_save_stats` / `_read_stats`: each rank's retries, errors, usage and pacing (`_stats.RANK.json`).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc

from .. import schema, shards
from ..errors import ConfigError, UserError
from ..versions import versions as _versions

STATS = "_stats"  # _stats.RANK.json: retries and errors, summed over every run of that rank


def resume(stage: Path, done: set[int], plan: list[list[dict]], gen_config: str, why: str = "") -> None:
    """Before more shards are written: a killed writer's temp files go, and each done shard
    must belong to this plan and generation config (generate's and eval's resume guard)."""
    shards.clean_temp(stage)
    for index in sorted(done):
        if index >= len(plan):
            raise UserError(f"{stage}: shard {index} is beyond the plan's {len(plan)} shards{why}; use a new --out")
        check_done_shard(stage / shards.DATA, index, [p["id"] for p in plan[index]], gen_config)


def check_done_shard(folder: Path, index: int, expected: list[str], gen_config: str) -> None:
    """A done shard must hold the plan's prompts and this run's generation config (generate's and
    eval's resume guard)."""
    path = folder / shards.shard_name(index)
    table = shards.read_file(path, ["id", "gen_config"])
    if set(table.column("id").to_pylist()) != set(expected):
        raise UserError(
            f"{path}: holds other prompts than the plan gives shard {index} (the prompt source changed); use a new --out"
        )
    if table.num_rows and table.column("gen_config")[0].as_py() != gen_config:
        old, new = json.loads(table.column("gen_config")[0].as_py()), json.loads(gen_config)
        key = next((k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)), "?")
        raise ConfigError(
            f"{path}: written with {key}={old.get(key)!r}, this run would use {new.get(key)!r}; "
            "rerun with the same settings, or use a new --out"
        )


def write_shard(stage: Path, index: int, rows: list[dict], prompts: list[dict], n: int) -> None:
    """A shard's samples, complete and in order, written atomically, then marked done."""
    rows.sort(key=lambda r: (r["id"], r["sample_idx"]))
    check_complete(rows, prompts, n, index)
    shards.write_table(stage / shards.DATA / shards.shard_name(index), schema.table(rows, schema.TRACE))
    shards.mark_done(stage, index)


def check_complete(rows: list[dict], prompts: list[dict], n: int, index: int) -> None:
    """A backend's samples for a shard: every prompt's n samples, once each."""
    want = {(p["id"], k) for p in prompts for k in range(n)}
    got = [(r["id"], r["sample_idx"]) for r in rows]
    if len(got) != len(want) or set(got) != want:
        raise RuntimeError(f"backend returned {len(got)} samples for shard {index}, expected {len(want)}")


def finish(stage: Path, plan: list[list[dict]], gen_config: str, teacher: str, written: int,
           command: str = "generate", card: tuple[str, str] | None = None) -> dict:
    """Write the dataset card and the manifest once every shard (of every rank) is done; report
    progress either way. `command` is what wrote the shards and `card` its (title, text) (`eval`
    writes its samples the way generate does)."""
    done = shards.done(stage)
    complete = all(i in done for i in range(len(plan)))
    summary = {"shards": len(plan), "shards_done": len(done & set(range(len(plan)))), "written_now": written}
    if complete and not shards.is_complete(stage):
        stats = [
            shards.read_file(stage / shards.DATA / shards.shard_name(i), ["finish_reason", "completion_tokens"])
            for i in range(len(plan))
        ]
        title, text = card or ("distill traces", f"Teacher: {teacher}. Written by `distill generate`; see manifest.json.")
        shards.write_card(stage, title, {"default": shards.DATA}, text)
        shards.write_json(
            stage / shards.MANIFEST,
            {
                "stage": command,
                "teacher": teacher,
                "gen_config": gen_config,
                "plan": {f"{i:05d}": [p["id"] for p in prompts] for i, prompts in enumerate(plan)},
                "counts": {
                    "prompts": sum(len(p) for p in plan),
                    "samples": sum(t.num_rows for t in stats),
                    # null where an endpoint reports only a request's total (n samples per request)
                    "completion_tokens": sum(pc.sum(t.column("completion_tokens")).as_py() or 0 for t in stats),
                    "truncated": sum(t.column("finish_reason").to_pylist().count("length") for t in stats),
                },
                **_read_stats(stage),
                "versions": _versions(),
            },
        )
    summary["complete"] = complete
    if complete:
        summary.update(read_counts(stage))
    return summary


def _save_stats(stage: Path, rank: int, progress, usage: dict | None = None) -> None:
    """Add this run's new retries and errors (and a written shard's usage) to the rank's running
    totals in the stage folder."""
    path = stage / f"{STATS}.{rank}.json"
    totals = json.loads(path.read_text()) if path.is_file() else {"retries": {}, "errors": 0}
    retries, errors = progress.drain()
    for reason, count in retries.items():
        totals["retries"][reason] = totals["retries"].get(reason, 0) + count
    totals["errors"] += errors
    if usage is not None:
        _add_usage(totals.setdefault("usage", {}), usage)
    if progress.rate:  # a served teacher's pacing, over every run of this rank
        rate = totals.setdefault("rate", {})
        for key in ("rpm", "tpm", "max_concurrency"):
            rate[key] = progress.rate.get(key)
        lowest = [v for v in (rate.get("lowest_concurrency"), progress.rate.get("lowest_concurrency")) if v]
        rate["lowest_concurrency"] = min(lowest) if lowest else None
        # seconds waited on the RPM/TPM buckets: this run's since the last save, added
        waited = progress.rate.get("waited_s", 0.0)
        rate["waited_s"] = round(rate.get("waited_s", 0.0) + waited - progress.rate.get("saved_waited_s", 0.0), 1)
        progress.rate["saved_waited_s"] = waited
    shards.write_json(path, totals)


def _add_usage(total: dict, more: dict) -> None:
    for key in ("prompt_tokens", "completion_tokens"):
        total[key] = total.get(key, 0) + more[key]
    if more["cost"] is not None:
        total["cost"] = (total.get("cost") or 0.0) + more["cost"]
    total.setdefault("cost", None)


def _read_stats(stage: Path) -> dict:
    """Retries and errors over every run and rank that wrote into this stage folder."""
    totals: dict = {"retries": Counter(), "errors": 0}
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "cost": None}
    for path in stage.glob(f"{STATS}.*.json"):
        stats = json.loads(path.read_text())
        totals["retries"].update(stats["retries"])
        totals["errors"] += stats["errors"]
        if "usage" in stats:
            _add_usage(usage, stats["usage"])
        if "rate" in stats:
            totals.setdefault("rate", []).append(stats["rate"])
    out = {"retries": dict(totals["retries"]), "errors": totals["errors"], "usage": usage}
    if totals.get("rate"):
        rates = totals["rate"]
        lowest = [r["lowest_concurrency"] for r in rates if r.get("lowest_concurrency")]
        out["rate"] = {"rpm": rates[0].get("rpm"), "tpm": rates[0].get("tpm"),
                       "max_concurrency": rates[0].get("max_concurrency"),
                       "lowest_concurrency": min(lowest) if lowest else None,
                       "waited_s": round(sum(r.get("waited_s", 0.0) for r in rates), 1)}
    return out


def read_counts(stage: Path) -> dict:
    manifest = shards.read_manifest(stage) or {}
    return dict(manifest.get("counts", {}))
