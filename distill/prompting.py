"""Prompts for the teacher and the chat turns the student learns, split at `</think>`."""

from __future__ import annotations

from .config import PromptTemplate

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


def user_message(template: PromptTemplate, problem: str) -> str:
    return template.user.replace("{problem}", problem)


def prompt_messages(template: PromptTemplate, problem: str) -> list[dict]:
    """The chat turns before the assistant's answer: optional system, then the user turn."""
    system = [{"role": "system", "content": template.system}] if template.system else []
    return system + [{"role": "user", "content": user_message(template, problem)}]


def split_think(completion: str) -> tuple[str | None, str, str]:
    """Split a completion into (reasoning, response, state); state is closed, unclosed or none.

    The reasoning is what precedes the last `</think>` (a leading `<think>` removed); a
    completion that opens `<think>` and never closes it has no response at all.
    """
    head, sep, tail = completion.rpartition(THINK_CLOSE)
    if sep:
        reasoning = head.strip()
        if reasoning.startswith(THINK_OPEN):
            reasoning = reasoning[len(THINK_OPEN):].strip()
        return reasoning, tail.strip(), "closed"
    stripped = completion.strip()
    if stripped.startswith(THINK_OPEN):
        return stripped[len(THINK_OPEN):].strip(), "", "unclosed"
    return None, stripped, "none"


def assistant_content(reasoning: str | None, response: str) -> str:
    """The assistant turn as TRL, open-r1 and LLaMA-Factory train on it (DESIGN §3)."""
    if reasoning is None:
        return response
    return f"{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}\n\n{response}"
