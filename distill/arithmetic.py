"""A seeded generator of short arithmetic word problems with exact answers.

It lets the quickstart run with no network, and it is easy enough that a 135M-parameter
teacher gets a fair share right, so the filter has something to keep and something to drop.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

NAMES = ("Tom", "Ann", "Lily", "Sam", "Maya", "Leo", "Nora", "Ben", "Zoe", "Omar")
ITEMS = ("apples", "pens", "books", "stickers", "marbles", "cookies", "shells", "coins")


def _gets_more(rng: random.Random) -> tuple[str, int]:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    return f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?", a + b


def _gives_away(rng: random.Random) -> tuple[str, int]:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a = rng.randint(6, 15)
    b = rng.randint(1, a - 1)
    return f"{name} has {a} {item} and gives away {b}. How many {item} does {name} have left?", a - b


def _plain_sum(rng: random.Random) -> tuple[str, int]:
    a, b = rng.randint(2, 20), rng.randint(2, 20)
    return f"What is {a} + {b}?", a + b


def _plain_product(rng: random.Random) -> tuple[str, int]:
    a, b = rng.randint(2, 6), rng.randint(2, 5)
    return f"What is {a} times {b}?", a * b


def _boxes(rng: random.Random) -> tuple[str, int]:
    item = rng.choice(ITEMS)
    a, b = rng.randint(2, 5), rng.randint(2, 4)
    return f"A box holds {a} {item}. How many {item} are in {b} boxes?", a * b


KINDS = {
    "gets_more": _gets_more,
    "gives_away": _gives_away,
    "plain_sum": _plain_sum,
    "plain_product": _plain_product,
    "boxes": _boxes,
}


def arithmetic(count: int = 100, seed: int = 0, kinds: list[str] | None = None) -> Iterator[dict]:
    """Yield `count` distinct problems {id, problem, answer}; the same seed gives the same rows."""
    makers = [KINDS[k] for k in (kinds or list(KINDS))]
    rng = random.Random(seed)
    seen: set[str] = set()
    attempts = 0
    while len(seen) < count:
        attempts += 1
        if attempts > 100 * count:
            raise ValueError(f"cannot make {count} distinct problems from kinds {kinds}")
        problem, answer = rng.choice(makers)(rng)
        if problem in seen:
            continue
        seen.add(problem)
        yield {"id": f"{seed}-{len(seen) - 1:06d}", "problem": problem, "answer": str(answer)}
