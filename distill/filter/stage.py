"""run_filter(): trace shards → verifiers → decontamination → selection → dedup → quotas →
kept shards with `messages`, rejected shards with `reject_reason`, report.json (DESIGN §2–3).

Two passes, both streaming shard by shard and both resumable:

1. per input file (split over `--rank/--world-size`): decontaminate, verify, compute each
   problem's pass rate, select samples per problem. Survivors go to `_pass1/candidates/` (their
   dedup keys and quota draws to `_pass1/keys/`), the rest to `_pass1/rejected/`, then the file
   is marked done in `_pass1/_done/`. This process reads only small columns (ids, sample
   indices, problems when decontaminating) and keeps the verdicts; the verifier workers read
   the rows themselves, 64 at a time, and write each file's shards (distill/filter/filterwork.py).
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
from pathlib import Path

import pyarrow as pa

from . import filterwork
from .. import runfolder, shards, verify
from ..config import FilterConfig, Recipe
from .dedup import load_contamination
from ..errors import ConfigError, UserError
from .filterwork import KEYS, messages_for  # noqa: F401 - messages_for: part of this module's face
from .report import CANDIDATES, INPUTS, PASS1, REJECTED, build_report, prepare_plots, print_report, write_plots  # noqa: F401 - print_report is the CLI's
from .pass2 import _second_pass
from .select import choose, pass_rates
from ..ui import Countdown, console, plural
from ..verify.shard import OPTION_KEYS

STAGE = "filtered"


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
    from ..verify.sandbox import unavailable

    why = unavailable(cfg.code_sandbox)
    if why:
        raise ConfigError(f"filter: {what} to run in a sandbox, but {why}; "
                          f"or set filter.code_sandbox=unsafe-no-isolation to run generated code unisolated")


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
        filterwork.check_columns(f, shards.open_file(f).schema_arrow.names)
    _check_sandbox(cfg, files)
    stage = Path(out) / STAGE
    pass1 = stage / PASS1
    if shards.is_complete(stage):
        runfolder.claim(Path(out), recipe, "filter", started=True)
        _claim_inputs(stage, data, files, None)
        return _finished(stage)
    if any(verify.VERIFIERS[n].isolated for n in cfg.verifiers):
        from ..verify.pool import start_server

        start_server(filterwork.__name__)  # its imports (math-verify, sympy) load while this process sets up
    prepare_plots()  # matplotlib loads in a thread while the workers verify, not after them
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
        reasoning: dict = {}
        report = build_report(stage, cfg, reasoning)
        report["plots"] = write_plots(stage, reasoning)
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


RANGE = 64  # rows per job: enough to make handing it out cheap, few enough to keep both workers busy
WRITE_TIMEOUT = 600.0  # seconds for a worker to write one file's pass-1 shards


class _File:
    """One input file in flight through pass 1, as the filter process holds it: a few small
    columns per row and the verdicts so far, never the text of a completion."""

    def __init__(self, path: Path, index: int, table: pa.Table, contaminated: dict[int, str]) -> None:
        self.path, self.index, self.contaminated = path, index, contaminated
        self.rows = table.num_rows
        # what pass rates and selection need: problem id, sample index, completion length
        self.keys = [{"id": i, "sample_idx": s, "completion_tokens": t} for i, s, t in
                     zip(table.column("id").to_pylist(), table.column("sample_idx").to_pylist(),
                         table.column("tokens").to_pylist())]
        self.verdicts: list = [None] * self.rows
        for i in contaminated:
            self.verdicts[i] = (False, "contaminated", None)
        self.pending = self.rows - len(contaminated)

    def jobs(self, names: tuple[str, ...], options: dict):
        from ..verify.wire import Job

        for start in range(0, self.rows, RANGE):
            stop = min(self.rows, start + RANGE)
            skip = frozenset(i for i in self.contaminated if start <= i < stop)
            if len(skip) < stop - start:
                yield Job(self.index, "verify", (str(self.path), names, options, skip), start, stop)

    def answer(self, row: int, value) -> None:
        """Record what the pool answered for a row: a verdict tuple, or a Verdict of its own."""
        if row in self.contaminated or value is None:
            return
        if isinstance(value, str):  # a user mistake met in the worker (say, a column's type)
            raise UserError(value)
        if isinstance(value, verify.Verdict):  # timeout, crashed
            value = (value.ok, value.reason, value.extracted)
        if self.verdicts[row] is None:
            self.pending -= 1
        self.verdicts[row] = value

    def write_args(self, pass1: Path, cfg: FilterConfig) -> tuple:
        """Pass rates and the per-problem choice, then what a worker needs to write the file."""
        ok = [v[0] for v in self.verdicts]
        rates = pass_rates(self.keys, ok)
        keep = choose(self.keys, ok, cfg.select, cfg.select_k)
        return (str(self.path), self.index, str(pass1), cfg.verifiers, self.verdicts, rates, keep,
                self.contaminated, cfg.dedup, cfg.seed)


def _open_file(path: Path, index: int, cfg: FilterConfig, contamination) -> _File:
    """The small columns of one input file; its contaminated rows decided here."""
    import pyarrow.compute as pc

    names = shards.open_file(path).schema_arrow.names
    columns = ["id", "sample_idx"] + ["problem"] * (contamination is not None)
    if cfg.select == "shortest":  # a length per row: the teacher's count, else characters / 4
        columns += [c for c in ("completion_tokens", "completion") if c in names]
    table = filterwork.conform(shards.read_file(path, columns), path)
    tokens = pa.nulls(table.num_rows, pa.int64())
    if cfg.select == "shortest":
        estimate = pc.divide(pc.fill_null(pc.utf8_length(table.column("completion")), 0), 4)
        given = table.column("completion_tokens") if "completion_tokens" in table.column_names else tokens
        tokens = pc.coalesce(pc.cast(given, pa.int64()), pc.cast(estimate, pa.int64()))
    table = table.append_column("tokens", tokens)
    contaminated: dict[int, str] = {}
    if contamination is not None:
        for i, problem in enumerate(table.column("problem").to_pylist()):
            benchmark = contamination.match(problem or "")
            if benchmark is not None:
                contaminated[i] = benchmark
    return _File(path, index, table, contaminated)


def _first_pass(files: list[Path], todo: list[int], pass1: Path, cfg: FilterConfig, contamination) -> None:
    """Verify and select every file in `todo`. The workers read the rows of each file in ranges
    and verify them, and write each file's shards once the filter process has its verdicts and
    has chosen what to keep; the pool sees one stream of jobs across files, so no worker idles
    at a file boundary."""
    options = {k: getattr(cfg, k) for k in OPTION_KEYS}
    if contamination is not None:
        console.print(f"  decontaminating against {plural(contamination.problems, 'benchmark problem')} "
                      f"({', '.join(s.card.name for s in cfg.decontaminate)}), {cfg.decontaminate_ngram}-grams")
    clock = Countdown(len(todo), "files")

    def taken(index: int) -> bool:  # a process with the same settings got here first
        return index in shards.done(pass1) or shards.is_complete(pass1.parent)

    if not any(verify.VERIFIERS[n].isolated for n in cfg.verifiers):
        for index in todo:  # nothing that needs a worker: the same work, in this process
            if taken(index):
                continue
            work = _open_file(files[index], index, cfg, contamination)
            for job in work.jobs(cfg.verifiers, options):
                answers = []
                filterwork.run_job(job.fn, job.args, job.start, job.stop, answers.append)
                for row, value in zip(range(job.start, job.stop), [a for a in answers if not isinstance(a, float)]):
                    work.answer(row, value)
            _written(work, *filterwork.write_file(*work.write_args(pass1, cfg)), pass1, clock)
        return
    from ..verify.wire import Job
    from ..verify.pool import VerifyPool

    in_flight: dict[int, _File] = {}
    answered: list[_File] = []  # files with every verdict in, to be written
    failed: list[UserError] = []  # a file that cannot be read: the files before it are written first

    def tasks():
        for index in todo:
            if failed:
                break
            if taken(index):
                continue
            try:
                work = _open_file(files[index], index, cfg, contamination)
            except UserError as e:
                failed.append(e)
                break
            in_flight[index] = work
            if not work.pending:
                answered.append(work)
            for job in work.jobs(cfg.verifiers, options):
                if index not in in_flight:  # its file failed in a worker: no more of it
                    break
                yield job
            while answered:
                yield write(answered.pop(0))
        while in_flight:
            yield write(answered.pop(0)) if answered else None

    def write(work: _File) -> Job:
        return Job(("write", work.index), "write", work.write_args(pass1, cfg), 0, 1, WRITE_TIMEOUT)

    with VerifyPool(cfg.workers, cfg.timeout, jobs=filterwork.__name__) as pool:
        for (key, row), value in pool.imap(tasks()):
            if isinstance(key, tuple):  # a file written (or not)
                work = in_flight.pop(key[1])
                if isinstance(value, str):
                    raise UserError(value)
                if isinstance(value, verify.Verdict):
                    raise RuntimeError(f"writing the filter's pass-1 shards for {work.path} failed ({value.reason})")
                _written(work, *value, pass1, clock)
                continue
            work = in_flight.get(key)
            if work is None:  # a late answer for a file that failed
                continue
            try:
                work.answer(row, value)
            except UserError as e:
                failed.append(e)
                in_flight.pop(key)
                continue
            if not work.pending:
                answered.append(work)
    if failed:
        raise failed[0]
    if in_flight:  # fail closed: a row nobody verified is never kept as verified
        missing = sum(w.pending for w in in_flight.values())
        raise RuntimeError(f"the verifier pool returned no verdict for {missing} rows")


def _written(work: _File, candidates: int, rejected: int, pass1: Path, clock: Countdown) -> None:
    shards.mark_done(pass1, work.index)
    console.print(f"  {clock.tick()} · {work.path.name}: {candidates} kept, {rejected} rejected")
