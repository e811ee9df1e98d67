"""Published reasoning-trace datasets, read as they are published: one plain function per layout.

Each layout function takes one published row and returns a `Problem`: the problem text, the gold
answer where the dataset has one, and its samples (completions with `<think>…</think>` where the
dataset separates the reasoning). `distill.filter.convert` turns those into trace rows (schema.TRACE),
so `distill filter` verifies them exactly as it verifies `distill generate`'s traces.

Adding a layout is one function and one `@layout(...)` line. A layout that fits none of these
is read with a `columns` mapping (`from_columns`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..prompting import THINK_CLOSE, THINK_OPEN

# Sky-T1's markers, kept by Bespoke-Stratos and OpenThoughts in place of <think>
BEGIN_THOUGHT, END_THOUGHT = "<|begin_of_thought|>", "<|end_of_thought|>"
BEGIN_SOLUTION, END_SOLUTION = "<|begin_of_solution|>", "<|end_of_solution|>"

# the domain of rows whose datasets mix math, code, science and puzzles with no gold answer: no
# answer verifier applies, and the filter's report says how many kept rows none checked
MIXED = "mixed"


class RowError(ValueError):
    """One published row that cannot become trace rows; it is skipped and counted."""


@dataclass(frozen=True)
class Sample:
    completion: str
    finish_reason: str | None = None


@dataclass(frozen=True)
class Problem:
    problem: str
    answer: str | None
    samples: tuple[Sample | None, ...]  # list position = sample_idx; None: an unusable sample, skipped
    key: str | None = None  # the dataset's own id for the problem, when it has one
    source: str | None = None  # the dataset's own source column (e.g. olympiads), when it has one
    domain: str = "math"
    system: str | None = None  # the system prompt the dataset pairs with the problem
    verdicts: tuple[bool | None, ...] = ()  # the dataset's own per-sample correctness, when recorded
    tests: str | None = None  # code tests as the code verifier reads them (JSON), when the dataset has them


@dataclass(frozen=True)
class Layout:
    name: str
    needs: tuple[str, ...]  # the columns that identify this layout (and that it reads)
    teacher: str  # the model that wrote the traces, as the dataset card says
    hub: str  # the published dataset this layout is named after
    convert: Callable[[dict], Problem]
    gold: str  # where the gold answer comes from ("none …" when the dataset has none)
    notes: str = ""

    @property
    def has_gold(self) -> bool:
        return not self.gold.startswith("none")


LAYOUTS: dict[str, Layout] = {}


def layout(name: str, needs: tuple[str, ...], teacher: str, hub: str, gold: str, notes: str = ""):
    """Decorator: register `fn(row) -> Problem` as the published layout `name`."""

    def add(fn: Callable[[dict], Problem]) -> Callable[[dict], Problem]:
        LAYOUTS[name] = Layout(name, needs, teacher, hub, fn, gold, notes)
        return fn

    return add


def detect(columns: list[str]) -> list[str]:
    """The layouts whose identifying columns are all present, most specific first."""
    found = [lay for lay in LAYOUTS.values() if all(c in columns for c in lay.needs)]
    return [lay.name for lay in sorted(found, key=lambda lay: -len(lay.needs))]


# ---------------------------------------------------------------- shared helpers


def text(row: dict, column: str) -> str:
    """A non-empty text cell, or a RowError naming the column."""
    value = row.get(column)
    if not isinstance(value, str) or not value.strip():
        raise RowError(f"empty '{column}'" if value is None or isinstance(value, str) else
                       f"'{column}' is {type(value).__name__}, not text")
    return value


def optional_text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # an answer column read as numbers: 27.0 is "27"
    value = str(value).strip()
    return value or None


def think(reasoning: str | None, response: str) -> str:
    """A completion in the form `distill generate` writes and `split_think` reads."""
    if reasoning is None:
        return response
    return f"{THINK_OPEN}\n{reasoning.strip()}\n{THINK_CLOSE}\n\n{response.strip()}"


def from_thought_markers(value: str) -> str:
    """Sky-T1's `<|begin_of_thought|>…<|end_of_thought|> <|begin_of_solution|>…<|end_of_solution|>`
    as `<think>…</think>…`. A thought that never ends stays unclosed (the filter's format check
    rejects it as think_unclosed, as it would a generated one); text without markers is kept as
    it is (the response, no reasoning)."""
    if BEGIN_THOUGHT not in value:
        return value
    after = value.split(BEGIN_THOUGHT, 1)[1]
    if END_THOUGHT not in after:
        return f"{THINK_OPEN}\n{after.strip()}"
    reasoning, rest = after.split(END_THOUGHT, 1)
    if BEGIN_SOLUTION in rest:
        rest = rest.split(BEGIN_SOLUTION, 1)[1]
    rest = rest.split(END_SOLUTION, 1)[0]
    return think(reasoning, rest)


def boxed_answer(solution: str | None) -> str | None:
    """The gold answer of a worked solution: its last \\boxed{} read as the math verifier reads a
    response (None when it has none)."""
    from ..verify.math import last_boxed

    return last_boxed(solution) if solution else None


def _samples_with_reasons(row: dict, gens_col: str, reasons_col: str) -> tuple[Sample | None, ...]:
    gens = row.get(gens_col)
    if not isinstance(gens, (list, tuple)):
        raise RowError(f"'{gens_col}' is {type(gens).__name__}, not a list of samples")
    if not gens:
        raise RowError(f"'{gens_col}' is an empty list")
    reasons = row.get(reasons_col)
    if reasons is not None:
        if not isinstance(reasons, (list, tuple)):
            raise RowError(f"'{reasons_col}' is {type(reasons).__name__}, not a list")
        if len(reasons) != len(gens):
            raise RowError(f"{len(gens)} {gens_col} but {len(reasons)} {reasons_col}")
    out = []
    for i, gen in enumerate(gens):
        if not isinstance(gen, str) or not gen.strip():
            out.append(None)
            continue
        reason = reasons[i] if reasons is not None else None
        out.append(Sample(gen, None if reason is None else str(reason)))
    return tuple(out)


def _sharegpt(row: dict) -> tuple[str, str | None, str | None]:
    """(user text, assistant text, system) of a one-exchange ShareGPT row (`from`/`value`)."""
    turns = row.get("conversations")
    if not isinstance(turns, (list, tuple)) or not turns:
        raise RowError("'conversations' is empty or not a list")
    user = assistant = None
    for turn in turns:
        if not isinstance(turn, dict):
            raise RowError("a turn of 'conversations' is not a {from, value} object")
        who = turn.get("from")
        if who in ("user", "human") and user is None:
            user = turn.get("value")
        elif who in ("assistant", "gpt") and user is not None and assistant is None:
            assistant = turn.get("value")
    if not isinstance(user, str) or not user.strip():
        raise RowError("no user turn in 'conversations'")
    system = row.get("system")
    return user, assistant, system if isinstance(system, str) and system.strip() else None


# ---------------------------------------------------------------- the published layouts


@layout("openr1-math", ("problem", "answer", "generations"), teacher="deepseek-ai/DeepSeek-R1",
        hub="open-r1/OpenR1-Math-220k", gold="`answer`",
        notes="2–4 samples per problem (`generations`, `finish_reasons`); `uuid` is the id; "
              "`correctness_math_verify` is counted in the manifest, never trusted")
def openr1_math(row: dict) -> Problem:
    verdicts = row.get("correctness_math_verify")
    return Problem(
        problem=text(row, "problem"),
        answer=optional_text(row.get("answer")),
        samples=_samples_with_reasons(row, "generations", "finish_reasons"),
        key=optional_text(row.get("uuid")),
        source=optional_text(row.get("source")),
        verdicts=tuple(verdicts) if isinstance(verdicts, (list, tuple)) else (),
    )


def _stratos(row: dict) -> Problem:
    user, assistant, system = _sharegpt(row)
    sample = Sample(from_thought_markers(assistant)) if isinstance(assistant, str) and assistant.strip() else None
    return Problem(problem=user, answer=None, samples=(sample,), domain=MIXED, system=system)


layout("openthoughts", ("system", "conversations"), teacher="deepseek-ai/DeepSeek-R1",
       hub="open-thoughts/OpenThoughts-114k", gold="none (math, code, science and puzzles mixed)",
       notes="ShareGPT `conversations` (`from`: user/assistant) with a `system` prompt; Sky-T1 markers")(_stratos)
layout("bespoke-stratos", ("system", "conversations"), teacher="deepseek-ai/DeepSeek-R1",
       hub="bespokelabs/Bespoke-Stratos-17k", gold="none (math, code, science and puzzles mixed)",
       notes="the OpenThoughts layout; only the default teacher differs in name")(_stratos)


def _code_tests(test_cases) -> str | None:
    """OpenThoughts' `test_cases` (JSON text) as the code verifier's tests: stdin/stdout pairs
    only; a call-based problem (`fn_name`) has no tests the verifier can run."""
    import json

    try:
        spec = json.loads(test_cases) if isinstance(test_cases, str) else None
    except ValueError:
        return None
    if not isinstance(spec, dict) or spec.get("fn_name") or not spec.get("inputs") or not spec.get("outputs"):
        return None
    return json.dumps({"inputs": spec["inputs"], "outputs": spec["outputs"]})


@layout("openthoughts-metadata", ("problem", "deepseek_reasoning", "deepseek_solution", "ground_truth_solution",
                                  "domain"),
        teacher="deepseek-ai/DeepSeek-R1", hub="open-thoughts/OpenThoughts-114k (config metadata)",
        gold="math: the last \\boxed{} of `ground_truth_solution`; code: `test_cases` (stdin/stdout) as tests",
        notes="the same traces as `openthoughts`, with the problem, the reasoning and the solution apart; "
              "science and puzzle rows are domain other")
def openthoughts_metadata(row: dict) -> Problem:
    reasoning, solution = row.get("deepseek_reasoning"), row.get("deepseek_solution")
    usable = isinstance(solution, str) and solution.strip() and isinstance(reasoning, str) and reasoning.strip()
    domain = row.get("domain")
    return Problem(
        problem=text(row, "problem"),
        answer=boxed_answer(optional_text(row.get("ground_truth_solution"))) if domain == "math" else None,
        samples=(Sample(think(reasoning, solution)) if usable else None,),
        source=optional_text(row.get("source")),
        domain=domain if domain in ("math", "code") else "other",
        tests=_code_tests(row.get("test_cases")) if domain == "code" else None,
    )


def _short_gold(solution: str | None) -> str | None:
    """s1K's `solution` is a bare answer for some problems and a worked solution for others: the
    last \\boxed{} of a solution, else a one-line answer, else none (the math verifier then
    rejects the row as no_gold instead of guessing from a proof)."""
    boxed = boxed_answer(solution)
    if boxed:
        return boxed
    solution = optional_text(solution)
    if solution and "\n" not in solution and len(solution) <= 60:
        return solution
    return None


@layout("s1k-1.1", ("question", "deepseek_thinking_trajectory", "deepseek_attempt"),
        teacher="deepseek-ai/DeepSeek-R1", hub="simplescaling/s1K-1.1",
        gold="`solution`: its last \\boxed{}, or the whole cell when it is one short line; else none",
        notes="`cot_type` math rows are domain math, the others (science, crossword, …) domain other")
def s1k(row: dict) -> Problem:
    thinking, attempt = row.get("deepseek_thinking_trajectory"), row.get("deepseek_attempt")
    usable = isinstance(thinking, str) and thinking.strip() and isinstance(attempt, str) and attempt.strip()
    grade = row.get("deepseek_grade")
    return Problem(
        problem=text(row, "question"),
        answer=_short_gold(row.get("solution")),
        samples=(Sample(think(thinking, attempt)) if usable else None,),
        source=optional_text(row.get("source_type")),
        domain="math" if row.get("cot_type") == "math" else "other",
        verdicts=(grade == "Yes",) if grade in ("Yes", "No") else (),
    )


@layout("s1k", ("question", "thinking_trajectories", "attempt"), teacher="gemini-2.0-flash-thinking-exp",
        hub="simplescaling/s1K", gold="as s1k-1.1", notes="s1K 1.0: `thinking_trajectories` is a list joined "
        "into one reasoning (as s1's tokenization joins it), `attempt` the response")
def s1k_v1(row: dict) -> Problem:
    parts, attempt = row.get("thinking_trajectories"), row.get("attempt")
    if isinstance(parts, str):
        parts = [parts]
    usable = (isinstance(parts, (list, tuple)) and all(isinstance(p, str) for p in parts)
              and "".join(parts).strip() and isinstance(attempt, str) and attempt.strip())
    return Problem(
        problem=text(row, "question"),
        answer=_short_gold(row.get("solution")),
        samples=(Sample(think("\n".join(parts), attempt)) if usable else None,),
        source=optional_text(row.get("source_type")),
        domain="math" if row.get("cot_type") == "math" else "other",
    )


@layout("limo", ("question", "solution", "answer"), teacher="GAIR/LIMO (curated chains)", hub="GAIR/LIMO",
        gold="`answer`", notes="`solution` is one reasoning text with no <think> block: it is the response")
def limo(row: dict) -> Problem:
    solution = row.get("solution")
    usable = isinstance(solution, str) and solution.strip()
    return Problem(problem=text(row, "question"), answer=optional_text(row.get("answer")),
                   samples=(Sample(solution) if usable else None,))


@layout("numina-cot", ("problem", "solution", "messages"), teacher="gpt-4o (NuminaMath's CoT rewrite)",
        hub="AI-MO/NuminaMath-CoT", gold="the last \\boxed{} of `solution`",
        notes="no separate reasoning: `solution` is the response")
def numina_cot(row: dict) -> Problem:
    solution = row.get("solution")
    usable = isinstance(solution, str) and solution.strip()
    return Problem(problem=text(row, "problem"), answer=boxed_answer(solution if usable else None),
                   samples=(Sample(solution) if usable else None,), source=optional_text(row.get("source")))


# ---------------------------------------------------------------- any other layout: a columns map


COLUMN_KEYS = {
    "problem": "the problem text (required)",
    "answer": "the gold answer",
    "answer_boxed": "a worked solution whose last \\boxed{} is the gold answer",
    "completion": "the whole completion (<think>…</think> or Sky-T1 markers kept as they are), or a list of them",
    "reasoning": "the reasoning (becomes <think>…</think>), or a list",
    "response": "the answer after the reasoning, or a list",
    "finish_reason": "stop / length per sample (or a list)",
    "id": "a stable id per problem",
    "source": "a source name per row",
    "domain": "math / science / code / general per row",
    "system": "a system prompt per row",
}


@dataclass(frozen=True)
class ColumnsLayout:
    """`--columns problem=COL,reasoning=COL,...`: which column holds what."""

    columns: dict = field(default_factory=dict)

    @staticmethod
    def parse(spec: str) -> "ColumnsLayout":
        mapping = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, sep, column = part.partition("=")
            key, column = key.strip(), column.strip()
            if not sep or not column:
                raise ConfigError(f"--columns: '{part}' is not KEY=COLUMN (e.g. problem=question,response=solution)")
            if key not in COLUMN_KEYS:
                raise ConfigError(f"--columns: unknown key '{key}' (keys: {', '.join(COLUMN_KEYS)})")
            mapping[key] = column
        if "problem" not in mapping:
            raise ConfigError("--columns: name the problem column, e.g. problem=question")
        if not {"completion", "reasoning", "response"} & set(mapping):
            raise ConfigError("--columns: name the trace: completion=COL, or reasoning=COL and response=COL")
        if "completion" in mapping and {"reasoning", "response"} & set(mapping):
            raise ConfigError("--columns: give completion=COL, or reasoning/response, not both")
        if "answer" in mapping and "answer_boxed" in mapping:
            raise ConfigError("--columns: give answer=COL or answer_boxed=COL, not both")
        return ColumnsLayout(mapping)

    @property
    def needs(self) -> tuple[str, ...]:
        return tuple(self.columns.values())

    def convert(self, row: dict) -> Problem:
        cols = self.columns
        answer = (optional_text(row.get(cols["answer"])) if "answer" in cols
                  else boxed_answer(optional_text(row.get(cols["answer_boxed"]))) if "answer_boxed" in cols else None)
        domain = optional_text(row.get(cols["domain"])) if "domain" in cols else None
        system = optional_text(row.get(cols["system"])) if "system" in cols else None
        return Problem(
            problem=text(row, cols["problem"]),
            answer=answer,
            samples=self._samples(row),
            key=optional_text(row.get(cols["id"])) if "id" in cols else None,
            source=optional_text(row.get(cols["source"])) if "source" in cols else None,
            domain=domain or ("math" if {"answer", "answer_boxed"} & set(cols) else MIXED),
            system=system,
        )

    def _samples(self, row: dict) -> tuple[Sample | None, ...]:
        cols = self.columns
        parts = [k for k in ("completion", "reasoning", "response", "finish_reason") if k in cols]
        values = {k: row.get(cols[k]) for k in parts}
        lists = {k for k, v in values.items() if isinstance(v, (list, tuple))}
        if lists:  # samples per problem as lists: every mapped trace column must be one, of one length
            if lists != set(parts) - ({"finish_reason"} if values.get("finish_reason") is None else set()):
                raise RowError(f"'{cols[sorted(set(parts) - lists)[0]]}' is not a list like "
                               f"'{cols[sorted(lists)[0]]}'")
            lengths = {k: len(values[k]) for k in lists}
            if len(set(lengths.values())) > 1:
                raise RowError(" but ".join(f"{n} {cols[k]}" for k, n in sorted(lengths.items())))
            count = next(iter(lengths.values()))
            if count == 0:
                raise RowError(f"'{cols[sorted(lists)[0]]}' is an empty list")
            per = [{k: (values[k][i] if k in lists else None) for k in parts} for i in range(count)]
        else:
            per = [values]
        return tuple(self._sample(v) for v in per)

    @staticmethod
    def _sample(v: dict) -> Sample | None:
        reason = optional_text(v.get("finish_reason"))
        if "completion" in v:
            c = v["completion"]
            return Sample(from_thought_markers(c), reason) if isinstance(c, str) and c.strip() else None
        response = v.get("response")
        reasoning = v.get("reasoning")
        if not isinstance(response, str):
            response = ""
        if reasoning is not None and not isinstance(reasoning, str):
            return None
        if not response.strip() and not (reasoning or "").strip():
            return None
        return Sample(think(reasoning if (reasoning or "").strip() else None, response) if "reasoning" in v
                      else response, reason)


def names_for_help() -> str:
    return ", ".join(LAYOUTS) + ", auto"


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe(name: str) -> str:
    """A format or source name as part of an id."""
    return _SAFE.sub("-", name).strip("-") or "published"
