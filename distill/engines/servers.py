"""Several servers behind one teacher: least-loaded routing, draining, and AIMD concurrency.

Each server has its own concurrency limit, which starts at the card's `concurrency`, is halved
when the server answers 429 (at most once per second, so one storm of rejections counts once)
and grows back by one per limit's worth of successes (additive increase, multiplicative
decrease, as TCP does). A request goes to the healthy server with the fewest requests in flight
relative to its limit. A server that fails (connection refused or dropped, timeout, 5xx) is
drained: it gets no request for `drain` seconds, doubling on each further failure up to a
minute; then it is tried with a single request, and a success puts it back in full. When
every server is drained (a single server, say), they are probed at once instead: the request's
own retry backoff paces them.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

OK, THROTTLED, FAILED, NEUTRAL = "ok", "throttled", "failed", "neutral"
MAX_DRAIN = 60.0
CUT_EVERY = 1.0  # seconds between two halvings of one server's limit


@dataclass
class Server:
    url: str
    client: object
    cap: int  # the card's concurrency: the limit never grows past it
    limit: float = 0.0
    in_flight: int = 0
    down_until: float = 0.0
    probing: bool = False  # drained and back on trial: one request at a time until a success
    rest: float = 0.0
    cut_at: float = -1e9
    answered: int = field(default=0)

    def room(self) -> int:
        return (1 if self.probing else max(1, int(self.limit))) - self.in_flight


class Pool:
    def __init__(self, servers: list[Server], drain: float) -> None:
        self.servers = servers
        self.drain = drain
        for s in servers:
            s.limit, s.rest = float(s.cap), drain
        self._changed = asyncio.Condition()

    async def take(self) -> Server:
        """A server with room, the least loaded first; waits while none has."""
        loop = asyncio.get_running_loop()
        async with self._changed:
            while True:
                now = loop.time()
                # when every server is drained, waiting helps nobody: probe them (one request each)
                up = [s for s in self.servers if s.down_until <= now] or self.servers
                ready = [s for s in up if s.room() > 0]
                if ready:
                    server = min(ready, key=lambda s: (s.in_flight / max(s.limit, 1.0), random.random()))
                    server.in_flight += 1
                    return server
                wake = [s.down_until - now for s in self.servers if s.down_until > now]
                try:
                    await asyncio.wait_for(self._changed.wait(), timeout=min(wake) if wake else None)
                except TimeoutError:
                    pass

    async def give(self, server: Server, outcome: str) -> None:
        """Return `server`'s slot and learn from how its request went."""
        now = asyncio.get_running_loop().time()
        async with self._changed:
            server.in_flight -= 1
            if outcome == OK:
                server.answered += 1
                server.probing, server.rest = False, self.drain
                server.limit = min(float(server.cap), server.limit + 1.0 / max(server.limit, 1.0))
            elif outcome == THROTTLED:
                if now - server.cut_at >= CUT_EVERY:
                    server.limit, server.cut_at = max(1.0, server.limit / 2), now
            elif outcome == FAILED:
                server.down_until = now + server.rest * random.uniform(0.8, 1.2)
                server.rest = min(server.rest * 2, MAX_DRAIN)
                server.probing = True
            self._changed.notify_all()
