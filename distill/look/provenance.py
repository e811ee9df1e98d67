"""What made an exported dataset: teacher, sampling, prompts, filters, counts, versions and the
commands to make it again, gathered from the run folder (`provenance.json`) and written up as a
Hugging Face dataset card (`README.md`).

Facts come only from what distill recorded: the rows' own `teacher` and `gen_config` columns,
the stage manifests, the filter report and `recipe.resolved.yaml`. A fact nobody recorded is
"unknown", never inferred. The recipe's teacher/data/generate sections are trusted only when this
run folder holds the finished traces: a folder that only filtered traces from elsewhere carries
another recipe's (possibly default) teacher there.
"""

from __future__ import annotations

import json
import shlex
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import yaml

from .. import shards
from ..runfolder import RESOLVED

UNKNOWN = "unknown"
NOT_APPLIED = "not applied (raw traces)"
MARK = "distill export"  # provenance.json's `exported_by`: how a rerun recognises its own output
SMALL = ("source", "reject_reason", "teacher", "gen_config")  # columns read to count; never the text
MAX_DISTINCT = 20  # teacher / gen_config values listed; more means a merged folder, not one run


def scan(files: list[Path]) -> dict:
    """One pass over the small columns of the exported files: row count, rows per source (and per
    reject reason), and the distinct teachers and generation configs the rows record."""
    import pyarrow.compute as pc

    rows, counts = 0, {name: Counter() for name in SMALL}
    for path in files:
        pf = shards.open_file(path)
        rows += pf.metadata.num_rows
        names = [c for c in SMALL if c in pf.schema_arrow.names]
        table = shards.read_file(path, names) if names else None
        for name in names:
            for item in pc.value_counts(table.column(name)).to_pylist():
                if item["values"] is not None:
                    counts[name][str(item["values"])] += item["counts"]
    return {"rows": rows, **{name: dict(counts[name].most_common()) for name in SMALL}}


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None


def _recipe(run: Path | None) -> dict | None:
    if run is None or not (run / RESOLVED).is_file():
        return None
    try:
        return yaml.safe_load((run / RESOLVED).read_text()) or None
    except yaml.YAMLError:
        return None


def _sampling(gen_configs: list[str]):
    parsed = []
    for text in gen_configs[:MAX_DISTINCT]:
        try:
            parsed.append(json.loads(text))
        except json.JSONDecodeError:
            parsed.append(text)
    if not parsed:
        return UNKNOWN
    return parsed[0] if len(parsed) == 1 else parsed


def _prompts(data: list | None):
    if not data:
        return UNKNOWN
    out = []
    for src in data:
        card = src.get("card") or {}
        item = {"card": card.get("name")}
        for key in ("hub", "subset", "split", "path", "generator", "params"):
            value = src.get(key) if src.get(key) is not None else card.get(key)
            if value not in (None, {}):
                item[key] = value
        item["limit"] = src.get("limit")
        out.append(item)
    return out


def _filters(cfg: dict) -> dict:
    cfg = {k: v for k, v in cfg.items() if k != "workers"}  # throughput only: not a fact about the rows
    cfg["decontaminate"] = [(d.get("card") or {}).get("name") if isinstance(d, dict) else d
                            for d in cfg.get("decontaminate") or []]
    return cfg


