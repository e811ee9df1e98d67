"""The `distill` command: parse, load the recipe, call a stage function, print the outcome.

Stage modules are imported inside the commands, so `distill --help` never imports torch.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import quiet
from .errors import ConfigError, UserError

quiet.install()  # at import: vLLM's spawned engine processes re-import this module first


class _Flags:
    """Help without typer's type labels where they read as noise: a flag takes no value, so it
    shows none (typer prints `<bool>`), and `--help` is such a flag too. Options with a value
    name it themselves (`metavar=`, e.g. KEY=VALUE), which typer then shows as it is."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if param.metavar is not None or param.param_type_name != "option":
                continue
            # typer shows a metavar as it is: nothing for a flag, a name for a value
            param.metavar = "" if param.is_flag else _METAVARS.get(param.name, param.name.upper())
        return params


# what an option's value is called in --help, as in the README's synopsis (else its name in capitals)
_METAVARS = {"out": "RUN", "limit": "N", "rank": "I", "world_size": "W", "data_parallel": "N", "max_cost": "USD",
             "n": "K", "max_tokens": "T", "num_processes": "N", "sample": "N", "seed": "S", "fmt": "FORMAT",
             "data": "IN", "accelerate": "CONFIG", "push_to_hub": "REPO", "model": "MODEL"}


class _Command(_Flags, typer.core.TyperCommand):
    pass


class _Group(_Flags, typer.core.TyperGroup):
    pass


app = typer.Typer(
    cls=_Group,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Reasoning distillation: a teacher writes chains of thought, verifiers keep the right ones, "
    "a student learns them with SFT.",
)

RecipeOpt = Annotated[str, typer.Option("--recipe", "-r", help="Bundled recipe name (e.g. quickstart) or a .yaml path.")]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", "-s", metavar="KEY=VALUE",
                 help="Override any recipe key: --set generate.n=4, --set filter.workers=8 (repeatable)."),
]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Run folder to write into (created if missing).")]
RankOpt = Annotated[int, typer.Option("--rank", help="This worker's index, for sharded scale-out.")]
WorldOpt = Annotated[int, typer.Option("--world-size", help="Number of workers; this one takes shards i % W == rank.")]


RESUMABLE = "interrupted: finished shards are kept; rerun the same command to resume"
TRAIN_INTERRUPTED = ("interrupted: training keeps a checkpoint every train.save_steps steps; "
                 "rerun the same command with --resume to continue from the last one")


def _guard(fn: Callable[[], None], interrupted: str = RESUMABLE) -> None:
    """Run a command body; user mistakes become one line on stderr and a non-zero exit."""
    try:
        fn()
    except UserError as e:
        message = " ".join(str(e).splitlines())
        sys.stderr.write(f"error: {message}\n")
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        sys.stderr.write(interrupted + "\n")
        raise typer.Exit(130) from None
    except OSError as e:
        if not e.filename or not e.strerror:  # not the file system's word on a path: a bug, shown whole
            raise
        # a full disk, a read-only or vanished folder: what failed where; finished shards are kept
        sys.stderr.write(f"error: {e.filename}: {e.strerror}; {interrupted.removeprefix('interrupted: ')}\n")
        raise typer.Exit(1) from None


def _check_out(out: Path) -> None:
    """The output folder can be made or written: else one line now, not a traceback later."""
    import os

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file; give a folder")
    existing = next(p for p in (out, *out.absolute().parents) if p.exists())  # / always exists
    if not existing.is_dir():
        raise ConfigError(f"--out {out}: {existing} is not a folder; give a folder path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: {existing} is not writable here; give a folder you can write")


def _recipe(name: str | None, sets: list[str] | None, limit: int | None = None):
    from .recipes import load_recipe

    overrides = list(sets or [])
    labels = [f"--set {o}" for o in overrides]
    if limit is not None:
        overrides.append(f"generate.limit={limit}")
        labels.append(f"--limit {limit}")
    return load_recipe(name, overrides, labels)


