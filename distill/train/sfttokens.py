"""Conversations to token ids and labels, with the loss on every assistant turn.

Each assistant turn is found by rendering the conversation up to it twice with the student's
chat template: before it with the generation prompt (where the turn's text starts) and through
it (where it ends, its end-of-turn marker included). The rendered text is tokenized piece by
piece at those edges; the pieces inside a span are supervised, the rest carry label -100. For the last turn of a two-turn row this is exactly
what TRL's prompt/completion masking does, so single-turn rows train as before; LLaMA-Factory and
TRL's `assistant_only_loss` supervise every assistant turn the same way.

A template that rewrites earlier turns once later ones follow (Qwen3 and R1's drop the
reasoning of earlier answers) has no such span for them: those turns carry no loss, and are
counted (`unmatched`), never guessed at.
"""

from __future__ import annotations

IGNORE = -100


def _render(tokenizer, messages: list[dict], generation: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)


def spans(tokenizer, messages: list[dict], loss_on: str) -> tuple[str, list[tuple[int, int]], int]:
    """(the rendered conversation, the character spans that carry loss, assistant turns unmatched)."""
    text = _render(tokenizer, messages)
    if loss_on == "all":
        return text, [(0, len(text))], 0
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if loss_on == "last":
        turns = turns[-1:]
    found, unmatched = [], 0
    for i in turns:
        before = _render(tokenizer, messages[:i], generation=True)
        through = text if i == len(messages) - 1 else _render(tokenizer, messages[: i + 1])
        if through.startswith(before) and text.startswith(through):
            found.append((len(before), len(through)))
        else:
            unmatched += 1
    return text, found, unmatched


def _segments(text: str, found: list[tuple[int, int]]) -> list[tuple[str, int]]:
    """The rendered text cut at the spans' edges: (piece, span index or -1 for unsupervised)."""
    pieces, at = [], 0
    for k, (start, end) in enumerate(found):
        if start > at:
            pieces.append((text[at:start], -1))
        pieces.append((text[start:end], k))
        at = end
    if at < len(text):
        pieces.append((text[at:], -1))
    return pieces


def tokenize(dataset, tokenizer, loss_on: str, max_length: int, num_proc: int | None = None, truncate: bool = False):
    """A `messages` dataset as `input_ids` and `labels`, plus per row: `_length` (tokens before
    any truncation), `_first` (the first supervised token's position, -1 for none), `_turns`
    (supervised tokens of each assistant turn within max_length) and `_unmatched` (turns left
    without loss). With `truncate`, rows are cut to max_length here (TRL's keep_start).

    The pieces between span edges are tokenized in one batched call and joined, as
    LLaMA-Factory encodes turn by turn: a label edge never falls inside a token. The per-row
    figures come from the pieces' lengths; the token ids and labels of the whole batch are built
    as flat arrays and handed to datasets as an Arrow table (a Python list per row, converted by
    datasets, cost a third of the preparation on R1-length rows)."""
    import itertools

    import numpy as np
    import pyarrow as pa

    def batch(rows: dict) -> "pa.Table":
        pieces, owners, unmatched = [], [], []
        for messages in rows["messages"]:
            text, found, lost = spans(tokenizer, messages, loss_on)
            cut = _segments(text, found)
            pieces += [piece for piece, _ in cut]
            owners.append([k for _, k in cut])
            unmatched.append(lost)
        encoded = tokenizer(pieces, add_special_tokens=False)["input_ids"]
        sizes = [len(piece) for piece in encoded]
        flat = np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.int32, count=sum(sizes))
        supervised = np.repeat(np.array([k >= 0 for kinds in owners for k in kinds], dtype=bool), sizes)
        labels = np.where(supervised, flat, np.int32(IGNORE))
        out = {"_length": [], "_first": [], "_turns": [], "_unmatched": unmatched}
        piece_sizes = iter(sizes)
        for kinds in owners:
            length, counts, first = 0, [0] * sum(1 for k in kinds if k >= 0), -1
            for k in kinds:
                size = next(piece_sizes)
                if k >= 0:
                    first = length if first < 0 and size else first
                    counts[k] = max(0, min(size, max_length - length))
                length += size
            out["_length"].append(length)
            out["_first"].append(first)
            out["_turns"].append(counts)
        lengths = np.array(out["_length"], dtype=np.int64)
        if truncate and (lengths > max_length).any():  # keep each row's first max_length tokens
            starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
            keep = np.arange(len(flat)) - starts < max_length
            flat, labels, lengths = flat[keep], labels[keep], np.minimum(lengths, max_length)
        offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
        out["input_ids"] = pa.ListArray.from_arrays(offsets, pa.array(flat))
        out["labels"] = pa.ListArray.from_arrays(offsets, pa.array(labels))
        return pa.Table.from_pydict(out, schema=schema)  # datasets takes an Arrow table as it is

    import datasets

    ids = datasets.Sequence(datasets.Value("int32"))
    features = datasets.Features({"input_ids": ids, "labels": ids, "_length": datasets.Value("int32"),
                                  "_first": datasets.Value("int32"), "_turns": ids,
                                  "_unmatched": datasets.Value("int32")})
    schema = features.arrow_schema
    # declared types: datasets would otherwise inspect every token of every row to infer them
    return dataset.map(batch, batched=True, batch_size=256, remove_columns=dataset.column_names, features=features,
                       num_proc=num_proc if num_proc and num_proc > 1 else None)


