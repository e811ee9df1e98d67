"""The filter's first pass as the verifier workers run it: they read the trace rows and write
the pass-1 shards themselves, so the filter process never holds a completion.

- `verify_range(path, …, start, stop, emit)`: rows [start, stop) of one trace file, every
  verifier in order, one verdict emitted per row (the pool times each row by them).
- `write_file(path, index, pass1, …)`: once the filter process has every verdict of a file and
  has chosen, per problem, what to keep, the file's candidates (with `messages`, dedup key and
  quota draw), their keys and the rejected rows, each written atomically.

A worker keeps the file it read last, decoded, so the ranges and the write of one file cost one
read per worker. The same functions run in the filter process when no verifier is isolated.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pyarrow as pa

from .. import schema, shards, verify
from ..config import PromptTemplate
from .dedup import exact_key
from ..errors import UserError
from ..prompting import assistant_content, prompt_messages, split_think
from .report import CANDIDATES, REJECTED
from .select import draw
from ..verify.shard import row_timeout

KEYS = "keys"
REQUIRED = ("id", "sample_idx", "problem", "completion")
DEFAULTS = {"answer": None, "source": "unknown", "domain": "math", "finish_reason": None, "teacher": None,
            "prompt_tokens": None, "completion_tokens": None, "gen_config": None, "choices": None, "tests": None}
# beside each candidate shard: every row's dedup key and quota draw, for the second pass
KEY_SCHEMA = pa.schema([("_key", pa.int64()), ("_draw", pa.int64())])


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


def check_columns(path: Path, names: list[str]) -> None:
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


def conform(table: pa.Table, path: Path) -> pa.Table:
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


_KEPT: dict[str, pa.Table] = {}  # the files this process read last (two: a write may lag a file)


def read_table(path: Path) -> pa.Table:
    """One trace file, checked and brought to the trace schema; the last two are kept."""
    if str(path) not in _KEPT:
        table = shards.read_file(path)
        check_columns(path, table.column_names)
        if len(_KEPT) >= 2:
            del _KEPT[next(iter(_KEPT))]
        _KEPT[str(path)] = conform(table, path)
    return _KEPT[str(path)]


# what the verifiers may read of a trace row (the rest is only carried into the outputs)
VERIFY_COLUMNS = ("id", "sample_idx", "problem", "answer", "completion", "domain", "choices", "tests",
                  "finish_reason", "completion_tokens")


def read_rows(path: Path, start: int = 0, stop: int | None = None, columns=None) -> list[dict]:
    """Rows [start, stop) as dicts with the trace columns (all, or `columns`), `reasoning`,
    `response` and `think`."""
    table = read_table(path)
    stop = table.num_rows if stop is None else stop
    part = table.slice(start, stop - start)
    names = [c for c in part.column_names if columns is None or c in columns]
    values = {name: part.column(name).to_pylist() for name in names}
    rows = [dict(zip(values, row)) for row in zip(*values.values())]
    for row in rows:
        for key, default in DEFAULTS.items():
            row.setdefault(key, default)
        row["reasoning"], row["response"], row["think"] = split_think(row["completion"] or "")
    return rows


READ_LIMIT = 600.0  # seconds to read (and decode) one trace file, however large


def verify_range(path: str, names: tuple[str, ...], options: dict, skip: frozenset, start: int, stop: int, emit) -> None:
    """Emit one verdict per row of [start, stop): (ok, reason, extracted), or None for a row in
    `skip` (already decided, say contaminated). A float emitted is the time limit for what
    follows (0: the pool's own): reading a file not read yet gets its own, and so does a row
    with a limit of its own (code rows), so the pool times each by that."""
    if str(path) not in _KEPT:
        emit(READ_LIMIT)
        read_table(Path(path))
        emit(0.0)
    for i, row in enumerate(read_rows(Path(path), start, stop, VERIFY_COLUMNS), start):
        if i in skip:
            emit(None)
            continue
        missing = next((k for k in ("id", "sample_idx", "problem") if row.get(k) is None), None)
        if missing:  # rejected with its reason (the report counts it), never kept nor a traceback
            emit((False, f"no_{missing}", None))
            continue
        mine = tuple(n for n in names if verify.applies(n, row))
        limit = row_timeout(row, mine, options)
        if limit is not None:
            emit(float(limit))
        try:
            verdict = verify.run(mine, row, options)
        except Exception:  # noqa: BLE001 - a verifier bug rejects one row, not the run
            verdict = verify.Verdict(False, "verifier_error")
        emit((verdict.ok, verdict.reason, verdict.extracted))


def write_file(path: str, index: int, pass1: str, names: tuple[str, ...], verdicts: list, rates: list,
               keep: list, contaminated: dict, dedup: bool, seed: int) -> tuple[int, int]:
    """Write one file's pass-1 shards from its verdicts ((ok, reason, extracted) per row), pass
    rates and keep mask; return (candidates, rejected). Marking it done is the caller's.

    Column by column: the trace columns are carried as Arrow arrays (filtered by the keep
    mask), and only what is new is made in Python: the two halves of each completion, the
    verdict columns, and for kept rows the conversation, dedup key and quota draw."""
    import pyarrow.compute as pc

    table = read_table(Path(path))
    n = table.num_rows
    column = {c: table.column(c).to_pylist() for c in ("id", "sample_idx", "problem", "completion", "domain",
                                                      "gen_config") if c in table.column_names}
    completions = column["completion"]
    halves = [split_think(c or "") for c in completions]
    domains = column.get("domain") or [DEFAULTS["domain"]] * n
    applied: dict = {}  # the verifier column depends on the domain alone
    verifier = []
    for i, domain in enumerate(domains):
        benchmark = contaminated.get(i)
        if benchmark:
            verifier.append(f"decontaminate:{benchmark}")
        else:
            if domain not in applied:
                applied[domain] = ",".join(v for v in names if verify.applies(v, {"domain": domain}))
            verifier.append(applied[domain])
    new = {"reasoning": [h[0] for h in halves], "response": [h[1] for h in halves],
           "extracted_answer": [v[2] for v in verdicts], "verifier": verifier, "pass_rate": rates}
    kept = [i for i in range(n) if keep[i]]
    gone = [i for i in range(n) if not keep[i]]
    problems, configs = column["problem"], column.get("gen_config") or [None] * n
    messages = [messages_for({"problem": problems[i], "gen_config": configs[i], "reasoning": halves[i][0],
                              "response": halves[i][1]}) for i in kept]
    keys = [exact_key(problems[i] or "", completions[i] or "") if dedup else 0 for i in kept]
    draws = [draw(seed, column["id"][i], column["sample_idx"][i]) for i in kept]
    reasons = [verdicts[i][1] if not verdicts[i][0] else "not_selected" for i in gone]

    def build(rows: list[int], target: pa.Schema, extra: dict) -> pa.Table:
        take = pa.array(rows, pa.int64())
        arrays = []
        for field in target:
            if field.name in extra:
                arrays.append(pa.array(extra[field.name], field.type))
            elif field.name in new:
                values = new[field.name]
                arrays.append(pa.array([values[i] for i in rows], field.type))
            elif field.name in table.column_names:
                arrays.append(pc.take(table.column(field.name), take).cast(field.type))
            else:
                arrays.append(pa.nulls(len(rows), field.type))
        return pa.Table.from_arrays(arrays, schema=target)

    folder = Path(pass1)
    shards.write_table(folder / CANDIDATES / shards.shard_name(index), build(kept, schema.FILTERED, {"messages": messages}))
    shards.write_table(folder / KEYS / shards.shard_name(index), pa.table({"_key": pa.array(keys, pa.int64()),
                                                                           "_draw": pa.array(draws, pa.int64())}))
    shards.write_table(folder / REJECTED / shards.shard_name(index), build(gone, schema.REJECTED, {"reject_reason": reasons}))
    return len(kept), len(gone)


def run_job(fn: str, args: tuple, start: int, stop: int, emit) -> None:
    """A job of the worker pool: `fn` names one of the two functions above. A user mistake
    found in a worker (an unreadable file, a column of the wrong type) or a failure to read or
    write (a full disk) comes back as its message (a str) instead of a verdict, for the filter
    process to report in one line."""
    try:
        if fn == "verify":
            verify_range(*args, start, stop, emit)
        else:
            emit(write_file(*args))
    except UserError as e:
        emit(str(e))
    except OSError as e:  # a full disk names the file it could not write (shards.writing)
        emit(f"{e.filename}: {e.strerror}" if e.filename else f"{args[0]}: {fn} failed: {e}")
    except Exception as e:  # noqa: BLE001 - one line from the filter process
        emit(f"{args[0]}: {'writing the filter shards' if fn == 'write' else 'reading'} failed: {e}")