@app.command(cls=_Command)
def generate(
    recipe: RecipeOpt,
    out: OutOpt,
    limit: Annotated[Optional[int], typer.Option(help="Only the first N prompts.")] = None,
    sets: SetOpt = None,
    rank: RankOpt = 0,
    world_size: WorldOpt = 1,
    data_parallel: Annotated[
        int, typer.Option("--data-parallel", help="Start N engines on this node, each on its own GPUs and shards.")
    ] = 1,
    max_cost: Annotated[Optional[float], typer.Option(
        "--max-cost", help="Served teacher with prices: stop once this much is spent (rerun to go on).")] = None,
) -> None:
    """Have the teacher write traces into OUT/traces (sharded Parquet, resumable)."""

    def body() -> None:
        from .generate.stage import run_generate
        from .ui import console, plural

        _check_out(out)
        overrides = list(sets or []) + ([f"generate.max_cost={max_cost}"] if max_cost is not None else [])
        resolved = _recipe(recipe, overrides, limit)
        if data_parallel != 1:
            from .generate.launch import data_parallel as launch

            if world_size != 1:
                raise ConfigError("--data-parallel and --world-size do not combine; use one of them")
            args = ["--recipe", recipe, "--out", str(out)] + (["--limit", str(limit)] if limit is not None else [])
            launch(args + [a for s in overrides for a in ("--set", s)], data_parallel, resolved.teacher)
        result = run_generate(resolved, out, rank=rank, world_size=world_size)
        if result["complete"]:
            console.print(f"traces: {plural(result['samples'], 'sample')} in {out / 'traces'}")
        else:
            console.print(f"traces: {result['shards_done']}/{result['shards']} shards done (other ranks pending)")

    _guard(body)


@app.command("filter", cls=_Command)
def filter_(
    out: OutOpt,
    source: Annotated[
        Optional[Path], typer.Argument(metavar="IN", help="Run folder, traces/ folder, or any folder of trace "
                                       "Parquet files (default: OUT, whose traces/ generate wrote); with "
                                       "--format/--columns a published dataset (file, folder or hub id).")
    ] = None,
    recipe: Annotated[Optional[str], typer.Option("--recipe", "-r", help="Recipe for filter settings.")] = None,
    sets: SetOpt = None,
    rank: RankOpt = 0,
    world_size: WorldOpt = 1,
    fmt: Annotated[Optional[str], typer.Option("--format", "-f", help="IN is a published trace dataset in this "
                   "layout: openr1-math, openthoughts(-metadata), bespoke-stratos, s1k(-1.1), limo, numina-cot or "
                   "auto; converted into OUT/traces first (docs/published-traces.md).")] = None,
    columns: Annotated[Optional[str], typer.Option("--columns", help="IN's columns for another layout: "
                       "problem=COL,answer=COL,reasoning=COL,response=COL (or completion=COL).")] = None,
    teacher: Annotated[Optional[str], typer.Option("--teacher", help="Teacher recorded for published traces "
                       "(default: the dataset's).")] = None,
    subset: Annotated[Optional[str], typer.Option("--subset", help="Hub dataset config, with --format.")] = None,
    split: Annotated[Optional[str], typer.Option("--split", help="Hub dataset split (default train).")] = None,
) -> None:
    """Verify traces: kept rows with `messages` in OUT/filtered, rejects with their reason."""

    def body() -> None:
        from .filter.stage import print_report, run_filter
        from .ui import console, plural

        _check_out(out)
        resolved, traces = _recipe(recipe, sets), source if source is not None else out
        if source is None and (fmt is not None or columns is not None):
            raise ConfigError("--format and --columns need IN: the published dataset to read")
        if fmt is not None or columns is not None:  # a published dataset: converted first, then filtered unchanged
            from .filter.convert import convert_published

            traces = convert_published(str(source), out, fmt, columns, teacher, subset, split,
                                       resolved.generate.shard_size, resolved.generate.limit)
        elif teacher is not None or subset is not None or split is not None:
            raise ConfigError("--teacher, --subset and --split go with --format NAME or --columns MAP")
        result = run_filter(resolved, traces, out, rank=rank, world_size=world_size)
        if result["complete"]:
            from .filter.report import waste

            print_report(result)
            console.print(f"filtered: {plural(result['kept'], 'row')} in {out / 'filtered' / 'data'}")
            if (line := waste(result, out / "filtered" / "report.json")) is not None:
                raise UserError(line)  # the rows are written; the exit status says they are not worth training on
        else:
            why = "another rank is writing the final shards" if result.get("finishing_elsewhere") else "other ranks pending"
            console.print(f"filtered: {result['files_done']}/{result['files']} files done ({why})")

    _guard(body)


