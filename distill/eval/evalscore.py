"""Scoring for `distill eval`: every sample through the filter's verifiers (math for math
benchmarks, choice for GPQA) in the killable worker pool, then pass@1 ± SE and cons@n per
benchmark, the R1 paper's numbers beside them when the model matches one, scores.json and a
table."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from .. import metrics, schema, shards
from . import references
from ..ui import console

EVAL = "eval"
SCORED = "scored.parquet"
SCORES = "scores.json"


def _verify(rows: list[dict], verifier: str, timeout: float, pool) -> None:
    """Add extracted_answer, correct and reason to each row, as `distill filter` judges it: the
    format check first, so a sample cut off at max_tokens is wrong (`truncated`) and casts no
    vote, whatever number its cut-off text happens to end on; then the answer verifier."""
    from ..config import FilterConfig
    from ..verify.shard import OPTION_KEYS, _verify_shard

    defaults = FilterConfig()  # the filter's own settings, so eval judges as the filter keeps
    options = {k: getattr(defaults, k) for k in OPTION_KEYS} | {"timeout": timeout}
    verdicts = _verify_shard(rows, ("format", verifier), options, pool)
    for row, verdict in zip(rows, verdicts):
        row["extracted_answer"], row["correct"], row["reason"] = verdict.extracted, verdict.ok, verdict.reason


def summarize(rows: list[dict], order: list[str], n: int) -> dict:
    """The scores of one benchmark's verified samples (rows), problems in `order`."""
    by_problem: dict[str, list[metrics.Sample]] = {pid: [] for pid in order}
    for row in sorted(rows, key=lambda r: (r["id"], r["sample_idx"])):
        by_problem[row["id"]].append(metrics.Sample(bool(row["correct"]), row["extracted_answer"]))
    groups = [by_problem[pid] for pid in order]
    p1, se = metrics.pass_at_1(groups)
    samples = len(rows)
    reasons = Counter(r["reason"] for r in rows if not r["correct"])
    tokens = [r["completion_tokens"] for r in rows if r["completion_tokens"] is not None]
    return {
        "problems": len(order),
        "n": n,
        "samples": samples,
        "pass@1": round(p1, 2),
        "pass@1_se": round(se, 2),
        "cons@n": round(metrics.cons_at_n(groups), 2),
        "truncated": round(100 * sum(r["finish_reason"] == "length" for r in rows) / samples, 2) if samples else 0.0,
        "wrong": dict(sorted(reasons.items(), key=lambda kv: str(kv[0]))),
        "mean_completion_tokens": round(sum(tokens) / len(tokens), 1) if tokens else None,
    }


def score_all(p, out: Path, problems: dict[str, list[dict]]) -> dict:
    """Verify and score every benchmark of plan `p` whose shards are all written."""
    from .evalmodel import model_name
    from ..verify.pool import VerifyPool

    # an adapter is its own model: it matches by the recipe or base it was trained from, never
    # as the model it sits on (a LoRA on R1-Distill-Qwen-7B is not R1-Distill-Qwen-7B)
    ref = references.match(None if p.model.adapter else p.model.card.model, base=p.model.base, recipe=p.model.recipe)
    result: dict = {
        "model": model_name(p.model),
        "protocol": {"temperature": p.config.temperature, "top_p": p.config.top_p,
                     "max_tokens": p.config.max_tokens, "seed": p.config.seed,
                     "prompt": p.model.card.template.user, "think_prefix": p.model.card.template.think_prefix,
                     "se": "standard error of pass@1 over problems: sample std of per-problem means / sqrt(problems)"},
        "reference": None if ref is None else {"model": ref["name"], "matched": ref["matched"], "source": ref["source"]},
        "benchmarks": {},
    }
    with VerifyPool(p.config.workers, p.config.timeout) as pool:
        for bench in p.benchmarks:
            stage = out / EVAL / bench.name
            files = shards.list_files(stage / shards.DATA)
            rows = [r for f in files for r in shards.read_file(f).to_pylist()]
            _verify(rows, bench.verifier, p.config.timeout, pool)
            rows.sort(key=lambda r: (r["id"], r["sample_idx"]))
            shards.write_table(stage / SCORED, schema.table(rows, schema.SCORED))
            scores = {"title": bench.title, "verifier": bench.verifier,
                      "data": bench.path or bench.card.path or bench.card.hub,
                      **summarize(rows, [r["id"] for r in problems[bench.name]], bench.n)}
            if ref is not None and bench.name in ref["benchmarks"]:
                scores["reference"] = ref["benchmarks"][bench.name]
            result["benchmarks"][bench.name] = scores
    shards.write_json(out / EVAL / SCORES, result)
    return result


def read_scores(out: Path) -> dict:
    """The scores a finished eval wrote into `out/eval`."""
    import json


    path = Path(out) / EVAL / SCORES
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        from ..errors import UserError

        raise UserError(f"{path}: unreadable ({e}); delete it and rerun to score again") from None


def print_scores(result: dict, out: Path) -> None:
    """The scores as a table, the R1 paper's beside them when the model matches one."""
    from rich import box
    from rich.table import Table

    ref = result["reference"]
    table = Table(title=f"distill eval · {result['model']}", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("benchmark", "problems × n", "pass@1 ± SE", "cons@n", "truncated"):
        table.add_column(column, justify="left" if column == "benchmark" else "right")
    paper_keys = [k for k in ("pass@1", "cons@64")
                  if any(k in (s.get("reference") or {}) for s in result["benchmarks"].values())]
    for key in paper_keys:
        table.add_column(f"paper {key}", justify="right")
    for s in result["benchmarks"].values():
        cells = [s["title"], f"{s['problems']} × {s['n']}", f"{s['pass@1']:.1f} ± {s['pass@1_se']:.1f}",
                 f"{s['cons@n']:.1f}", f"{s['truncated']:.1f}%"]
        cells += [str((s.get("reference") or {}).get(key, "—")) for key in paper_keys]
        table.add_row(*cells)
    if console.is_terminal:
        console.print(table)
    else:  # a log or a pipe: wide enough that no cell wraps (rich assumes 80 columns there)
        from rich.console import Console

        Console(file=console.file, width=120, highlight=False).print(table)
    if ref:
        how = {"model": "the published model", "recipe": "trained with its reproduction recipe",
               "base": "trained from the same base model"}[ref["matched"]]
        console.print(f"paper: {ref['model']} ({how}); {ref['source']}")
    console.print(f"scores: {out / 'eval' / 'scores.json'} (pass@1 and cons@n in %, SE over problems)")
