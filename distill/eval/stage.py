"""run_eval(): benchmark problems → the model, sampled the R1 paper's way → the filter's own
verifiers → pass@1 ± SE and cons@n per benchmark (DESIGN §1, `evaluate`).

Layout, per benchmark, under OUT/eval/:

    NAME/data/shard-00000.parquet   the samples (trace rows), as `distill generate` writes them
    NAME/_done/00000, NAME/manifest.json
    NAME/scored.parquet             every sample with extracted_answer, correct, reason
    scores.json                     the scores (and the R1 paper's, when the model matches one)
    eval.yaml                       the resolved settings

One engine serves every benchmark. Samples per problem differ by benchmark (64 for AIME, 4 for
MATH-500), while a backend is opened with one `n`; so each problem goes to the backend n times
with n=1, as `ID#k`, which also gives every sample its own seed (vLLM, HTTP): a shard redone
after a kill holds the very samples it would have held. Shards are written, marked and resumed
exactly as generate's; a rerun skips done shards, and a rerun with other settings (model,
sampling, n, prompt) is refused, naming the first changed key.
"""

from __future__ import annotations

import gc
import json
import threading
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

from .. import engines
from ..engines import journal
from . import benchmarks
from .. import schema, shards
from .benchmarks import Benchmark
from ..config import BenchmarkOptions, DatasetCard, EvalConfig, PromptTemplate, R1_USER_TEMPLATE, TeacherCard
from ..errors import ConfigError, UserError
from .evalmodel import EvalModel, model_name
from .evalscore import EVAL, SCORES
from ..ui import console, live_progress, plural

SETTINGS = "eval.yaml"
SPEED_ONLY = ("batch_size", "workers")  # eval keys a rerun may change (runfolder._IGNORED)


@dataclass(frozen=True)
class EvalPlan:
    model: EvalModel
    config: EvalConfig
    benchmarks: tuple[Benchmark, ...]
    backend: str  # the engine, resolved once (auto: an import probe)


def eval_template(card: TeacherCard) -> PromptTemplate:
    """The R1 evaluation prompt: no system prompt, the problem and then "Please reason step by
    step, and put your final answer within \\boxed{}."; a card's forced `<think>` is kept."""
    return PromptTemplate(system=None, user=R1_USER_TEMPLATE, think_prefix=card.template.think_prefix)


def plan(model: EvalModel, specs: list[tuple[str, str | None]], flags: dict, sets: list[str]) -> EvalPlan:
    """Settings from the command line: the model's card (R1 prompt), `eval` flags and `--set`
    overrides on `model.*`, `eval.*` and `benchmarks.NAME.*`, each checked as it is applied."""
    from ..recipes import apply_override, build, to_dict
    from ..errors import unknown_key_error

    raw: dict = {
        "model": to_dict(replace(model.card, template=eval_template(model.card))),
        "eval": {k: v for k, v in flags.items() if v is not None},
        "benchmarks": {name: ({"path": path} if path else {}) for name, path in specs},
    }

    def resolve(source: str) -> tuple[TeacherCard, EvalConfig, dict]:
        for key in raw:
            if key not in ("model", "eval", "benchmarks"):
                raise unknown_key_error(key, ["model", "eval", "benchmarks"], source, "")
        for name in raw["benchmarks"]:
            if name not in dict(specs):
                raise ConfigError(f"{source}: benchmarks.{name} is not one of this run's --benchmark")
        options = {name: build(BenchmarkOptions, value or {}, source, f"benchmarks.{name}")
                   for name, value in raw["benchmarks"].items()}
        config = build(EvalConfig, raw["eval"], source, "eval")
        if config.benchmarks:
            raise ConfigError(f"{source}: eval.benchmarks is for recipes; name benchmarks with --benchmark")
        return build(TeacherCard, raw["model"], source, "model"), config, options

    card, config, options = resolve("distill eval")
    for assignment in sets:
        apply_override(raw, assignment, f"--set {assignment}")
        card, config, options = resolve(f"--set {assignment}")
    return choose(replace(model, card=card), config, [(name, options[name]) for name, _ in specs])


def plan_recipe(model: EvalModel, config: EvalConfig) -> EvalPlan:
    """A recipe's `eval:` section for the model `distill run` trained (the R1 prompt, as always)."""
    card = replace(model.card, template=eval_template(model.card))
    return choose(replace(model, card=card), config, [(b.name, b) for b in config.benchmarks])


