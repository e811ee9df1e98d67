"""The benchmarks `distill eval` knows: their dataset cards, samples per problem, and how their
problems load (hub or a local file) into prompt rows with gold answers."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

from .. import cards, sources
from ..config import ColumnMap, DataSource, DatasetCard
from ..errors import ConfigError, UserError, reason


@dataclass(frozen=True)
class Known:
    title: str
    n: int  # samples per problem by default
    gated: str | None = None  # where to ask for access, for hub copies behind a licence


# Samples per problem: the R1 paper takes 4 to 64 "depending on the test set size" and 64 for
# AIME. Enough samples that pass@1's sampling noise is small next to its spread over problems:
# 30 AIME problems x 64, 40 AMC x 16, 198 GPQA x 8, 500 MATH x 4; GSM8K's 1,319 problems need
# no repeats. All are overridable (--n, or --set benchmarks.NAME.n=K).
KNOWN: dict[str, Known] = {
    "aime24": Known("AIME 2024", 64),
    "aime25": Known("AIME 2025", 64),
    "amc23": Known("AMC 2023", 16),
    "math500": Known("MATH-500", 4),
    "gpqa-diamond": Known("GPQA Diamond", 8, gated="https://huggingface.co/datasets/Idavidrein/gpqa"),
    "gsm8k-test": Known("GSM8K test", 1),
}

# The verifier that scores a benchmark's rows, by the card's domain: the very code that filters
# training data.
VERIFIER = {"math": "math", "science": "choice", "code": "code"}


@dataclass(frozen=True)
class Benchmark:
    name: str
    card: DatasetCard
    n: int
    path: str | None = None  # a local file instead of the hub
    split: str | None = None
    limit: int | None = None  # first N problems
    columns: ColumnMap | None = None

    @property
    def title(self) -> str:
        return KNOWN[self.name].title if self.name in KNOWN else self.name

    @property
    def verifier(self) -> str:
        try:
            return VERIFIER[self.card.domain]
        except KeyError:
            raise ConfigError(
                f"benchmark '{self.name}': no verifier scores domain '{self.card.domain}' "
                f"(scored domains: {', '.join(VERIFIER)})"
            ) from None


def parse(specs: list[str]) -> list[tuple[str, str | None]]:
    """`--benchmark` values (repeatable, comma-separated, `NAME=FILE` for a local copy) to
    (name or card path, local file) pairs, in order, without repeats."""
    out: list[tuple[str, str | None]] = []
    for spec in specs:
        for part in spec.split(","):
            name, _, path = part.strip().partition("=")
            name = name.strip()
            if not name:
                continue
            if name not in KNOWN and not name.endswith((".yaml", ".yml")) and name not in cards.names("datasets"):
                raise ConfigError(
                    f"unknown benchmark '{name}' (known: {', '.join(KNOWN)}; or a dataset card, by name or .yaml)"
                )
            if any(name == seen for seen, _ in out):
                raise ConfigError(f"--benchmark: '{name}' is given twice")
            out.append((name, path.strip() or None))
    if not out:
        raise ConfigError("--benchmark: name at least one benchmark (known: " + ", ".join(KNOWN) + ")")
    return out


def default_n(name: str) -> int:
    return KNOWN[name].n if name in KNOWN else 1


def _header(path: Path) -> list[str]:
    """Column names of a local file, read cheaply (first line, or the Parquet schema)."""
    try:
        if path.suffix.lower() == ".jsonl":
            with path.open() as f:
                return list(json.loads(f.readline() or "{}"))
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_schema(path).names
        if path.suffix.lower() == ".csv":
            with path.open() as f:
                return [c.strip() for c in f.readline().split(",")]
    except (OSError, ValueError, AttributeError):
        return []  # sources.prompt_rows names the real problem
    return []


def local_columns(card: DatasetCard, path: str) -> ColumnMap | None:
    """Columns for a local copy laid out unlike the hub: when the card's problem column is not
    in the file, its plain `problem` or `question`, `answer` and `id` / `unique_id` columns (as
    ../shared/data's GPQA copy has them). None: the card's own mapping fits (or nothing does)."""
    have = _header(Path(path).expanduser())
    if not have or card.columns.problem in have:
        return None
    problem = next((c for c in ("problem", "question") if c in have), None)
    if problem is None:
        return None
    ident = next((c for c in ("id", "unique_id") if c in have), None)
    return ColumnMap(problem=problem, answer="answer" if "answer" in have else None, id=ident)


def _with_options(bench: Benchmark, raw: list[dict]) -> list[dict]:
    """GPQA as published (Question, Correct Answer, Incorrect Answer 1-3): options shuffled once
    per question with a seed from its text (the same letters on every run and machine), written
    into the problem as `A. …` lines, and the gold answer turned into the correct letter."""
    rows = []
    for r in raw:
        question = str(r["Question"]).strip()
        correct = str(r["Correct Answer"]).strip()
        options = [correct] + [str(r[f"Incorrect Answer {i}"]).strip() for i in (1, 2, 3)]
        digest = hashlib.sha1(question.encode()).hexdigest()
        random.Random(int(digest[:16], 16)).shuffle(options)
        letters = "ABCD"
        problem = question + "\n\n" + "\n".join(f"{letters[i]}. {o}" for i, o in enumerate(options))
        rid = r.get("Record ID") or digest[:16]
        rows.append({"id": f"{bench.name}/{rid}", "problem": problem, "answer": letters[options.index(correct)],
                     "source": bench.name, "domain": bench.card.domain, "choices": options, "tests": None})
        if bench.limit is not None and len(rows) >= bench.limit:
            break
    return rows


def _from_hub(bench: Benchmark) -> list[dict]:
    """The benchmark's rows from the hub; failing that (offline, gated, missing), one line that
    says how to give a local copy instead."""
    import datasets

    sources.quiet_hub()
    card = bench.card
    try:
        return datasets.load_dataset(card.hub, card.subset, split=bench.split or card.split).to_list()
    except Exception as e:  # noqa: BLE001 - offline, gated, missing: all the same to the user
        gated = KNOWN[bench.name].gated if bench.name in KNOWN else None
        access = (f"it is gated: accept its terms at {gated} and log in (`hf auth login`), " if gated else "")
        raise UserError(
            f"benchmark '{bench.name}': cannot load '{card.hub}' from the hub ({reason(e, kind=True)}); "
            f"{access}or give a local copy: --benchmark {bench.name}=FILE (in a recipe, `path: FILE` on the benchmark)"
        ) from None


def problems(bench: Benchmark) -> list[dict]:
    """The prompt rows of a benchmark (first `limit`), each with its gold answer."""
    path = bench.path or bench.card.path
    columns = bench.columns or (local_columns(bench.card, path) if path else None)
    source = DataSource(card=bench.card, path=path, split=bench.split, limit=bench.limit, columns=columns)
    fix = (f"--set benchmarks.{bench.name}.columns.problem=COLUMN (and .answer), or `columns:` on the "
           "benchmark in a recipe's eval section")
    if path or not bench.card.hub:
        rows = sources.prompt_rows(source, fix=fix)
    else:
        raw = _from_hub(bench)
        if raw and "Incorrect Answer 1" in raw[0]:
            rows = _with_options(bench, raw)
        else:  # the card's own mapping, on the rows just loaded
            rows = sources.prompt_rows(source, loaded=(raw, bench.card.hub), fix=fix)
    if not rows:
        raise UserError(f"benchmark '{bench.name}': no problems loaded from {path or bench.card.hub}")
    missing = sum(1 for r in rows if r["answer"] is None or not str(r["answer"]).strip())
    if missing:
        raise UserError(
            f"benchmark '{bench.name}': {missing} of {len(rows)} problems have no gold answer in "
            f"{path or bench.card.hub}; map the answer column with --set benchmarks.{bench.name}.columns.answer=COLUMN"
        )
    return rows
