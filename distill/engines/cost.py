"""What a served teacher's answers cost, from the prices on the teacher card.

Prices are per million tokens, as providers list them. Cached input tokens (a prompt prefix the
provider had seen) are billed at `cached_input` where the usage reports them; batch requests get
`batch_discount` off everything (OpenAI and Anthropic: half price).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import _require


@dataclass(frozen=True)
class Prices:
    input: float = 0.0  # per million prompt tokens
    output: float = 0.0  # per million completion tokens (reasoning included)
    cached_input: float | None = None  # per million cached prompt tokens; None: as `input`
    batch_discount: float = 0.5  # share taken off in batch mode

    def __post_init__(self) -> None:
        for name in ("input", "output"):
            _require(getattr(self, name) >= 0, name, getattr(self, name), "must be 0 or more")
        _require(self.cached_input is None or self.cached_input >= 0, "cached_input", self.cached_input, "must be 0 or more")
        _require(0 <= self.batch_discount < 1, "batch_discount", self.batch_discount, "must be in [0, 1)")

    def cost(self, prompt_tokens: int | None, completion_tokens: int | None, cached_tokens: int = 0,
             batch: bool = False) -> float | None:
        """The price of one request; None where the server reported no usage."""
        if prompt_tokens is None or completion_tokens is None:
            return None
        cached = min(cached_tokens or 0, prompt_tokens)
        cached_price = self.input if self.cached_input is None else self.cached_input
        total = ((prompt_tokens - cached) * self.input + cached * cached_price + completion_tokens * self.output) / 1e6
        return total * (1 - self.batch_discount) if batch else total


def usage_of(usage) -> tuple[int | None, int | None, int]:
    """(prompt, completion, cached) tokens from an OpenAI usage object or dict (None: absent)."""
    if usage is None:
        return None, None, 0
    get = usage.get if isinstance(usage, dict) else lambda k, d=None: getattr(usage, k, d)
    details = get("prompt_tokens_details", None)
    if details is not None and not isinstance(details, dict):
        details = {"cached_tokens": getattr(details, "cached_tokens", 0)}
    cached = (details or {}).get("cached_tokens") or 0
    return get("prompt_tokens", None), get("completion_tokens", None), cached
