"""The filter report: counts per reason and per source, pass rates, length percentiles, quota
fill, and PNG histograms, all read back from the finished shards (so they match what is there).

Reading is column by column, shard by shard: only small columns (source, reason, lengths, pass
rate) are held, never the text.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from .. import shards
from ..config import FilterConfig
from .select import quota_rows
from ..verify.format import NON_REASONING

REJECTED = "rejected"
PASS1 = "_pass1"  # the filter's first pass: survivors of verification, per input file
CANDIDATES = "candidates"  # _pass1/candidates: rows that passed verification, before dedup and quotas
INPUTS = "_inputs.json"  # which trace file each output shard came from
# reasons given after a row passed verification: it was right, but not kept
AFTER_VERIFY = ("not_selected", "duplicate", "near_duplicate", "over_quota")
PERCENTILES = (10, 50, 90, 99)
COLUMNS = ["id", "source", "domain", "completion_tokens", "pass_rate", "verifier"]


def _read(path: Path, extra: list[str]):
    """A shard's small columns, its completion token counts (see token_counts) and its reasoning
    token counts (for the lengths plot), from one read of the file: the text columns are read
    for their lengths only, a shard at a time, and not kept."""
    if not path.is_file():
        return None, None, None
    names = shards.open_file(path).schema_arrow.names
    text = [c for c in ("reasoning", "completion") if c in names]
    table = shards.read_file(path, [c for c in COLUMNS + extra + text if c in names])
    tokens = token_counts(path, table)
    return table.drop_columns(text), tokens, _reasoning_tokens(table, tokens)


def token_counts(path: Path, table=None):
    """A shard's completion token counts as a numpy array (from `table` when it holds them);
    estimated (4 characters a token) where a row has none, the only case in which its text is read."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if table is not None and "completion_tokens" in table.column_names and not table.column("completion_tokens").null_count:
        return table.column("completion_tokens").cast(pa.int64()).to_numpy()  # no need to open the file again
    names = shards.open_file(path).schema_arrow.names

    def column(name: str):  # from `table` when it holds it: the file is not read twice
        return (table if table is not None and name in table.column_names else shards.read_file(path, [name])).column(name)

    tokens = None
    if "completion_tokens" in names:
        tokens = column("completion_tokens").cast(pa.int64())
        if not tokens.null_count:
            return tokens.to_numpy()
    text = [c for c in ("completion", "response") if c in names]
    if not text:
        return np.zeros(0, dtype=np.int64)
    estimate = pc.divide(pc.fill_null(pc.utf8_length(column(text[0])), 0), 4)
    estimate = estimate.cast(pa.int64())
    return (estimate if tokens is None else pc.if_else(pc.is_null(tokens), estimate, tokens)).to_numpy()


def _shard_names(stage: Path) -> list[str]:
    """Output shard names: shard i may have kept rows, rejected rows, or both."""
    return sorted({p.name for p in shards.list_files(stage / shards.DATA)} |
                  {p.name for p in shards.list_files(stage / REJECTED)})


def _pairs(stage: Path):
    """(kept table, kept tokens, kept reasoning tokens, rejected table, rejected tokens, rejected
    reasoning tokens) per output shard: a problem's samples all sit in the same shard index,
    split between data/ and rejected/."""
    names = _shard_names(stage)
    for name in names:
        yield (*_read(stage / shards.DATA / name, []), *_read(stage / REJECTED / name, ["reject_reason"]))


def percentiles(chunks: list) -> dict:
    """count, mean and p10/p50/p90/p99 of token counts (report.json's `lengths`)."""
    import numpy as np

    arr = np.concatenate(chunks) if chunks else np.zeros(0)
    if not arr.size:
        return {"count": 0}
    out = {"count": int(arr.size), "mean": round(float(arr.mean()), 1)}
    out.update({f"p{p}": int(np.percentile(arr, p)) for p in PERCENTILES})
    return out


