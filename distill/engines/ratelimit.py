"""Rate budgets for a served teacher: token buckets for requests and tokens per minute.

Providers meter requests per minute (RPM) and tokens per minute (TPM). A bucket refills at the
budget's rate and holds at most one second's worth, so the run never bursts far above the
budget. Tokens are not known before the answer, so a request takes its estimate up front and
settles the difference afterwards; the level may go below zero, which then holds back the
next requests until the refill has paid the debt. The long-run rate is the budget either way.
"""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    def __init__(self, per_minute: float, clock=time.monotonic) -> None:
        self.rate = per_minute / 60.0  # units per second
        self.capacity = max(1.0, self.rate)  # one second of burst
        self.level = self.capacity
        self._clock = clock
        self._at = clock()
        self._lock = asyncio.Lock()
        self.waited = 0.0  # seconds requests spent waiting here, all together

    def _refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._at) * self.rate)
        self._at = now

    async def take(self, amount: float) -> None:
        """Wait until the bucket is not in debt and holds `amount` (or is full), then take it."""
        async with self._lock:  # first come, first served: waiting requests queue in order
            while True:
                self._refill()
                need = min(amount, self.capacity)
                if self.level >= need:
                    self.level -= amount
                    return
                pause = (need - self.level) / self.rate
                self.waited += pause
                await asyncio.sleep(pause)

    def settle(self, difference: float) -> None:
        """Add the difference between a request's real use and its estimate (may go negative)."""
        self._refill()
        self.level = min(self.capacity, self.level - difference)


class Budgets:
    """The card's `rpm` and `tpm` together (either may be absent)."""

    def __init__(self, rpm: float | None, tpm: float | None) -> None:
        self.requests = TokenBucket(rpm) if rpm else None
        self.tokens = TokenBucket(tpm) if tpm else None

    async def take(self, estimate: int) -> None:
        if self.requests is not None:
            await self.requests.take(1)
        if self.tokens is not None:
            await self.tokens.take(estimate)

    def waited(self) -> float:
        return sum(b.waited for b in (self.requests, self.tokens) if b is not None)

    def settle(self, estimate: int, used: int | None) -> None:
        if self.tokens is not None and used is not None:
            self.tokens.settle(used - estimate)
