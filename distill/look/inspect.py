"""`distill inspect DIR`: what a run folder holds, stage by stage (rows, kept %, reasons,
completion-token percentiles, training loss, scores), read back from its files and printed with rich.

The stages' own records (traces/manifest.json, filtered/report.json, student/train_summary.json,
eval/scores.json) are used as they are wherever they exist, so inspect says what the stage said;
what they lack (token counts of traces, anything of an unfinished stage) is read from the shards,
small columns only, a shard at a time: never the text.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

from .. import shards
from ..errors import UserError
from ..metrics import loss_points, quarter_means, short_batches
from ..filter.report import CANDIDATES, INPUTS, PASS1, REJECTED, percentiles, token_counts as _tokens, token_table
from ..runfolder import BASE, RESOLVED
from ..ui import plural

STAGES = ("traces", "filtered", "student", "eval")
TOP_REASONS = 8


def locate(path: Path) -> dict[str, Path]:
    """The stage folders to inspect: a run folder's traces/, filtered/, student/ and eval/, or a
    stage folder given directly (recognised by what is in it, or failing that by its name)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such folder")
    if not path.is_dir():
        raise UserError(f"{path}: not a folder; give a run folder (with traces/, filtered/, student/ or eval/) "
                        "or one of those stage folders")
    found = {name: path / name for name in STAGES if (path / name).is_dir()}
    if found:
        return found
    kind = _stage_kind(path)
    if kind is None and (path / RESOLVED).is_file():
        return {}  # a run folder whose first stage has not written anything yet
    if kind is None:
        raise UserError(f"{path}: not a run folder: no traces/, filtered/, student/ or eval/ in it, "
                        "and no Parquet shards")
    return {kind: path}


def _stage_kind(path: Path) -> str | None:
    has = lambda name: (path / name).exists()  # noqa: E731
    if has("report.json") or has(REJECTED) or has(PASS1):
        return "filtered"
    if has("train_summary.json") or has("train_log.json") or has("adapter_config.json") or has("checkpoints"):
        return "student"
    if has("scores.json") or has("eval.yaml"):
        return "eval"
    if path.name in STAGES:  # a stage folder that has just started, before any of the above
        return path.name
    if has(shards.DATA) or has(shards.DONE) or any(path.rglob("*.parquet")):
        return "traces"  # any folder of trace shards (eval/NAME/ holds trace rows too)
    return None


def summarize(path: Path) -> dict:
    """Everything inspect prints, as a dict; `_tokens` entries hold numpy arrays for the plots."""
    stages = locate(path)
    readers = {"traces": _traces, "filtered": _filtered, "student": _student, "eval": _eval}
    return {"path": str(path), "stages": {name: readers[name](folder) for name, folder in stages.items()}}


# ---------------------------------------------------------------- reading


def _columns(path: Path, wanted: tuple[str, ...]):
    """The `wanted` columns a shard has (none at all still gives its row count): never its text."""
    names = shards.open_file(path).schema_arrow.names
    return shards.read_file(path, [c for c in wanted if c in names])