@app.command(cls=_Command)
def train(
    recipe: RecipeOpt,
    out: OutOpt,
    data: Annotated[
        Optional[Path],
        typer.Option("--data", "-d", help="Run folder, filtered/ folder, or Parquet folder with `messages`; "
                     "optional when the recipe names its data (train.data, dataset_name, dataset)."),
    ] = None,
    sets: SetOpt = None,
    merge: Annotated[bool, typer.Option("--merge", help="Also write merged weights to OUT/student/merged.")] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted run from its last checkpoint.")
    ] = False,
    accelerate: Annotated[
        Optional[str],
        typer.Option("--accelerate", help="Multi-GPU: ddp, zero2, zero3, fsdp (bundled) or an accelerate YAML path."),
    ] = None,
    num_processes: Annotated[
        Optional[int], typer.Option("--num-processes", help="Processes (GPUs) for --accelerate; default: the config's.")
    ] = None,
) -> None:
    """Fine-tune the student on verified traces. RECIPE may also be an open-r1 or LLaMA-Factory
    training YAML, read as it is (--set then changes its own keys, e.g. --set max_steps=2)."""

    def body() -> None:
        from .train.stage import run_train
        from .ui import console, plural

        _check_out(out)
        if accelerate is not None:  # the same command, minus these two options, in N processes
            from .train.accelerate_launch import relaunch
            from .train.stage import check_config

            check_config(_recipe(recipe, sets))  # a bad recipe or setting fails here once, not in every process
            args = ["--recipe", recipe, "--out", str(out)] + (["--data", str(data)] if data is not None else [])
            args += [a for s in sets or [] for a in ("--set", s)]
            args += ["--merge"] * merge + ["--resume"] * resume
            relaunch(accelerate, num_processes, args)
            return
        if num_processes is not None:
            raise ConfigError("--num-processes needs --accelerate CONFIG (ddp, zero2, zero3, fsdp or a YAML path)")

        summary = run_train(_recipe(recipe, sets), data, out, merge=merge, resume=resume)
        from .train.accelerate_launch import is_main_process

        if not is_main_process():  # one of N processes under accelerate: rank 0 reports
            return
        first, last = summary["loss_first"], summary["loss_last"]
        loss = f"{first:.3f} → {last:.3f}" if first is not None else "n/a"
        console.print(f"student: {plural(summary['steps'], 'step')}, loss {loss}, saved in {out / 'student'}")

    _guard(body, TRAIN_INTERRUPTED)


@app.command(cls=_Command)
def run(
    recipe: RecipeOpt,
    out: OutOpt,
    limit: Annotated[Optional[int], typer.Option(help="Only the first N prompts.")] = None,
    sets: SetOpt = None,
    merge: Annotated[bool, typer.Option("--merge", help="Also write merged student weights.")] = False,
    max_cost: Annotated[Optional[float], typer.Option(
        "--max-cost", help="Served teacher with prices: stop generating once this much is spent.")] = None,
) -> None:
    """Run generate → filter → train (→ eval, when the recipe names benchmarks) into OUT, skipping
    stages that are already complete."""

    def body() -> None:
        from .pipeline import print_summary, run_pipeline

        _check_out(out)
        overrides = list(sets or []) + ([f"generate.max_cost={max_cost}"] if max_cost is not None else [])
        results = run_pipeline(_recipe(recipe, overrides, limit), out, merge=merge)
        print_summary(results, out)

    _guard(body, RESUMABLE + " (training continues from its last checkpoint)")


