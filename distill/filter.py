"""run_filter(): trace shards → verifiers → decontamination → selection → dedup → quotas →
kept shards with `messages`, rejected shards with `reject_reason`, report.json (DESIGN §2–3).

Two passes, both streaming shard by shard and both resumable:

1. per input file (split over `--rank/--world-size`): decontaminate, verify, compute each
   problem's pass rate, select samples per problem. Survivors go to `_pass1/candidates/` (their
   dedup keys and quota draws to `_pass1/keys/`), the rest to `_pass1/rejected/`, then the file
   is marked done in `_pass1/_done/`.
2. once every file has passed (in whichever process finds that so): one scan of the candidates'
   small columns (dedup key, id, group, draw) in file order decides exact and near duplicates
   and the quota cut-offs; then each file's final `data/` and `rejected/` shards are written
   and marked done; a file that loses no row there is hard-linked, not rewritten. The
   decisions are deterministic, so a rerun after a kill writes the same shards. `_pass1/` is
   removed once the stage is complete.

Samples of one problem are expected in one input file (as `distill generate` writes them):
pass rates and per-problem selection are computed within a file.
"""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import pyarrow as pa

from . import runfolder, schema, shards, verify
from .config import FilterConfig, PromptTemplate, Recipe
from .dedup import exact_key, load_contamination, NearDuplicates
from .errors import ConfigError, UserError
from .prompting import assistant_content, prompt_messages, split_think
from .report import CANDIDATES, INPUTS, PASS1, REJECTED, build_report, print_report, write_plots  # noqa: F401 - print_report is the CLI's
from .select import choose, cutoffs, draw, pass_rates
from .ui import console, plural

STAGE = "filtered"
KEYS = "keys"
REQUIRED = ("id", "sample_idx", "problem", "completion")
DEFAULTS = {"answer": None, "source": "unknown", "domain": "math", "finish_reason": None, "teacher": None,
            "prompt_tokens": None, "completion_tokens": None, "gen_config": None, "choices": None, "tests": None}
# beside each candidate shard: every row's dedup key and quota draw, for the second pass
KEY_SCHEMA = pa.schema([("_key", pa.int64()), ("_draw", pa.int64())])
# the filter settings the verifiers read, sent to the workers with the rows
OPTION_KEYS = ("require_think", "reject_truncated", "timeout", "language_threshold", "repetition_ngram",
               "repetition_threshold", "min_tokens", "max_tokens", "code_timeout", "code_memory_mb",
               "code_sandbox")


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


def _check_columns(path: Path, names: list[str]) -> None:
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise UserError(
            f"{path}: missing column '{missing[0]}'; trace shards need at least {', '.join(REQUIRED)}"
        )


def _text(value):
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # an answer column read as numbers: 27.0 is "27"
    if isinstance(value, (dict, list)):
        return json.dumps(value)  # e.g. `tests` stored as a struct
    return str(value)


def _conform(table: pa.Table, path: Path) -> pa.Table:
    """Traces from elsewhere come with their own column types (a numeric `answer`, `tests` as a
    struct, `choices` as a JSON string, token counts as text): bring them to the trace schema, or
    name the column that cannot be."""
    for field in schema.TRACE:
        if field.name not in table.column_names:
            continue
        column = table.column(field.name)
        if column.type == field.type or (pa.types.is_integer(field.type) and pa.types.is_integer(column.type)):
            continue
        values = column.to_pylist()
        try:
            if pa.types.is_integer(field.type):
                values = [None if v is None else int(str(v).strip()) if isinstance(v, str) else int(v) for v in values]
            elif pa.types.is_list(field.type):
                values = [json.loads(v) if isinstance(v, str) else v for v in values]
                values = [None if v is None else [_text(x) for x in v] for v in values]
            else:
                values = [_text(v) for v in values]
            array = pa.array(values, field.type)
        except (ValueError, TypeError, pa.ArrowException):
            want = {"int32": "whole numbers", "string": "text"}.get(str(field.type), "a list of strings")
            raise UserError(f"{path}: column '{field.name}' must hold {want} (has {column.type})") from None
        table = table.set_column(table.column_names.index(field.name), field.name, array)
    return table


