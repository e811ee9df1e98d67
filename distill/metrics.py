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


def difference(trained: dict, base: dict) -> tuple[float, float]:
    """Trained minus base pass@1 (scores.json entries), and the standard error of that difference:
    the two scores are estimates from separate samples, so their variances add:
    sqrt(se_trained² + se_base²). (Both are scored on the same problems, which would let a paired
    SE be smaller; this one is the plain, conservative one.)"""
    return trained["pass@1"] - base["pass@1"], math.hypot(trained["pass@1_se"], base["pass@1_se"])


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


def loss_points(history: list[dict]) -> list[tuple[int, float, float | None]]:
    """(step, loss, tokens) per logged training loss in a trainer's log history. `tokens` is how
    many tokens the batches since the previous logged loss held: the step in TRL's running
    `num_tokens` (prompt tokens and all, padding not). None where the log has no `num_tokens`, or
    where it did not grow (a resumed run that counted from 0 again)."""
    points: list[tuple[int, float, float | None]] = []
    seen = 0.0
    for e in history:
        if not isinstance(e, dict) or not isinstance(e.get("loss"), (int, float)) or not isinstance(e.get("step"), int):
            continue
        total = e.get("num_tokens")
        tokens = None
        if isinstance(total, (int, float)) and total > seen:
            tokens, seen = float(total) - seen, float(total)
        points.append((e["step"], float(e["loss"]), tokens))
    return points


def short_batches(points: list[tuple[int, float, float | None]]) -> set[int]:
    """The steps whose batches held less than half the median step's tokens: the leftover batch
    at the end of an epoch (one or two rows), whose loss is that of one or two rows, not of a batch."""
    sizes = sorted(t for _, _, t in points if t)
    if len(sizes) < 3 or len(sizes) < len(points):
        return set()
    median = sizes[len(sizes) // 2]
    return {step for step, _, t in points if t < median / 2}


def quarter_means(losses: list[float], weights: list[float | None] | None = None) -> tuple[float | None, float | None]:
    """The mean loss over the first and the last quarter of training: one logged step is noisy,
    so a run's loss is told from quarter to quarter.

    With `weights` (each step's tokens, as `loss_points` gives them) the quarters are quarters of
    the training tokens and each step counts by its tokens: the mean per token, as the loss itself
    is. A leftover batch of one row at the end of an epoch (the quickstart's last step: 58 tokens,
    loss 1.09, where a step holds about 300) then counts as the few tokens it is instead of as a
    whole step; with few steps it no longer makes up the last quarter alone. We weigh rather
    than drop it: its tokens were trained on, and weighing needs no threshold for "too short"
    (the loss plot needs one to mark such steps: `short_batches`). Training is unchanged.
    Without weights (or with one missing) every step counts the same."""
    if not losses:
        return None, None
    if weights is None or len(weights) != len(losses) or any(not w or w <= 0 for w in weights):
        quarter = max(1, len(losses) // 4)  # whole steps, a quarter at least one
        return sum(losses[:quarter]) / quarter, sum(losses[-quarter:]) / quarter
    total = float(sum(weights))

    def mean_over(start: float, end: float) -> float:
        # the loss as a step function of the tokens seen, averaged over tokens start..end
        acc, at = 0.0, 0.0
        for loss, w in zip(losses, weights):
            overlap = min(end, at + w) - max(start, at)
            if overlap > 0:
                acc += loss * overlap
            at += w
        return acc / (end - start)

    return mean_over(0.0, total / 4), mean_over(3 * total / 4, total)