def turn_totals(turns: list[list[int]]) -> list[int]:
    """Supervised tokens by assistant-turn position (first turn, second, …), over all rows."""
    totals: list[int] = []
    for counts in turns:
        for i, n in enumerate(counts):
            if i == len(totals):
                totals.append(0)
            totals[i] += n
    return totals


def cached(run, dataset, tokenizer, loss_on: str, max_length: int, num_proc: int | None = None,
           truncate: bool = False):
    """tokenize(), kept in RUN/tokens/KEY (beside student/, so exports never carry it) so that a
    resumed or repeated run of the same data, tokenizer, template and masking reads it back
    instead of tokenizing again. KEY hashes all of those (the dataset by its datasets
    fingerprint); the folder is written under a temporary name of this process and renamed, so a
    killed run leaves no half-written cache and two processes never write into one folder."""
    import hashlib
    import json
    import os
    from pathlib import Path

    import datasets

    key = hashlib.sha256(json.dumps({
        "data": dataset._fingerprint, "rows": len(dataset), "template": tokenizer.chat_template,
        "tokenizer": tokenizer.name_or_path, "vocab": len(tokenizer), "loss_on": loss_on, "max_length": max_length,
        "truncate": truncate,
    }, sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(run) / "tokens" / key
    if (folder / "dataset_info.json").is_file():
        return datasets.load_from_disk(str(folder)), True
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # under accelerate: rank 0 tokenizes, the others read it
        from accelerate import PartialState

        with PartialState().main_process_first():
            return _write(folder, key, dataset, tokenizer, loss_on, max_length, num_proc, truncate)
    return _write(folder, key, dataset, tokenizer, loss_on, max_length, num_proc, truncate)


def _write(folder, key: str, dataset, tokenizer, loss_on: str, max_length: int, num_proc, truncate: bool):
    import os
    import shutil

    import datasets

    if (folder / "dataset_info.json").is_file():  # another process wrote it meanwhile
        return datasets.load_from_disk(str(folder)), True
    workers = min(num_proc or 1, os.cpu_count() or 1)
    tokens = tokenize(dataset, tokenizer, loss_on, max_length, workers, truncate)
    folder.parent.mkdir(parents=True, exist_ok=True)
    for old in folder.parent.iterdir():  # older keys (other data or settings) are not needed again
        if not old.name.startswith(key):
            shutil.rmtree(old, ignore_errors=True)
    temp = folder.with_name(f"{key}.tmp-{os.getpid()}")
    tokens.save_to_disk(str(temp))
    try:
        temp.rename(folder)
    except OSError:  # a process with the same rows got there first: theirs is the same
        shutil.rmtree(temp, ignore_errors=True)
    return datasets.load_from_disk(str(folder)), False
