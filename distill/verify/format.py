"""Format and length checks: not truncated, `<think>` closed (or required on reasoning rows), a
non-empty response, a completion length within bounds."""

from __future__ import annotations

from .registry import Verdict, register

NON_REASONING = ("general",)  # rows of these domains need no <think> even with require_think


@register("format", isolated=True)
def check_format(row: dict, options: dict) -> Verdict:
    if options.get("reject_truncated", True) and row.get("finish_reason") == "length":
        return Verdict(False, "truncated")
    if row["think"] == "unclosed":
        return Verdict(False, "think_unclosed")
    if row["think"] == "none" and options.get("require_think") and row.get("domain") not in NON_REASONING:
        return Verdict(False, "no_think")
    if not row["response"]:
        return Verdict(False, "empty_response")
    return Verdict(True)


def completion_tokens(row: dict) -> int:
    """The teacher's token count, or an estimate (4 characters a token) for traces without one."""
    tokens = row.get("completion_tokens")
    if tokens is not None:
        return int(tokens)
    text = row.get("completion")
    if text is None:  # in a worker, which gets the completion as its two parts
        return (len(row.get("reasoning") or "") + len(row.get("response") or "")) // 4
    return len(text) // 4


@register("length", isolated=True)
def check_length(row: dict, options: dict) -> Verdict:
    low, high = options.get("min_tokens"), options.get("max_tokens")
    if low is None and high is None:
        return Verdict(True)
    tokens = completion_tokens(row)
    if low is not None and tokens < low:
        return Verdict(False, "too_short")
    if high is not None and tokens > high:
        return Verdict(False, "too_long")
    return Verdict(True)