def collect(source, found: dict, fmt: str, files: list[str], command: str) -> dict:
    """provenance.json's facts for an export of `source` (export.Source) in format `fmt`."""
    from .. import __version__

    filtered = source.rows in ("kept", "rejected")
    recipe = _recipe(source.run)
    if source.rows == "traces":
        traces = _json(source.stage / shards.MANIFEST)
    else:
        traces = _json(source.run / "traces" / shards.MANIFEST) if source.run else None
    if traces and found["gen_config"] and traces.get("gen_config") not in found["gen_config"]:
        traces = None  # these rows were generated under another configuration than this run's traces/
    generated_here = recipe if recipe and traces and source.run and (source.run / "traces").is_dir() else None
    teacher = {"model": UNKNOWN, "revision": UNKNOWN, "recorded": list(found["teacher"])[:MAX_DISTINCT] or UNKNOWN}
    if generated_here and generated_here.get("teacher"):
        card = generated_here["teacher"]
        teacher.update(card=card.get("name"), model=card.get("model"), revision=card.get("revision") or "not pinned")
        if card.get("gguf"):
            teacher["gguf"] = card["gguf"]
    if teacher["recorded"] == UNKNOWN and traces and traces.get("teacher"):
        teacher["recorded"] = [traces["teacher"]]
    gen_configs = list(found["gen_config"]) or ([traces["gen_config"]] if traces and traces.get("gen_config") else [])
    report = _json(source.stage / "report.json") if filtered and source.stage else None
    filter_manifest = _json(source.stage / shards.MANIFEST) if filtered and source.stage else None
    counts = {
        "exported": found["rows"],
        "exported_by_source": found["source"] or UNKNOWN,
        "generate": (traces or {}).get("counts", UNKNOWN),
        "filter": ({k: report[k] for k in ("rows_in", "kept", "rejected", "reasons", "by_source", "problems",
                                            "contaminated", "quotas") if k in report}
                   if report else NOT_APPLIED if source.rows == "traces" else UNKNOWN),
    }
    if found["reject_reason"]:
        counts["exported_by_reason"] = found["reject_reason"]
    if filtered and recipe and source.stage == source.run / "filtered":
        filters = _filters(recipe.get("filter") or {})
    else:
        filters = NOT_APPLIED if source.rows == "traces" else UNKNOWN
    prov = {
        "exported_by": MARK,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": str(source.path),
        "run": (recipe or {}).get("name", UNKNOWN),
        "rows": source.rows or "all (a folder not written by distill)",
        "format": fmt,
        "files": files,
        "teacher": teacher,
        "sampling": _sampling(gen_configs),
        "prompts": _prompts(generated_here.get("data")) if generated_here else UNKNOWN,
        "filters": filters,
        "counts": counts,
        "versions": {"generated_with": (traces or {}).get("versions", UNKNOWN), "exported_with": {"distill": __version__}},
        "command": command,
        "reproduce": _reproduce(source, generated_here, filters, fmt),
    }
    if filtered and filter_manifest and not generated_here:
        # the filter read traces made elsewhere: say where, as the filter recorded it
        inputs = filter_manifest.get("inputs") or []
        prov["traces_from"] = str(Path(inputs[0]).parent) if inputs else UNKNOWN
    return prov


def _reproduce(source, generated_here: dict | None, filters, fmt: str) -> list[str] | str:
    """The commands that remake the rows from the run's recipe (shipped beside as recipe.yaml),
    into a fresh run folder named after the recipe."""
    if source.run is None or generated_here is None or (source.rows != "traces" and filters == UNKNOWN):
        return UNKNOWN
    run = shlex.quote(f"runs/{generated_here.get('name') or 'run'}")
    steps = [f"distill generate --recipe recipe.yaml --out {run}"]
    if source.rows != "traces":
        steps.append(f"distill filter {run} --recipe recipe.yaml --out {run}")
    rows = f" --rows {source.rows}" if source.rows != "kept" else ""
    return steps + [f"distill export {run} --format {fmt} --out {run}-{fmt}{rows}"]


# ---------------------------------------------------------------- the dataset card

SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
         (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"))


def _size(n: int) -> str:
    return next((label for top, label in SIZES if n < top), "n>100M")


def _cell(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple)):
        value = json.dumps(value, ensure_ascii=False) if value else "none"
    return str(value).replace("|", "\\|").replace("\n", "\\n")


def _table(pairs, header=("", "")) -> list[str]:
    lines = [f"| {header[0]} | {header[1]} |", "| --- | --- |"]
    return lines + [f"| {_cell(k)} | {_cell(v)} |" for k, v in pairs] + [""]


def _section_sampling(sampling) -> list[str]:
    if sampling == UNKNOWN or isinstance(sampling, str):
        return [f"Sampling: {sampling}.", ""]
    if isinstance(sampling, list):
        return [f"The rows were generated under {len(sampling)} different configurations:", "", "```json",
                *(json.dumps(s, ensure_ascii=False, sort_keys=True) for s in sampling), "```", ""]
    keys = ("temperature", "top_p", "max_tokens", "n", "seed", "backend")
    lines = _table([(k, sampling.get(k, UNKNOWN)) for k in keys], ("sampling", "value"))
    template = sampling.get("template")
    if isinstance(template, dict):
        lines += [f"Prompt template (system prompt: {_cell(template.get('system'))}; "
                  f"forced `<think>` prefix: {_cell(template.get('think_prefix'))}), user turn:", "",
                  "```", str(template.get("user")), "```", ""]
    else:
        lines += ["Prompt template: unknown.", ""]
    return lines


