"""Duplicates and contamination: exact keys, near-duplicate problems, benchmark n-gram overlap.

- Exact: a 64-bit hash of the problem and the completion, each lowercased with whitespace
  collapsed; two samples that say the same thing the same way are one.
- Near-duplicate problems: MinHash LSH (datasketch) over word 3-gram shingles of the problem.
  The first problem seen (in shard order) stays; later problems within the Jaccard threshold go,
  with all their samples. Memory grows with the number of distinct problems, so it is off unless
  `filter.near_dedup` sets a threshold.
- Contamination: a problem sharing any word n-gram (8 by default, as open-r1's decontamination
  does) with a benchmark problem goes; the benchmarks are named by dataset cards.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """Lowercased word tokens; punctuation, LaTeX markup and spacing do not count."""
    return _WORD.findall(text.lower())


def exact_key(problem: str, completion: str) -> int:
    """A signed 64-bit key (fits an Arrow int64) for exact-duplicate detection."""
    text = " ".join(problem.lower().split()) + "\x00" + " ".join(completion.lower().split())
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little", signed=True)


class Contamination:
    """Word n-grams of benchmark problems; `match(problem)` names the benchmark it overlaps."""

    def __init__(self, benchmarks: Iterable[tuple[str, str]], n: int = 8) -> None:
        self.n = n
        self.grams: dict[tuple[str, ...], str] = {}
        self.short: dict[tuple[str, ...], str] = {}  # problems shorter than n words: matched whole
        self.problems = 0
        for name, problem in benchmarks:
            self.problems += 1
            w = tuple(words(problem))
            if len(w) < n:
                if w:
                    self.short[w] = name
                continue
            for i in range(len(w) - n + 1):
                self.grams.setdefault(w[i : i + n], name)

    def match(self, problem: str) -> str | None:
        w = tuple(words(problem))
        if w in self.short:
            return self.short[w]
        for i in range(len(w) - self.n + 1):
            name = self.grams.get(w[i : i + self.n])
            if name is not None:
                return name
        return None


def load_contamination(sources, n: int) -> Contamination | None:
    """The n-gram index of the benchmark cards in `filter.decontaminate` (None when empty)."""
    if not sources:
        return None
    from ..sources import prompt_rows

    pairs = [(source.card.name, row["problem"]) for source in sources for row in prompt_rows(source)]
    return Contamination(pairs, n)


class NearDuplicates:
    """Problems seen so far, in a MinHash LSH index; `check` says whether a problem repeats one."""

    def __init__(self, threshold: float, num_perm: int = 64) -> None:
        from datasketch import MinHashLSH

        self.num_perm = num_perm
        self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self.decided: dict[str, bool] = {}  # problem id -> is a near duplicate of an earlier one
        self.owner: dict[int, str] = {}  # exact problem text key -> the id that introduced it

    def _minhash(self, text: str):
        from datasketch import MinHash

        w = words(text)
        shingles = {" ".join(w[i : i + 3]) for i in range(max(1, len(w) - 2))}
        m = MinHash(num_perm=self.num_perm)
        m.update_batch([s.encode() for s in shingles])
        return m

    def check(self, problem_id: str, text: str) -> bool:
        """True when `text` (under `problem_id`) nearly repeats a problem of another id seen earlier."""
        if problem_id in self.decided:
            return self.decided[problem_id]
        key = exact_key(text, "")
        if key in self.owner:  # the same text under another id
            duplicate = True
        else:
            self.owner[key] = problem_id
            m = self._minhash(text)
            duplicate = bool(self.lsh.query(m))
            if not duplicate:
                self.lsh.insert(problem_id, m)
        self.decided[problem_id] = duplicate
        return duplicate