def _json(path: Path, what: str, fix: str):
    """A stage's JSON record; a damaged one is one line naming it and what to do."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: unreadable {what} ({e}); {fix}") from None


def _files(folder: Path) -> list[Path]:
    return shards.list_files(folder) if folder.is_dir() else []


def _traces(stage: Path) -> dict:
    import pyarrow.compute as pc

    folder = shards.data_folder(stage)
    manifest = shards.read_manifest(stage)
    files = _files(folder)
    rows = truncated = 0
    ids: set = set()
    by_source: Counter = Counter()
    teachers: set = set()
    tokens = []
    for f in files:
        table = _columns(f, ("id", "source", "finish_reason", "completion_tokens", "teacher"))
        rows += table.num_rows
        cols = table.column_names
        if manifest is None and "id" in cols:  # the manifest counts prompts; without one, count them
            ids.update(table.column("id").to_pylist())
        if "source" in cols:
            by_source.update(table.column("source").to_pylist())
        if "finish_reason" in cols:
            truncated += pc.sum(pc.equal(table.column("finish_reason"), "length")).as_py() or 0
        if "teacher" in cols:
            teachers.update(t for t in pc.unique(table.column("teacher")).to_pylist() if t)
        tokens.append(_tokens(f, table))
    counts = (manifest or {}).get("counts", {})
    done = shards.done(stage)
    if manifest is not None:
        state, note = "complete", ""
    elif (stage / shards.DONE).is_dir() or (stage / shards.DATA).is_dir() or stage.name == "traces":
        state = "unfinished"
        note = (f"{plural(len(done), 'shard')} done, no manifest yet; rerun the same `distill generate` command to finish"
                f" (or wait for the other ranks)")
    else:
        state, note = "plain", "a folder of Parquet files (no manifest)"
    return {
        "folder": str(stage), "state": state, "note": note, "files": len(files), "rows": rows,
        "prompts": counts.get("prompts", len(ids)), "truncated": truncated,
        "teacher": ", ".join(sorted(teachers)) or None, "by_source": dict(by_source.most_common()),
        # eval's samples per benchmark are trace rows too, written by the model under evaluation
        "writer": "model" if (manifest or {}).get("stage") == "eval" else "teacher",
        "tokens": percentiles(tokens), "_tokens": {"traces": tokens},
    }


def _count_filtered(kept: Path, rejected: Path) -> dict:
    """Counts, reasons and token percentiles of kept and rejected shards as they are now (for a
    filter that has not written its report yet)."""
    reasons: Counter = Counter()
    by_source: dict[str, Counter] = defaultdict(Counter)
    tokens: dict[str, list] = {"kept": [], "rejected": []}
    for f in _files(kept):
        table = _columns(f, ("source", "completion_tokens"))
        sources = table.column("source").to_pylist() if "source" in table.column_names else ["unknown"] * table.num_rows
        for s in sources:
            by_source[s]["kept"] += 1
        tokens["kept"].append(_tokens(f, table))
    for f in _files(rejected):
        table = _columns(f, ("source", "reject_reason", "completion_tokens"))
        cols = table.to_pydict()
        for s, reason in zip(cols.get("source") or ["unknown"] * table.num_rows, cols["reject_reason"]):
            reasons[reason] += 1
            by_source[s][reason] += 1
        tokens["rejected"].append(_tokens(f, table))
    kept_rows = sum(c["kept"] for c in by_source.values())
    return {
        "rows_in": kept_rows + sum(reasons.values()), "kept": kept_rows, "rejected": sum(reasons.values()),
        "reasons": dict(reasons.most_common()),
        "by_source": {s: {"rows_in": sum(c.values()), "kept": c["kept"], "pass_rate": None,
                          "reasons": dict((r, n) for r, n in c.most_common() if r != "kept")}
                      for s, c in sorted(by_source.items())},
        "lengths": {k: percentiles(v) for k, v in tokens.items()},
        "_tokens": tokens,
    }


def _filtered(stage: Path) -> dict:
    report_path = stage / "report.json"
    final = (stage / shards.DATA, stage / REJECTED)
    if report_path.is_file() and shards.is_complete(stage):
        report = _json(report_path, "filter report", "delete filtered/manifest.json and rerun the same "
                       "`distill filter` command to write it again")
        tokens = {"kept": [_tokens(f) for f in _files(final[0])], "rejected": [_tokens(f) for f in _files(final[1])]}
        out = {**report, "_tokens": tokens, "state": "complete", "note": ""}
    else:
        inputs = _json(stage / INPUTS, "input list", "rerun the same `distill filter` command") \
            if (stage / INPUTS).is_file() else []
        pass1 = len(shards.done(stage / PASS1))
        written = len(shards.done(stage))
        if written or not (stage / PASS1).is_dir():
            out = _count_filtered(*final)
            what = f"{written} of {len(inputs) or '?'} output shards written"
        else:  # still in the first pass: its survivors wait in _pass1/ for dedup and quotas
            out = _count_filtered(stage / PASS1 / CANDIDATES, stage / PASS1 / REJECTED)
            what = (f"first pass done for {pass1} of {len(inputs) or '?'} trace files; the counts are of those "
                    "(dedup and quotas not applied yet)")
        out.update(state="unfinished", note=f"{what}; rerun the same `distill filter` command to finish")
    total = out["rows_in"]
    out["kept_pct"] = round(100 * out["kept"] / total, 1) if total else None
    for s in out.get("by_source", {}).values():
        s["kept_pct"] = round(100 * s["kept"] / s["rows_in"], 1) if s["rows_in"] else None
    out["folder"] = str(stage)
    return out


def _log_history(stage: Path) -> tuple[list[dict], str | None]:
    """TRL's log dicts: train_log.json once training has finished, else the newest checkpoint's
    trainer_state.json (so an interrupted run shows its loss so far)."""
    path = stage / "train_log.json"
    if not path.is_file():
        found = sorted((int(p.parent.name.rpartition("-")[2]), p)  # checkpoint-STEP: newest by step
                       for p in stage.glob("checkpoints/checkpoint-*/trainer_state.json")
                       if p.parent.name.rpartition("-")[2].isdigit())
        found = [p for _, p in found]
        if not found:
            return [], None
        path = found[-1]
    data = _json(path, "training log", "training writes it again when rerun")
    history = data.get("log_history", []) if isinstance(data, dict) else data
    return [e for e in history if isinstance(e, dict)], str(path)


def _student(stage: Path) -> dict:
    history, log = _log_history(stage)
    def points(key: str) -> list:
        return [(e["step"], float(e[key])) for e in history
                if isinstance(e.get(key), (int, float)) and isinstance(e.get("step"), int)]

    weighted = loss_points(history)
    loss, eval_loss = [(s, v) for s, v, _ in weighted], points("eval_loss")
    summary_path = stage / "train_summary.json"
    summary = _json(summary_path, "training summary",
                    "delete it and rerun the same `distill train` command with --resume") \
        if summary_path.is_file() else {}
    # as train_summary.json's loss_first/loss_last: token-weighted quarters
    first, last = quarter_means([v for _, v, _ in weighted], [t for *_, t in weighted])
    out = {
        "folder": str(stage), "log": log, "loss": loss, "eval_loss": eval_loss,
        "tokens": [t for *_, t in weighted], "short": sorted(short_batches(weighted)),
        "plot": str(stage / "loss.png") if (stage / "loss.png").is_file() else None,
        "steps": summary.get("steps", max((s for s, _ in loss), default=0)),
        # from the log when there is one: runs trained before the quarters were weighted by tokens
        # recorded unweighted ones in train_summary.json
        "loss_first": first if loss else summary.get("loss_first"),
        "loss_last": last if loss else summary.get("loss_last"),
        **{k: summary.get(k) for k in ("method", "rows", "student", "train_seconds")},
    }
    if summary:
        out.update(state="complete", note="")
    else:
        where = f"loss so far from {Path(log).parent.name}" if log else "no checkpoint yet"
        out.update(state="unfinished", note=f"no train_summary.json ({where}); "
                                            "rerun the same `distill train` command with --resume to finish")
    return out


def _eval(stage: Path) -> dict:
    scores_path = stage / "scores.json"
    scores = None
    if scores_path.is_file():
        scores = _json(scores_path, "scores", "delete it and rerun the same `distill eval` command")
    benchmarks = dict((scores or {}).get("benchmarks", {}))
    # benchmark folders that scores.json does not cover yet: samples written so far
    pending = {}
    for folder in sorted(p for p in stage.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        if folder.name not in benchmarks and (folder / shards.DATA).is_dir():
            pending[folder.name] = {"shards_done": len(shards.done(folder)),
                                    "samples": shards.count_rows(folder / shards.DATA),
                                    "complete": shards.is_complete(folder)}
    state = "complete" if scores is not None and not pending else "unfinished"
    note = "" if state == "complete" else (
        ("no scores.json yet" if scores is None else f"not scored yet: {', '.join(pending)}")
        + "; rerun the same `distill eval` command to finish")
    # `distill run` scores the untrained student too, into RUN/base/eval (unfinished: left out)
    base_path = stage.parent / BASE / stage.name / "scores.json"
    base = _json(base_path, "scores", "delete it and rerun the same `distill run` command") \
        if stage.name == "eval" and base_path.is_file() else None
    return {"folder": str(stage), "state": state, "note": note, "model": (scores or {}).get("model"),
            "reference": (scores or {}).get("reference"), "benchmarks": benchmarks, "pending": pending,
            "scores": scores, "base": base}


# ---------------------------------------------------------------- printing


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _overview(stage: str, s: dict) -> str:
    """One line per stage for the overview table."""
    if stage == "traces":
        return (f"{plural(s['rows'], 'sample')} of {plural(s['prompts'], 'prompt')}, {s['truncated']} truncated "
                f"({_pct(s['truncated'], s['rows'])})")
    if stage == "filtered":
        top = ", ".join(f"{r} {n}" for r, n in list(s["reasons"].items())[:3])
        return f"{s['kept']} of {s['rows_in']} kept ({_pct(s['kept'], s['rows_in'])})" + (f"; dropped {top}" if top else "")
    if stage == "student":
        loss = f"{s['loss_first']:.3f} → {s['loss_last']:.3f}" if s["loss_first"] is not None else "n/a"
        return f"{plural(s['steps'], 'step')}, loss {loss} (per token, first and last quarter of the tokens)"
    base = (s.get("base") or {}).get("benchmarks", {})
    done = ", ".join(f"{b['title']} {b['pass@1']:.1f} ± {b['pass@1_se']:.1f}"
                     + (f" (base {base[k]['pass@1']:.1f} ± {base[k]['pass@1_se']:.1f})" if k in base else "")
                     for k, b in s["benchmarks"].items())
    return f"pass@1 {done}" if done else f"{plural(len(s['pending']), 'benchmark')}, none scored yet"




def print_summary(summary: dict) -> None:
    """The summary as rich tables: an overview line per stage, then each stage's details."""
    from rich.table import Table

    from ..filter.report import print_report
    from ..ui import console

    stages = summary["stages"]
    console.print(f"[bold]distill inspect[/] {summary['path']}")
    if not stages:
        console.print("[yellow]nothing written yet: a run folder with no stage output; run a stage into it first")
        return
    overview = Table(show_edge=False)
    for name in ("stage", "state", "what"):
        overview.add_column(name)
    for name, s in stages.items():
        colour = {"complete": "green", "unfinished": "yellow"}.get(s["state"], "white")
        overview.add_row(name, f"[{colour}]{s['state']}", _overview(name, s))
    console.print(overview)

    if "traces" in stages:
        s = stages["traces"]
        console.print(f"\n[bold]traces[/] {s['folder']}" + (f"  ({s['writer']}: {s['teacher']})" if s["teacher"] else ""))
        console.print(token_table("completion tokens", {"traces": s["tokens"]}, title_justify="left"))
        if len(s["by_source"]) > 1:
            console.print("by source: " + ", ".join(f"{k} {v}" for k, v in s["by_source"].items()))
    if "filtered" in stages:
        s = stages["filtered"]
        console.print(f"\n[bold]filtered[/] {s['folder']}")
        print_report({**s, "reasons": dict(list(s["reasons"].items())[:TOP_REASONS])})
        if len(s["reasons"]) > TOP_REASONS:
            console.print(f"(and {len(s['reasons']) - TOP_REASONS} more reasons; see report.json)")
    if "student" in stages:
        s = stages["student"]
        console.print(f"\n[bold]student[/] {s['folder']}")
        facts = [s["method"] and f"{s['method']}", s["rows"] is not None and plural(s["rows"], "row"),
                 plural(s["steps"], "step"), s["train_seconds"] and f"{s['train_seconds']:.0f} s"]
        console.print(", ".join(f for f in facts if f))
        if s["loss"]:
            (a, first), (b, last) = s["loss"][0], s["loss"][-1]
            console.print(f"loss at step {a}: {first:.4f}, at step {b}: {last:.4f} "
                          f"({len(s['loss'])} logged steps; min {min(v for _, v in s['loss']):.4f})")
            if s.get("short"):  # a leftover batch's loss is one or two rows': noisy, and counted as such
                console.print(f"short leftover {'batch at step' if len(s['short']) == 1 else 'batches at steps'} "
                              f"{', '.join(map(str, s['short']))} (under half the median step's tokens): "
                              "the quarter means count each step by its tokens")
            if s.get("plot"):
                console.print(f"plot: {s['plot']}")
    if "eval" in stages:
        s = stages["eval"]
        console.print(f"\n[bold]eval[/] {s['folder']}")
        if s["scores"] is not None:
            from ..eval.evalscore import print_scores

            print_scores(s["scores"], Path(s["folder"]).parent)
        if s.get("base"):
            from ..metrics import difference

            for name, b in s["base"]["benchmarks"].items():
                if name in s["benchmarks"]:
                    diff, se = difference(s["benchmarks"][name], b)
                    console.print(f"{b['title']}: base student (untrained) pass@1 {b['pass@1']:.1f} ± "
                                  f"{b['pass@1_se']:.1f}; trained minus base {diff:+.1f} ± {se:.1f}")
        for name, p in s["pending"].items():
            console.print(f"{name}: {plural(p['samples'], 'sample')} in {plural(p['shards_done'], 'shard')}"
                          + (", not scored" if p["complete"] else ", still generating"))
    for name, s in stages.items():
        if s["state"] == "unfinished":
            console.print(f"[yellow]{name} unfinished: {s['note']}")