def _section_counts(counts: dict) -> list[str]:
    gen, filt = counts["generate"], counts["filter"]
    pairs = [("rows in this export", counts["exported"])]
    if isinstance(gen, dict):
        pairs += [("prompts", gen.get("prompts", UNKNOWN)), ("samples generated", gen.get("samples", UNKNOWN)),
                  ("samples truncated (max_tokens)", gen.get("truncated", UNKNOWN))]
    else:
        pairs += [("prompts / samples generated", gen)]
    if isinstance(filt, dict):
        pairs += [("rows filtered", filt.get("rows_in")), ("kept", filt.get("kept")), ("rejected", filt.get("rejected"))]
    else:
        pairs += [("filter", filt)]
    lines = _table(pairs, ("count", "rows"))
    if isinstance(filt, dict) and filt.get("reasons"):
        lines += ["Rejected, by reason:", ""] + _table(filt["reasons"].items(), ("reason", "rows"))
    if isinstance(filt, dict) and filt.get("by_source"):
        lines += ["Per source:", "", "| source | rows in | kept | pass rate | rejected by reason |",
                  "| --- | --- | --- | --- | --- |"]
        for name, s in filt["by_source"].items():
            lines.append(f"| {_cell(name)} | {s.get('rows_in')} | {s.get('kept')} | {_cell(s.get('pass_rate'))} | "
                         f"{_cell(s.get('reasons'))} |")
        lines.append("")
    elif isinstance(counts["exported_by_source"], dict):
        lines += ["Rows of this export per source:", ""] + _table(counts["exported_by_source"].items(), ("source", "rows"))
    return lines


ABOUT = {
    "kept": "reasoning traces a teacher model wrote and verifiers accepted, exported by `distill export`. The "
            "`messages` column is the chat-format conversation (the prompt, then the answer, with its reasoning in "
            "a `<think>` block when the teacher wrote one) "
            "that TRL, open-r1 and LLaMA-Factory train on.",
    "rejected": "reasoning traces a teacher model wrote and the filter rejected, each with its `reject_reason`, "
                "exported by `distill export`.",
    "traces": "reasoning traces a teacher model wrote, every sample before verification, exported by `distill export`.",
    None: "rows of a Parquet folder that distill did not write, exported by `distill export`; what made them is "
          "mostly unknown.",
}


def card(prov: dict, data_files: str | None, load: str) -> str:
    """README.md: YAML front matter the hub and `datasets` read, then the provenance in prose."""
    front = {"license": "unknown", "pretty_name": f"{prov['run']} ({prov['rows'].split(' ')[0]} rows)",
             "tags": ["distill", "reasoning", "synthetic"], "task_categories": ["text-generation"],
             "size_categories": [_size(prov["counts"]["exported"])]}
    if data_files:
        front["configs"] = [{"config_name": "default", "data_files": [{"split": "train", "path": data_files}]}]
    teacher = prov["teacher"]
    recorded = teacher["recorded"] if isinstance(teacher["recorded"], str) else ", ".join(teacher["recorded"])
    lines = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).strip(), "---", "",
             f"# {front['pretty_name']}", "",
             f"{prov['counts']['exported']} {ABOUT.get(prov['rows'], ABOUT[None])}", "",
             "**License: unknown.** Set it before sharing: these rows inherit the terms of the teacher model and "
             "of the prompt sources listed below.", "",
             "## Load", "", "```python", load, "```", "",
             "## Provenance", "", "### Teacher", ""]
    lines += _table([("model", teacher["model"]), ("revision", teacher["revision"]), ("as recorded on the rows", recorded)]
                    + ([("weights", teacher["gguf"])] if teacher.get("gguf") else []), ("teacher", ""))
    lines += ["### Sampling", ""] + _section_sampling(prov["sampling"])
    lines += ["### Prompts", ""]
    if isinstance(prov["prompts"], list):
        lines += [f"- `{p['card']}`: " + ", ".join(f"{k} {_cell(v)}" for k, v in p.items() if k != "card")
                  for p in prov["prompts"]] + [""]
    else:
        lines += [f"Prompt sources: {prov['prompts']}.", ""]
    lines += ["### Filters", ""]
    if isinstance(prov["filters"], dict):
        lines += _table(prov["filters"].items(), ("filter setting", "value"))
    else:
        lines += [f"Filters: {prov['filters']}.", ""]
    if "traces_from" in prov:
        lines += [f"The traces were generated elsewhere; the filter read them from `{prov['traces_from']}`.", ""]
    lines += ["### Counts", ""] + _section_counts(prov["counts"])
    made = prov["versions"]["generated_with"]
    made = ", ".join(f"{k} {v}" for k, v in made.items()) if isinstance(made, dict) else made
    lines += ["### Versions", "", f"Generated with {made}; exported with distill "
              f"{prov['versions']['exported_with']['distill']}.", ""]
    if prov["reproduce"] == UNKNOWN:
        lines += ["### Reproduce", "", "Unknown: the recipe that generated these rows is not in the exported folder. "
                  "This export was made with:", "", "```bash", prov["command"], "```", ""]
    else:
        lines += ["### Reproduce", "", "```bash", *prov["reproduce"], "```", "",
                  "`recipe.yaml` is the run's resolved recipe (every card inlined). Sampling is seeded, but the "
                  "same rows come back only with the same engine and hardware. This export was made with "
                  f"`{prov['command']}`.", ""]
    lines += ["Every fact above is also in `provenance.json`.", ""]
    return "\n".join(lines)
