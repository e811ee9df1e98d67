"""Format checks: not truncated, `<think>` closed (or required), a non-empty response."""

from __future__ import annotations

from . import Verdict, register


@register("format", isolated=False)
def check_format(row: dict, options: dict) -> Verdict:
    if options.get("reject_truncated", True) and row.get("finish_reason") == "length":
        return Verdict(False, "truncated")
    if row["think"] == "unclosed":
        return Verdict(False, "think_unclosed")
    if row["think"] == "none" and options.get("require_think", False):
        return Verdict(False, "no_think")
    if not row["response"]:
        return Verdict(False, "empty_response")
    return Verdict(True)