def _read_traces(path: Path) -> list[dict]:
    table = shards.read_file(path)
    _check_columns(path, table.column_names)
    rows = _conform(table, path).to_pylist()
    for row in rows:
        for key, default in DEFAULTS.items():
            row.setdefault(key, default)
    return rows


def check_config(recipe: Recipe) -> None:
    """Fail on a bad filter section before any stage runs (not after hours of generation)."""
    cfg = recipe.filter
    for name in cfg.verifiers:
        if name not in verify.VERIFIERS:
            raise ConfigError(f"filter.verifiers: unknown verifier '{name}' (known: {', '.join(verify.VERIFIERS)})")
    for group, value in cfg.quotas.items():
        if isinstance(value, float) and value < 1 and cfg.target is None:
            raise ConfigError(f"filter.quotas.{group} is a share of target ({value}): set filter.target too")
    for i, source in enumerate(cfg.decontaminate):
        path = source.path or source.card.path
        if path and not Path(path).expanduser().is_file():
            raise ConfigError(f"filter.decontaminate.{i}: {path}: no such file (benchmark '{source.card.name}')")
    code = [s.card.name for s in recipe.data if s.card.domain == "code"]
    if "code" in cfg.verifiers and code:  # `distill run` learns it before generating
        _need_sandbox(cfg, f"the code rows of dataset card '{code[0]}'")
    if cfg.near_dedup is not None:
        try:
            import datasketch  # noqa: F401
        except ImportError:
            raise ConfigError("filter.near_dedup needs datasketch: pip install datasketch") from None


def _check_sandbox(cfg: FilterConfig, files: list[Path]) -> None:
    """Code rows run generated programs: refuse them, before any work, where the sandbox cannot
    be made, unless the recipe chose to run them unisolated."""
    if "code" not in cfg.verifiers:
        return
    code_rows = 0
    for f in files:
        if "domain" in shards.open_file(f).schema_arrow.names:
            code_rows += sum(d == "code" for d in shards.read_file(f, ["domain"]).column("domain").to_pylist())
    if code_rows:
        _need_sandbox(cfg, plural(code_rows, "code row"))


def _need_sandbox(cfg: FilterConfig, what: str) -> None:
    from .verify.sandbox import unavailable

    why = unavailable(cfg.code_sandbox)
    if why:
        raise ConfigError(f"filter: {what} to run in a sandbox, but {why}; "
                          f"or set filter.code_sandbox=unsafe-no-isolation to run generated code unisolated")


# What isolated verifiers may read; the raw completion and the rest of the row stay here.
PAYLOAD = ("id", "problem", "answer", "reasoning", "response", "domain", "choices", "tests", "finish_reason", "think",
           "completion_tokens")


def _payload(row: dict) -> dict:
    return {k: row.get(k) for k in PAYLOAD}


def _row_timeout(row: dict, names: tuple[str, ...], options: dict) -> float | None:
    """Code rows run every test in a fresh process: their limit grows with the number of tests."""
    if "code" not in names:
        return None
    try:
        spec = json.loads(row.get("tests") or "{}")
        cases = len(spec.get("inputs") or []) or 1
    except (ValueError, AttributeError):
        cases = 1
    return max(options["timeout"], cases * options["code_timeout"] + 5)


def _inline_checks(rows: list[dict], names: tuple[str, ...], options: dict,
                   verdicts: list[verify.Verdict | None]) -> set[int]:
    """Run the verifiers that are cheap enough for this process; return the rows that still need
    the isolated verifiers of the pool. Rows with a verdict already (say, contaminated) are left."""
    inline = [n for n in names if not verify.VERIFIERS[n].isolated]
    isolated = [n for n in names if verify.VERIFIERS[n].isolated]
    for i, row in enumerate(rows):
        if "think" not in row:
            row["reasoning"], row["response"], row["think"] = split_think(row["completion"] or "")
        if verdicts[i] is None:
            verdicts[i] = verify.run(inline, row, options)
    return {i for i, row in enumerate(rows) if verdicts[i].ok and any(verify.applies(n, row) for n in isolated)}


