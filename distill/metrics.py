"""Benchmark scores from per-sample verdicts: pass@1 with its standard error, and cons@n.

The protocol is the DeepSeek-R1 paper's: n samples per problem, pass@1 = the mean over problems
of the share of a problem's samples that are correct (for n = 1, plain accuracy), and cons@n =
the share of problems whose majority answer (over the n extracted answers) is correct. Every
score is in percent, as the paper reports them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    """One verified sample: right or not, and the answer read from it (None: no answer)."""

    correct: bool
    answer: str | None = None


def pass_at_1(problems: Sequence[Sequence[Sample]]) -> tuple[float, float]:
    """pass@1 and its standard error, in percent.

    The standard error is that of a mean over problems: the sample standard deviation (n - 1)
    of the per-problem means, divided by the square root of the number of problems. It says how
    much the score would move on another draw of problems like these; the spread of the n
    samples within a problem is averaged away and not counted on top. With one problem it is 0.
    """
    means = [sum(s.correct for s in samples) / len(samples) for samples in problems if samples]
    if not means:
        return 0.0, 0.0
    mean = sum(means) / len(means)
    if len(means) == 1:
        return 100 * mean, 0.0
    variance = sum((m - mean) ** 2 for m in means) / (len(means) - 1)
    return 100 * mean, 100 * math.sqrt(variance / len(means))


_SPACES = re.compile(r"\s+")
_WRAPPERS = re.compile(r"\\left|\\right|\\!|\\,|\\;|\\ |\$")


def vote_key(answer: str) -> str:
    """The form answers are grouped by for voting: spacing, `$`, \\left/\\right, \\dfrac/\\tfrac
    and a trailing period removed. Equal values written differently (0.5 and \\frac{1}{2}) still
    vote apart; for integer and letter answers (AIME, AMC, GSM8K, GPQA) that cannot happen."""
    key = _WRAPPERS.sub("", answer)
    key = key.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    key = _SPACES.sub("", key).rstrip(".")
    return key


def majority(samples: Sequence[Sample]) -> Sample | None:
    """The sample standing for the most frequent answer; None when no sample has an answer.

    Samples without an answer do not vote. A tie goes to the answer seen first (in sample
    order), so the vote is deterministic. The group is right when its first sample is: samples
    with one answer get one verdict, since they are checked against the same gold answer.
    """
    counts: dict[str, int] = {}
    first: dict[str, Sample] = {}
    for s in samples:
        if s.answer is None or not s.answer.strip():
            continue
        key = vote_key(s.answer)
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, s)
    if not counts:
        return None
    best = max(counts.values())
    winner = next(key for key in first if counts[key] == best)  # dicts keep first-seen order
    return first[winner]


def cons_at_n(problems: Sequence[Sequence[Sample]]) -> float:
    """cons@n in percent: problems whose majority answer is correct (no answer at all: wrong)."""
    if not problems:
        return 0.0
    right = 0
    for samples in problems:
        winner = majority(samples)
        right += bool(winner is not None and winner.correct)
    return 100 * right / len(problems)


def quarter_means(losses: list[float]) -> tuple[float | None, float | None]:
    """The means of the first and the last quarter of a loss curve: one logged step is noisy
    (the last batch may be a single row), so a run's loss is told from quarter to quarter."""
    if not losses:
        return None, None
    quarter = max(1, len(losses) // 4)
    return sum(losses[:quarter]) / quarter, sum(losses[-quarter:]) / quarter
