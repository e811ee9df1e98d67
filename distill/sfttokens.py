"""Conversations to token ids and labels, with the loss on every assistant turn.

Each assistant turn is found by rendering the conversation up to it twice with the student's
chat template: before it with the generation prompt (where the turn's text starts) and through
it (where it ends, its end-of-turn marker included). Tokens whose text starts inside such a span
are supervised; the rest carry label -100. For the last turn of a two-turn row this is exactly
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


def _labels(ids: list[int], offsets: list, found: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Labels for one row, and which span (turn) each supervised token belongs to (-1: none)."""
    labels, turn = [], []
    k = 0
    for token, (start, _end) in zip(ids, offsets):
        while k < len(found) and start >= found[k][1]:
            k += 1
        inside = k < len(found) and found[k][0] <= start < found[k][1]
        labels.append(token if inside else IGNORE)
        turn.append(k if inside else -1)
    return labels, turn


def tokenize(dataset, tokenizer, loss_on: str, max_length: int, num_proc: int | None = None):
    """A `messages` dataset as `input_ids` and `labels`, plus per row: `_length` (tokens),
    `_first` (the first supervised token's position, -1 for none), `_turns` (supervised tokens
    of each assistant turn within max_length) and `_unmatched` (turns left without loss)."""

    def batch(rows: dict) -> dict:
        texts, all_spans, unmatched = [], [], []
        for messages in rows["messages"]:
            text, found, lost = spans(tokenizer, messages, loss_on)
            texts.append(text)
            all_spans.append(found)
            unmatched.append(lost)
        encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        out = {"input_ids": [], "labels": [], "_length": [], "_first": [], "_turns": [], "_unmatched": unmatched}
        for ids, offsets, found in zip(encoded["input_ids"], encoded["offset_mapping"], all_spans):
            labels, turn = _labels(ids, offsets, found)
            first = next((i for i, t in enumerate(labels) if t != IGNORE), -1)
            counts = [0] * len(found)
            for t in turn[:max_length]:
                if t >= 0:
                    counts[t] += 1
            out["input_ids"].append(ids)
            out["labels"].append(labels)
            out["_length"].append(len(ids))
            out["_first"].append(first)
            out["_turns"].append(counts)
        return out

    return dataset.map(batch, batched=True, batch_size=256, remove_columns=dataset.column_names,
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