def choose(model: EvalModel, config: EvalConfig, specs: list[tuple[str, BenchmarkOptions]]) -> EvalPlan:
    """The plan, once everything that can be checked before any work is checked."""
    card = replace(model.card, engine={**model.card.engine, **config.engine})
    model = replace(model, card=card)
    backend = engines.resolve_name(config.backend, card, "eval backend (--backend)")
    if model.adapter and backend == "openai":
        raise ConfigError("the openai backend cannot apply a LoRA adapter: serve it (`--lora-modules NAME=PATH`) "
                          "and evaluate a card whose model is NAME, or use --backend vllm or hf")
    limit = card.engine.get("max_model_len")
    if backend == "vllm" and isinstance(limit, int) and config.max_tokens >= limit:
        raise ConfigError(f"eval.max_tokens {config.max_tokens} does not fit the engine's max_model_len {limit} "
                          f"(model card '{card.name}'): pass --max-tokens below {limit}, or raise "
                          "--set model.engine.max_model_len")
    return EvalPlan(model, config, pick(config, specs), backend)


def pick(config: EvalConfig, specs: list[tuple[str, BenchmarkOptions]]) -> tuple[Benchmark, ...]:
    """The benchmarks to run: each one's card, local copy, samples per problem and verifier
    checked before any work."""
    from ..recipes import load_card

    chosen = []
    for name, opts in specs:
        bench_card = load_card(DatasetCard, name)
        if opts.path and not Path(opts.path).expanduser().is_file():
            raise UserError(f"{opts.path}: no such file (local copy of benchmark '{name}')")
        chosen.append(Benchmark(
            name=bench_card.name if name.endswith((".yaml", ".yml")) else name,
            card=bench_card,
            n=opts.n or config.n or benchmarks.default_n(name),
            path=opts.path, split=opts.split, limit=opts.limit or config.limit, columns=opts.columns,
        ))
    for bench in chosen:
        bench.verifier  # noqa: B018 - a benchmark nothing can score fails here, before any work
    return tuple(chosen)


def _settings(p: EvalPlan, n: int) -> engines.GenSettings:
    c = p.config
    return engines.GenSettings(
        backend=p.backend, n=n, temperature=c.temperature, top_p=c.top_p,
        max_tokens=c.max_tokens, seed=c.seed, template=p.model.card.template, batch_size=c.batch_size,
        adapter=p.model.adapter,
    )


def gen_config(p: EvalPlan, bench: Benchmark) -> str:
    """What decides a benchmark's samples; recorded on every row and compared on resume."""
    config = json.loads(_settings(p, bench.n).gen_config())
    config.update(model=model_name(p.model), benchmark=bench.name)
    return json.dumps(config, sort_keys=True, ensure_ascii=False)


def _key(bench: Benchmark, index: int) -> int:
    """A shard's number for the backend, stable across runs whatever benchmarks come along (the
    transformers backend seeds each shard from it)."""
    return zlib.crc32(bench.name.encode()) * 1_000_000 + index


def _generate(p: EvalPlan, out: Path, problems: dict[str, list[dict]]) -> None:
    """Every benchmark's samples into its shards, through one engine; done shards are skipped."""
    from ..engines.shardwriter import finish, resume

    teacher = model_name(p.model)
    work: dict[int, tuple[Benchmark, list[dict]]] = {}
    plans = {}
    # once per benchmark, not per shard
    configs = {bench.name: gen_config(p, bench) for bench in p.benchmarks}
    for bench in p.benchmarks:
        stage = out / EVAL / bench.name
        rows = problems[bench.name]
        plans[bench.name] = [rows[i : i + p.config.shard_size] for i in range(0, len(rows), p.config.shard_size)]
        done = shards.forget_missing(stage, lambda i, s=stage: [s / shards.DATA / shards.shard_name(i)])
        resume(stage, done, plans[bench.name], configs[bench.name], " (fewer problems than before: --limit changed?)")
        journal.clean_done(stage, done)
        todo = [i for i in range(len(plans[bench.name])) if i not in done]
        console.print(f"eval: {bench.title}: {plural(len(rows), 'problem')} × {bench.n} "
                      f"({len(done)} of {plural(len(plans[bench.name]), 'shard')} done)")
        for index in todo:
            if _key(bench, index) in work:  # two names with one CRC: never mix their shards
                raise RuntimeError(f"benchmarks '{bench.name}' and '{work[_key(bench, index)][0].name}' share a shard key")
            work[_key(bench, index)] = (bench, plans[bench.name][index])
    if work:
        _run_backend(p, out, work, teacher, configs)
    for bench in p.benchmarks:
        stage = out / EVAL / bench.name
        card = (f"distill eval samples: {bench.title}",
                f"Model: {teacher}. Samples written by `distill eval`; scored.parquet beside "
                "data/ has each one's verdict, ../scores.json the scores.")
        if finish(stage, plans[bench.name], configs[bench.name], teacher, 0, command="eval", card=card)["complete"]:
            journal.tidy(stage)
    journal.tidy(out / EVAL)  # batch mode's record, once nothing is pending