def build_report(stage: Path, cfg: FilterConfig | None = None, reasoning: dict | None = None) -> dict:
    """report.json's contents, read back from the finished shards. Given `reasoning` (a dict), it
    is filled with the kept and rejected rows' reasoning token counts for `write_plots`, from the
    same reads."""
    cfg = cfg or FilterConfig()
    reasons: Counter = Counter()
    by_source: dict[str, Counter] = defaultdict(Counter)
    kept_by_source: Counter = Counter()
    kept_by_group: Counter = Counter()
    available: Counter = Counter()  # per quota group: rows that reached the quota step
    contaminated: Counter = Counter()
    problems = Counter()  # count, rate_sum, all_wrong, all_right over problems (contaminated ones aside)
    unverified: Counter = Counter()  # kept rows of a domain no answer verifier covered
    answering, uncovered = _answer_verifiers(), {}  # uncovered: (domain, verifiers ran) -> bool
    lengths: dict[str, list] = {"kept": [], "rejected": []}
    thought: dict[str, list] = {"kept": [], "rejected": []}
    for kept_table, kept_tokens, kept_thought, rej_table, rej_tokens, rej_thought in _pairs(stage):
        rates: dict[str, float] = {}  # this shard's problems only
        if kept_table is not None:
            cols = kept_table.to_pydict()
            lengths["kept"].append(kept_tokens)
            thought["kept"].append(kept_thought)
            kept_by_source.update(cols["source"])
            kept_by_group.update(cols[cfg.quota_by])
            available.update(cols[cfg.quota_by])
            rates.update(zip(cols["id"], cols["pass_rate"]))
            for domain, ran in zip(cols["domain"], cols["verifier"]):
                if (domain, ran) not in uncovered:  # a few distinct pairs in a whole run
                    uncovered[domain, ran] = domain not in NON_REASONING and not set((ran or "").split(",")) & answering
                if uncovered[domain, ran]:
                    unverified[domain] += 1
        if rej_table is not None:
            cols = rej_table.to_pydict()
            lengths["rejected"].append(rej_tokens)
            thought["rejected"].append(rej_thought)
            for i, reason in enumerate(cols["reject_reason"]):
                reasons[reason] += 1
                by_source[cols["source"][i]][reason] += 1
                if reason == "over_quota":
                    available[cols[cfg.quota_by][i]] += 1
                if reason == "contaminated":
                    contaminated[(cols["verifier"][i] or "").removeprefix("decontaminate:")] += 1
                elif cols["pass_rate"][i] is not None:
                    rates.setdefault(cols["id"][i], cols["pass_rate"][i])
        values = list(rates.values())
        problems["count"] += len(values)
        problems["rate_sum"] = sum(values, problems["rate_sum"])
        problems["all_wrong"] += values.count(0)
        problems["all_right"] += values.count(1)
    if reasoning is not None:
        import numpy as np

        reasoning.update({k: np.concatenate([np.zeros(0), *v]) for k, v in thought.items()})
    kept, rejected = sum(kept_by_source.values()), sum(reasons.values())
    sources = sorted(set(kept_by_source) | set(by_source))
    report = {
        "rows_in": kept + rejected,
        "kept": kept,
        "rejected": rejected,
        "reasons": dict(reasons.most_common()),
        "by_source": {},
        "lengths": {k: percentiles(v) for k, v in lengths.items()},
        "problems": _problem_stats(problems),
        "contaminated": dict(contaminated.most_common()),
        "unverified": dict(unverified.most_common()),
    }
    for s in sources:
        rows_in = kept_by_source[s] + sum(by_source[s].values())
        judged = rows_in - by_source[s]["contaminated"]
        passed = kept_by_source[s] + sum(by_source[s][r] for r in AFTER_VERIFY)
        report["by_source"][s] = {
            "rows_in": rows_in,
            "kept": kept_by_source[s],
            "pass_rate": round(passed / judged, 4) if judged else None,
            "reasons": dict(by_source[s].most_common()),
        }
    if cfg.quotas or cfg.target:
        report["quotas"] = {
            "by": cfg.quota_by,
            "target": cfg.target,
            "groups": {
                g: {"wanted": quota_rows(cfg.quotas.get(g), cfg.target), "available": available[g],
                    "kept": kept_by_group[g]}
                for g in sorted(set(available) | set(cfg.quotas))
            },
        }
    return report


def _answer_verifiers() -> set[str]:
    """The verifiers that check an answer (math, choice, code): those bound to domains."""
    from .. import verify

    return {name for name, v in verify.VERIFIERS.items() if v.domains is not None}


def _problem_stats(totals: Counter) -> dict:
    if not totals["count"]:
        return {"count": 0}
    return {
        "count": int(totals["count"]),
        "mean_pass_rate": round(totals["rate_sum"] / totals["count"], 4),
        "all_wrong": int(totals["all_wrong"]),
        "all_right": int(totals["all_right"]),
    }


def _reasoning_tokens(table, tokens):
    """Reasoning length in tokens per row: the completion's tokens times the reasoning's share of
    its characters (all of it without a <think> block)."""
    import numpy as np
    import pyarrow.compute as pc

    if "completion" not in table.column_names:
        return np.zeros(0)
    completion = pc.fill_null(pc.utf8_length(table.column("completion")), 0)
    if "reasoning" not in table.column_names:
        return tokens.astype(float)
    # no <think> block: the whole completion is the chain of thought
    reasoning = pc.coalesce(pc.utf8_length(table.column("reasoning")), completion)
    return np.round(tokens * reasoning.to_numpy() / np.maximum(completion.to_numpy(), 1))


def prepare_plots() -> None:
    """Import matplotlib in a background thread: the filter process mostly waits on its workers,
    so the import costs nothing there, where it would delay the end of the stage."""
    import threading

    def load() -> None:
        try:
            import matplotlib.figure  # noqa: F401
        except Exception:  # noqa: BLE001 - write_plots imports it again and reports what fails
            pass

    threading.Thread(target=load, name="import-matplotlib", daemon=True).start()


def write_plots(stage: Path, reasoning: dict) -> list[str]:
    """A PNG histogram of reasoning length, kept vs rejected (`reasoning`: as build_report fills it)."""
    fig = lengths_figure(reasoning["kept"], reasoning["rejected"])
    path = stage / "lengths.png"
    with shards.writing(path):
        fig.savefig(path)  # Figure renders with the Agg canvas: no display needed
    return [path.name]