@app.command("eval", cls=_Command)
def eval_(
    model: Annotated[str, typer.Option(
        "--model", "-m", help="Model folder, LoRA adapter folder (RUN/student), run folder, teacher/student card, or hub id.")],
    benchmark: Annotated[list[str], typer.Option(
        "--benchmark", "-b", metavar="NAME[,NAME...]",
        help="aime24, aime25, amc23, math500, gpqa-diamond, gsm8k-test, any dataset card (`distill cards datasets`, "
        "e.g. arithmetic-test) or a card file (my-bench.yaml: name, path or hub, domain, columns); comma-separated "
        "or repeated; NAME=FILE reads a local copy.")],
    out: OutOpt,
    n: Annotated[Optional[int], typer.Option("--n", help="Samples per problem (default: per benchmark, e.g. AIME 64).")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Only the first N problems of each benchmark.")] = None,
    backend: Annotated[Optional[str], typer.Option(help="auto, vllm, hf or openai.")] = None,
    max_tokens: Annotated[Optional[int], typer.Option("--max-tokens", help="Most new tokens per sample (default 32768).")] = None,
    sets: Annotated[Optional[list[str]], typer.Option(
        "--set", "-s", metavar="KEY=VALUE",
        help="Override: eval.temperature=0, model.engine.max_model_len=4096, benchmarks.NAME.n=8 (repeatable).")] = None,
) -> None:
    """Score a model on benchmarks the R1 way: pass@1 ± SE over n samples, cons@n (OUT/eval)."""

    def body() -> None:
        from .eval import benchmarks, evalmodel
        from .eval.stage import plan, run_eval
        from .eval.evalscore import print_scores

        _check_out(out)
        for flag, value in (("--n", n), ("--limit", limit), ("--max-tokens", max_tokens)):
            if value is not None and value < 1:
                raise ConfigError(f"{flag} must be at least 1, got {value}")
        specs = benchmarks.parse(benchmark)
        flags = {"n": n, "limit": limit, "backend": backend, "max_tokens": max_tokens}
        p = plan(evalmodel.resolve(model), specs, flags, list(sets or []))
        print_scores(run_eval(p, out), out)

    _guard(body)


EXPORT_INTERRUPTED = "interrupted: OUT is as it was (an export moves into place only when whole); rerun the same command"


@app.command(cls=_Command)
def export(
    source: Annotated[Path, typer.Argument(
        metavar="DIR", help="Run folder, its filtered/ or traces/, or any folder of Parquet files.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="jsonl, parquet or hf (datasets.save_to_disk).")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Folder to write: the data, README.md (dataset card) and provenance.json.")],
    rows: Annotated[Optional[str], typer.Option(
        "--rows", help="kept (default: the distilled dataset), rejected (with reject_reason) or traces "
        "(everything the teacher wrote).")] = None,
    push_to_hub: Annotated[Optional[str], typer.Option(
        "--push-to-hub", metavar="REPO", help="Also upload to this hub dataset repo (as Parquet, with the card).")] = None,
    private: Annotated[bool, typer.Option("--private", help="Create the hub repo private.")] = False,
) -> None:
    """Export a run's rows as a dataset with a card that records how they were made."""

    def body() -> None:
        from .look.export import run_export
        from .ui import console

        result = run_export(source, out, fmt, rows=rows, push_to_hub=push_to_hub, private=private)
        what = {"kept": "kept rows", "rejected": "rejected rows", "traces": "trace rows"}.get(result["kind"], "rows")
        files = result["files"][0] if len(result["files"]) == 1 else f"{len(result['files'])} files"
        beside = "README.md, provenance.json" + (", recipe.yaml" if (out / "recipe.yaml").is_file() else "")
        console.print(f"export: {result['rows']} {what} in {out} ({fmt}: {files}, {beside})")
        if result["url"]:
            console.print(f"pushed: {result['url']}")

    _guard(body, EXPORT_INTERRUPTED)


@app.command("inspect", cls=_Command)
def inspect_(
    path: Annotated[Path, typer.Argument(
        metavar="DIR", help="Run folder, or one of its stage folders (traces/, filtered/, student/, eval/).")],
    sample: Annotated[Optional[int], typer.Option(
        "--sample", help="Print N single traces (reasoning and answer apart) instead of the summary.")] = None,
    source: Annotated[Optional[str], typer.Option(
        "--from", help="With --sample: kept, rejected, traces or eval (default: kept, else traces, else eval).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="With --sample: which rows are drawn (same seed, same rows).")] = None,
    full: Annotated[bool, typer.Option("--full", help="With --sample: show long reasoning whole.")] = False,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Write PNG plots to DIR/plots/.")] = True,
) -> None:
    """Summarise a run folder (rows, kept %, reasons, token percentiles, loss, scores) and plot it."""

    def body() -> None:
        if sample is not None:
            from .look.samples import pick, print_samples

            print_samples(*pick(path, sample, source, seed or 0), full=full)
            return
        if source is not None or full or seed is not None:
            raise ConfigError("--from, --seed and --full go with --sample N")
        from .look.inspect import print_summary, summarize
        from .ui import console

        summary = summarize(path)
        print_summary(summary)
        if plots:
            from .plots import write_plots

            # beside a bare folder of shards, never in it: a data/ folder holds Parquet files only
            bare = path.is_dir() and any(path.glob("*.parquet"))
            written = write_plots(summary, (path.parent if bare else path) / "plots")
            if written:
                console.print("plots: " + ", ".join(str(p) for p in written))

    _guard(body)


@app.command(cls=_Command)
def cards(kind: Annotated[Optional[str], typer.Argument(help="teachers, students, datasets or recipes")] = None) -> None:
    """List the bundled cards and recipes."""
    from . import cards as card_lookup
    from .ui import console

    def body() -> None:
        kinds = [kind] if kind else list(card_lookup.KINDS)
        for k in kinds:
            if k not in card_lookup.KINDS:
                raise ConfigError(f"unknown card kind '{k}' (use {', '.join(card_lookup.KINDS)})")
            found = card_lookup.describe(k)
            folders = sorted({str(path.parent) for _, _, path in found})
            console.print(f"[bold]{k}[/] ({', '.join(folders) or 'none bundled'})", soft_wrap=True)
            for name, about, _ in found:
                console.print(f"  {name:<28} {about}", markup=False, soft_wrap=True)

    _guard(body)


def _version(value: bool) -> None:
    if value:
        from . import __version__

        print(f"distill {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = None,
) -> None:
    pass


def main() -> None:
    app()