def _tasks(key, rows: list[dict], pending: set[int], names: tuple[str, ...], options: dict):
    """The pool's tasks for `rows`: ((key, row index), verifiers, payload, options, timeout)."""
    isolated = [n for n in names if verify.VERIFIERS[n].isolated]
    for i in sorted(pending):
        mine = tuple(n for n in isolated if verify.applies(n, rows[i]))
        yield (key, i), mine, _payload(rows[i]), options, _row_timeout(rows[i], mine, options)


def _verify_shard(rows: list[dict], names: tuple[str, ...], options: dict, pool) -> list[verify.Verdict]:
    """Every verdict for one shard's rows: cheap checks inline, the rest through the pool."""
    verdicts: list[verify.Verdict | None] = [None] * len(rows)
    pending = _inline_checks(rows, names, options, verdicts)
    if pending:
        for (_, i), verdict in pool.imap(_tasks(0, rows, pending, names, options)):
            verdicts[i] = verdict
            pending.discard(i)
    if pending:  # fail closed: a row nobody verified is never kept as verified
        raise RuntimeError(f"the verifier pool returned no verdict for {len(pending)} rows")
    return verdicts


def run_filter(recipe: Recipe, source: Path, out: Path, rank: int = 0, world_size: int = 1) -> dict:
    """Verify and select the traces in `source`; write `out/filtered` (kept, rejected, report)."""
    try:
        return _run_filter(recipe, source, out, rank, world_size)
    finally:
        runfolder.release(Path(out), "filter")


def _run_filter(recipe: Recipe, source: Path, out: Path, rank: int, world_size: int) -> dict:
    cfg = recipe.filter
    check_config(recipe)
    runfolder.check_scale_out(rank, world_size)
    data = shards.input_folder(source, "traces", "generate")
    files = shards.list_files(data)
    if not files:
        raise UserError(f"{data}: no Parquet files to filter")
    for f in files:  # every input readable, with the columns a trace needs, before any work
        _check_columns(f, shards.open_file(f).schema_arrow.names)
    _check_sandbox(cfg, files)
    stage = Path(out) / STAGE
    pass1 = stage / PASS1
    if shards.is_complete(stage):
        runfolder.claim(Path(out), recipe, "filter", started=True)
        _claim_inputs(stage, data, files, None)
        return _finished(stage)
    # the benchmarks load (hub or file) before anything is written, so a bad one costs nothing
    contamination = load_contamination(cfg.decontaminate, cfg.decontaminate_ngram)
    done1 = shards.forget_missing(
        pass1, lambda i: [pass1 / folder / shards.shard_name(i) for folder in (CANDIDATES, KEYS, REJECTED)]
    )
    done2 = shards.forget_missing(
        stage, lambda i: [stage / shards.DATA / shards.shard_name(i), stage / REJECTED / shards.shard_name(i)]
    )
    runfolder.claim(Path(out), recipe, "filter", started=bool(done1 or done2))
    _claim_inputs(stage, data, files, done1 | done2)
    shards.clean_temp(stage)
    # pass 2 reads every file's candidates, so pass 1 is redone for any file whose candidates are
    # gone (only a hand-edited folder gets here: they are removed after the manifest is written)
    todo = [i for i in range(len(files)) if i % world_size == rank and i not in done1]
    if todo:
        console.print(f"filter: {plural(len(files), 'trace file')} ({len(files) - len(todo)} done or elsewhere) "
                      f"with {', '.join(cfg.verifiers)}")
        _first_pass(files, todo, pass1, cfg, contamination)
    everything = set(range(len(files)))
    if not everything <= shards.done(pass1):
        if shards.is_complete(stage):  # another rank finished the stage meanwhile
            return _finished(stage)
        return {"complete": False, "files": len(files), "files_done": len(shards.done(pass1))}
    with _exclusive(stage / "_pass2.lock") as mine:
        if not mine:  # several ranks finished pass 1 at once: one of them writes pass 2
            return {"complete": False, "files": len(files), "files_done": len(files), "finishing_elsewhere": True}
        if shards.is_complete(stage):
            return _finished(stage)
        _second_pass(stage, len(files), cfg)
        report = build_report(stage, cfg)
        report["plots"] = write_plots(stage)
        shards.write_json(stage / "report.json", report)
        shards.write_card(stage, "distill filtered traces", {"default": shards.DATA, "rejected": REJECTED},
                          f"{report['kept']} of {report['rows_in']} rows kept; see report.json.")
        shards.write_json(stage / shards.MANIFEST, {"stage": "filter", "inputs": [str(f) for f in files],
                                                    "counts": {k: report[k] for k in ("rows_in", "kept", "rejected")}})
        shutil.rmtree(pass1, ignore_errors=True)  # everything in it is in data/ and rejected/ now
        (stage / "_pass2.lock").unlink(missing_ok=True)
    return {"complete": True, **report}