def lengths_figure(kept, rejected):
    """filtered/lengths.png: histograms of reasoning tokens (numpy arrays), kept vs rejected."""
    import numpy as np
    from matplotlib.figure import Figure  # not pyplot: no global figure state, half the import time

    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.subplots()
    top = max(float(kept.max(initial=0)), float(rejected.max(initial=0)), 1.0)
    bins = np.linspace(0, top, 41)
    # outlines, not translucent fills: two fills overlap into a third colour the legend lacks
    ax.hist(rejected, bins=bins, histtype="step", linewidth=1.8, label=f"rejected ({len(rejected)})", color="tab:red")
    ax.hist(kept, bins=bins, histtype="step", linewidth=1.8, label=f"kept ({len(kept)})", color="tab:green")
    ax.set_title("Reasoning length: kept vs rejected")
    ax.set_xlabel("reasoning tokens (estimated from the completion's count)")
    ax.set_ylabel("rows")
    ax.legend()
    fig.tight_layout()
    return fig


def token_table(title: str, lengths: dict, **table_args):
    """Token percentiles (as `percentiles` gives them) per group, one row each, as a rich table."""
    from rich.table import Table

    table = Table(title=title, show_edge=False, **table_args)
    for name in ("", "rows", "mean", *(f"p{p}" for p in PERCENTILES)):
        table.add_column(name, justify="right")
    for name, stats in lengths.items():
        if stats.get("count"):
            table.add_row(name, str(stats["count"]), str(stats["mean"]), *(str(stats[f"p{p}"]) for p in PERCENTILES))
    return table


def print_report(report: dict) -> None:
    from rich.table import Table

    from ..ui import console

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
    if len(report.get("by_source", {})) > 0:
        sources = Table(title="by source", show_edge=False)
        for name in ("source", "in", "kept", "kept %", "pass rate", "dropped (top reasons)"):
            sources.add_column(name, justify="left" if name in ("source", "dropped (top reasons)") else "right")
        for name, s in report["by_source"].items():
            rate = "-" if s["pass_rate"] is None else f"{100 * s['pass_rate']:.1f}%"
            kept = f"{100 * s['kept'] / s['rows_in']:.1f}%" if s["rows_in"] else "-"
            top = ", ".join(f"{reason} {count}" for reason, count in list(s["reasons"].items())[:3]) or "-"
            sources.add_row(name, str(s["rows_in"]), str(s["kept"]), kept, rate, top)
        console.print(sources)
    if report.get("lengths"):
        console.print(token_table("completion tokens", report["lengths"]))
    if report.get("contaminated"):
        console.print("contaminated: " + ", ".join(f"{name} {count}" for name, count in report["contaminated"].items()))
    for group, q in report.get("quotas", {}).get("groups", {}).items():
        if q["wanted"] is not None and q["kept"] < q["wanted"]:
            groups = report["quotas"]["groups"]
            seen = ", ".join(g for g, other in groups.items() if other["available"]) or "none"
            why = (f"no row has {report['quotas']['by']} '{group}'; those seen: {seen}" if not q["available"] else
                   f"only {q['available']} available" if q["available"] < q["wanted"] else "cut by filter.target")
            console.print(f"[yellow]quota {group}: {q['kept']} of {q['wanted']} wanted ({why})")
    if report.get("unverified"):
        from .. import verify

        covers = ", ".join(f"{n} → {'/'.join(v.domains)}" for n, v in verify.VERIFIERS.items() if v.domains)
        for domain, count in report["unverified"].items():
            console.print(f"[yellow]warning: {count} kept rows of domain '{domain}' were checked by no answer "
                          f"verifier (answer verifiers by domain: {covers}; see filter.verifiers)")


# what to check when one reason takes (nearly) every row: the reasons that point at the data or
# the set-up rather than at the teacher's skill
_CHECK = {
    "no_gold": "the problems have no gold answers: check the answer column (columns: {answer: …}) or the card's "
               "answer_pattern",
    "no_answer": "the answers end without a final answer the verifier can read (\\boxed{…}): check the teacher's "
                 "prompt template and max_tokens",
    "truncated": "the answers were cut off: raise generate.max_tokens",
    "wrong_answer": "every answer was wrong: check the gold answers, then the teacher",
}


def waste(report: dict, path) -> str | None:
    """One line when the filter kept nothing, or when one reason that points at the data or the
    set-up (no gold answers, no final answers) rejected nearly every row; None otherwise."""
    total, reasons = report.get("rows_in", 0), report.get("reasons", {})
    if not total or not reasons:
        return None
    top, count = max(reasons.items(), key=lambda item: item[1])
    listed = ", ".join(f"{r} {n}" for r, n in list(reasons.items())[:3])
    if report["kept"] == 0:
        return (f"the filter kept 0 of {total} rows ({listed}): {_CHECK.get(top, 'check the filter settings')}; "
                f"see {path}")
    if top in ("no_gold", "no_answer") and count >= 0.9 * total:
        return f"the filter rejected {count} of {total} rows as {top}: {_CHECK[top]}; see {path}"
    return None
