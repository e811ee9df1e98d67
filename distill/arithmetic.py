"""A seeded generator of short arithmetic word problems with exact answers.

It lets the quickstart run with no network, and it is easy enough that a 135M-parameter
teacher gets a fair share right, so the filter has something to keep and something to drop.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator

SPLITS = ("all", "train", "test")

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


def split_of(problem: str) -> str:
    """A problem's split, from its text alone: one in ten is `test`, whatever the seed or count,
    so a `train` card and a `test` card never share a problem."""
    return "test" if int(hashlib.sha1(problem.encode()).hexdigest()[:8], 16) % 10 == 0 else "train"


def arithmetic(count: int = 100, seed: int = 0, kinds: list[str] | None = None, split: str = "all") -> Iterator[dict]:
    """Yield `count` distinct problems {id, problem, answer}; the same seed gives the same rows.
    `split` train or test: only problems of that split (see split_of); all: any."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    makers = [KINDS[k] for k in (kinds or list(KINDS))]
    rng = random.Random(seed)
    seen: set[str] = set()
    attempts = 0
    while len(seen) < count:
        attempts += 1
        if attempts > 100 * count:
            raise ValueError(f"cannot make {count} distinct problems from kinds {kinds}")
        problem, answer = rng.choice(makers)(rng)
        if problem in seen or (split != "all" and split_of(problem) != split):
            continue
        seen.add(problem)
        prefix = f"{seed}-" if split == "all" else f"{seed}-{split}-"
        yield {"id": f"{prefix}{len(seen) - 1:06d}", "problem": problem, "answer": str(answer)}