def _run_backend(p: EvalPlan, out: Path, work: dict, teacher: str, configs: dict[str, str]) -> None:
    from ..engines.shardwriter import write_shard

    settings = _settings(p, 1)
    lock = threading.Lock()
    expanded = {key: [{**row, "id": f"{row['id']}#{k}"} for row in rows for k in range(bench.n)]
                for key, (bench, rows) in work.items()}
    total = sum(len(rows) for rows in expanded.values())
    console.print(f"eval: {plural(total, 'sample')} to generate with {settings.backend} on {p.model.card.name}"
                  + (f" + adapter {p.model.adapter}" if p.model.adapter else ""))
    run = engines.open_backend(p.model.card, settings)
    with live_progress(total, total, settings.max_tokens) as progress:

        def on_shard(key: int, samples: list[dict]) -> None:
            bench, rows = work[key]
            index = key % 1_000_000
            config = configs[bench.name]
            out_rows = []
            for s in samples:
                j, k = divmod(s["prompt_index"], bench.n)
                extra = {f: v for f, v in s.items() if f not in ("prompt_index", "sample_idx")}
                out_rows.append({**rows[j], **extra, "sample_idx": k, "teacher": teacher, "gen_config": config})
            write_shard(out / EVAL / bench.name, index, out_rows, rows, bench.n)
            with lock:
                head = f"  {bench.name} shard {index + 1} written · "
                console.print(progress.report(head))

        keep = _Journals(out, work, configs)
        try:
            if getattr(run, "journals", False):  # each answer kept as it arrives, as generate does
                run(((key, expanded[key]) for key in sorted(work)), progress, on_shard, keep)
            else:
                run(((key, expanded[key]) for key in sorted(work)), progress, on_shard)
        finally:
            del run
            gc.collect()  # the transformers model goes before the verifier workers start


class _Journals:
    """generate's per-shard journals for eval's shards: each in its benchmark's stage folder,
    under that benchmark's generation config (a backend's own records go to eval/_journal)."""

    rank = 0

    def __init__(self, out: Path, work: dict, configs: dict[str, str]) -> None:
        self.out, self.work, self.configs = out, work, configs
        self.folder = out / EVAL / journal.FOLDER

    def open(self, key: int, prompts: list[dict]) -> journal.ShardJournal:
        bench, _ = self.work[key]
        return journal.ShardJournal(self.out / EVAL / bench.name, key % 1_000_000, prompts, self.configs[bench.name])


def run_eval(p: EvalPlan, out: Path, problems: dict[str, list[dict]] | None = None) -> dict:
    """Evaluate `p.model` on `p.benchmarks` into `out/eval`; resumable shard by shard.
    `problems`: each benchmark's rows when the caller loaded them already."""
    from .evalscore import score_all

    out = Path(out)
    if problems is None:  # all load before any work
        problems = {bench.name: benchmarks.problems(bench) for bench in p.benchmarks}
    path, text = out / EVAL / SETTINGS, settings_text(p)
    if not _same_settings(path, text):
        # other settings than the scores on disk were made with: those scores no longer hold
        (out / EVAL / SCORES).unlink(missing_ok=True)
    if not path.is_file() or path.read_text() != text:
        shards.write_text(path, text)
    _generate(p, out, problems)
    return score_all(p, out, problems)


def settings_text(p: EvalPlan) -> str:
    """The resolved settings as eval.yaml holds them, for the record (the resume guard is each
    shard's gen_config)."""
    from ..recipes import dump_yaml, to_dict

    card = to_dict(p.model.card)
    card.pop("sampling")  # eval's own protocol (`eval:`) decides sampling, not the card's defaults
    config = to_dict(p.config)
    config.pop("benchmarks")  # listed below, resolved
    return dump_yaml({"model": card, "adapter": p.model.adapter, "eval": config, "benchmarks": list(p.benchmarks)})


def _same_settings(path: Path, text: str) -> bool:
    """Whether eval.yaml at `path` holds the settings in `text`, speed-only ones aside (those
    runfolder lets a resumed run change: batch size, verifier workers)."""
    import yaml

    if not path.is_file():
        return False
    old, new = yaml.safe_load(path.read_text()) or {}, yaml.safe_load(text)
    for settings in (old, new):
        for key in SPEED_ONLY:
            (settings.get("eval") or {}).pop(key, None)
    return old == new


def is_complete(p: EvalPlan, out: Path) -> bool:
    """Whether `out/eval` holds the scores of exactly this plan (`distill run` then skips eval)."""
    return (Path(out) / EVAL / SCORES).is_file() and _same_settings(Path(out) / EVAL / SETTINGS, settings_text(p))