def _finished(stage: Path) -> dict:
    # a process with the same settings may have written pass-1 files after the finisher removed
    # them: whoever sees the stage complete removes what is left, so nothing stray remains
    shutil.rmtree(stage / PASS1, ignore_errors=True)
    return {"complete": True, **json.loads((stage / "report.json").read_text())}


@contextmanager
def _exclusive(path: Path):
    """An advisory lock held while this process finishes the stage; released when it exits,
    however it exits, so a killed finisher never blocks the rerun."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _claim_inputs(stage: Path, data: Path, files: list[Path], done: set[int] | None) -> None:
    """Output shard i belongs to input file i: the inputs (names, and sizes of the files already
    done) may not change under a resume, nor may a finished stage be taken for the filtering of
    other traces. `done`: the files done (None: all of them). A file not done yet may be fixed
    (say, re-encoded after a one-line error) before the rerun."""
    path = stage / INPUTS
    inputs = [[str(f.relative_to(data)) if f != data else f.name, f.stat().st_size] for f in files]
    if done != set() and path.is_file():
        stored = json.loads(path.read_text())
        same = len(stored) == len(inputs) and all(
            a[0] == b[0] and (a[1] == b[1] or (done is not None and i not in done))
            for i, (a, b) in enumerate(zip(stored, inputs)))
        if not same:
            raise UserError(f"{stage}: filtered other trace files than {data} (or they changed since); use a new --out")
    shards.write_json(path, inputs)


# ---------------------------------------------------------------- pass 1: per file


class _FileWork:
    """One input file in flight through pass 1: its rows, their verdicts so far, and the rows
    still out at the pool."""

    def __init__(self, path: Path, index: int, rows: list[dict], verdicts: list, pending: set[int]) -> None:
        self.path, self.index, self.rows, self.verdicts, self.pending = path, index, rows, verdicts, pending


def _first_pass(files: list[Path], todo: list[int], pass1: Path, cfg: FilterConfig, contamination) -> None:
    """Verify and select every file in `todo`. The pool sees one stream of rows across files:
    while the parent writes file k's results and reads file k+1, the workers are still busy with
    the rows queued ahead, instead of idling at every file boundary."""
    options = {k: getattr(cfg, k) for k in OPTION_KEYS}
    if contamination is not None:
        console.print(f"  decontaminating against {plural(contamination.problems, 'benchmark problem')} "
                      f"({', '.join(s.card.name for s in cfg.decontaminate)}), {cfg.decontaminate_ngram}-grams")
    needs_pool = any(verify.VERIFIERS[n].isolated for n in cfg.verifiers)
    if not needs_pool:
        for index in todo:
            if index not in shards.done(pass1) and not shards.is_complete(pass1.parent):
                _finish_file(_prepare_file(files[index], index, cfg, options, contamination), pass1, cfg)
        return
    from .verify.pool import VerifyPool

    in_flight: dict[int, _FileWork] = {}
    answered: list[_FileWork] = []  # files with every verdict in, to be written
    failed: list[UserError] = []  # a file that cannot be read: the files before it finish first

    def tasks():
        for index in todo:
            if index in shards.done(pass1) or shards.is_complete(pass1.parent):
                continue  # a process with the same settings got here first
            try:
                work = _prepare_file(files[index], index, cfg, options, contamination)
            except UserError as e:
                failed.append(e)
                return
            if work.pending:
                in_flight[index] = work
                yield from _tasks(index, work.rows, work.pending, cfg.verifiers, options)
            else:
                answered.append(work)

    with VerifyPool(cfg.workers, cfg.timeout) as pool:
        for (index, i), verdict in pool.imap(tasks()):
            work = in_flight[index]
            work.verdicts[i] = verdict
            work.pending.discard(i)
            if not work.pending:
                answered.append(in_flight.pop(index))
            while answered:
                _finish_file(answered.pop(0), pass1, cfg)
    while answered:
        _finish_file(answered.pop(0), pass1, cfg)
    if failed:
        raise failed[0]
    if in_flight:  # fail closed: a row nobody verified is never kept as verified
        missing = sum(len(w.pending) for w in in_flight.values())
        raise RuntimeError(f"the verifier pool returned no verdict for {missing} rows")


def _prepare_file(path: Path, index: int, cfg: FilterConfig, options: dict, contamination) -> _FileWork:
    """Read one input file; decontaminate and run the inline checks."""
    rows = _read_traces(path)
    names = cfg.verifiers
    verdicts: list[verify.Verdict | None] = [None] * len(rows)
    for i, row in enumerate(rows):
        row["reasoning"], row["response"], row["think"] = split_think(row["completion"] or "")
        row["verifier"] = ",".join(n for n in names if verify.applies(n, row))
        missing = next((k for k in ("id", "sample_idx", "problem") if row[k] is None), None)
        if missing:  # rejected with its reason (the report counts it), never kept nor a traceback
            verdicts[i] = verify.Verdict(False, f"no_{missing}")
            continue
        if contamination is not None:
            benchmark = contamination.match(row["problem"] or "")
            if benchmark is not None:
                verdicts[i] = verify.Verdict(False, "contaminated")
                row["verifier"] = f"decontaminate:{benchmark}"
    pending = _inline_checks(rows, names, options, verdicts)
    return _FileWork(path, index, rows, verdicts, pending)


def _finish_file(work: _FileWork, pass1: Path, cfg: FilterConfig) -> None:
    """Pass rates and selection for one fully verified file; write its pass-1 shards."""
    rows, verdicts, index = work.rows, work.verdicts, work.index
    ok = [v.ok for v in verdicts]
    rates = pass_rates(rows, ok)
    keep = choose(rows, ok, cfg.select, cfg.select_k)
    candidates, rejected = [], []
    for row, verdict, rate, kept in zip(rows, verdicts, rates, keep):
        row["extracted_answer"] = verdict.extracted
        row["pass_rate"] = rate
        if kept:
            row["messages"] = messages_for(row)
            row["_key"] = exact_key(row["problem"] or "", row["completion"] or "") if cfg.dedup else 0
            row["_draw"] = draw(cfg.seed, row["id"], row["sample_idx"])
            candidates.append(row)
        else:
            row["reject_reason"] = verdict.reason if not verdict.ok else "not_selected"
            rejected.append(row)
    shards.write_table(pass1 / CANDIDATES / shards.shard_name(index), schema.table(candidates, schema.FILTERED))
    shards.write_table(pass1 / KEYS / shards.shard_name(index), schema.table(candidates, KEY_SCHEMA))
    shards.write_table(pass1 / REJECTED / shards.shard_name(index), schema.table(rejected, schema.REJECTED))
    shards.mark_done(pass1, index)
    console.print(f"  {work.path.name}: {len(candidates)} verified and selected, {len(rejected)} rejected")


# ---------------------------------------------------------------- pass 2: across files


NEAR, DUPLICATE = 1, 2  # decision codes in pass 2 (0: unique)
REASONS = {NEAR: "near_duplicate", DUPLICATE: "duplicate"}


def _scan(pass1: Path, n_files: int, cfg: FilterConfig):
    """Dedup decisions per candidate (in file order) and the quota cut-offs. Holds a few bytes a
    row (key, draw, decision code), never the rows: flat in the size of the data."""
    import numpy as np

    near = NearDuplicates(cfg.near_dedup) if cfg.near_dedup is not None else None
    group = cfg.quota_by
    keys, values, codes, group_ids = [], [], [], []
    names: dict[str, int] = {}
    for index in range(n_files):
        columns = ["id", group] + (["problem"] if near is not None else [])
        table = shards.read_file(pass1 / CANDIDATES / shards.shard_name(index), columns)
        numbers = shards.read_file(pass1 / KEYS / shards.shard_name(index))
        keys.append(numbers.column("_key").to_numpy())
        values.append(numbers.column("_draw").to_numpy())
        groups = [str(g) for g in table.column(group).to_pylist()]
        group_ids.append(np.array([names.setdefault(g, len(names)) for g in groups], dtype=np.int32))
        code = np.zeros(table.num_rows, dtype=np.uint8)
        if near is not None:
            ids, problems = table.column("id").to_pylist(), table.column("problem").to_pylist()
            code[[near.check(i, p or "") for i, p in zip(ids, problems)]] = NEAR
        codes.append(code)
    sizes = [len(k) for k in keys]
    all_codes = np.concatenate(codes) if codes else np.zeros(0, dtype=np.uint8)
    if cfg.dedup and len(all_codes):
        first = np.zeros(len(all_codes), dtype=bool)
        first[np.unique(np.concatenate(keys), return_index=True)[1]] = True  # the earliest of each key stays
        all_codes[(~first) & (all_codes == 0)] = DUPLICATE
    del keys
    unique = all_codes == 0
    all_values, all_groups = np.concatenate(values), np.concatenate(group_ids)
    draws = {g: all_values[unique & (all_groups == i)] for g, i in names.items()}
    caps, overall = cutoffs(draws, cfg.quotas, cfg.target)
    return np.split(all_codes, np.cumsum(sizes)[:-1]), caps, overall


def _second_pass(stage: Path, n_files: int, cfg: FilterConfig) -> None:
    import numpy as np

    pass1 = stage / PASS1
    todo = [i for i in range(n_files) if i not in shards.done(stage)]
    if not todo:
        return
    decisions, caps, overall = _scan(pass1, n_files, cfg)
    group = cfg.quota_by
    for index in todo:
        name = shards.shard_name(index)
        codes = decisions[index]
        draws = shards.read_file(pass1 / KEYS / name).column("_draw").to_numpy()
        table = shards.read_file(pass1 / CANDIDATES / name, [group])
        groups = np.array([str(g) for g in table.column(group).to_pylist()], dtype=object)
        over = np.zeros(table.num_rows, dtype=bool)
        for g, cap in caps.items():
            if cap is not None:
                over |= (groups == g) & (draws > cap)
        if overall is not None:
            over |= draws > overall
        reason = np.where(codes == NEAR, REASONS[NEAR], np.where(codes == DUPLICATE, REASONS[DUPLICATE],
                                                                  np.where(over, "over_quota", "")))
        keep = reason == ""
        if keep.all():  # nothing more goes: the first pass's files are the final ones
            shards.link_file(pass1 / CANDIDATES / name, stage / shards.DATA / name)
            shards.link_file(pass1 / REJECTED / name, stage / REJECTED / name)
            shards.mark_done(stage, index)
            continue
        table = shards.read_file(pass1 / CANDIDATES / name)
        kept = table.filter(pa.array(keep))
        dropped = table.filter(pa.array(~keep))
        dropped = dropped.append_column("reject_reason", pa.array(reason[~keep].tolist(), pa.string()))
        earlier = shards.read_file(pass1 / REJECTED / name)
        rejected = pa.concat_tables([earlier, dropped.select(schema.REJECTED.names).cast(schema.REJECTED)])
        shards.write_table(stage / shards.DATA / name, kept)
        shards.write_table(stage / REJECTED / name, rejected)
        shards.mark_done(stage, index)
