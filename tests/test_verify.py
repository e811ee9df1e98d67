"""Verifiers: answer extraction, math-verify verdicts, and the killable worker pool."""

from __future__ import annotations

import threading
import time

import pytest

from distill.prompting import split_think
from distill.verify import Verdict, run
from distill.verify.math import last_boxed
from distill.verify.pool import VerifyPool

OPTIONS = {"require_think": False, "reject_truncated": True, "timeout": 5.0}


def row(answer, completion, finish_reason="stop", domain="math"):
    reasoning, response, think = split_think(completion)
    return {"id": "x", "answer": answer, "completion": completion, "finish_reason": finish_reason, "domain": domain,
            "reasoning": reasoning, "response": response, "think": think}


def test_split_think():
    assert split_think("<think>\nsteps\n</think>\n\nAnswer 4") == ("steps", "Answer 4", "closed")
    assert split_think("steps</think>Answer") == ("steps", "Answer", "closed")  # forced-prefix style
    assert split_think("<think>\nnever closed") == ("never closed", "", "unclosed")
    assert split_think("plain answer 4") == (None, "plain answer 4", "none")


def test_last_boxed_matches_braces():
    assert last_boxed(r"so \boxed{\frac{1}{2}} and then \boxed{\sqrt{x^{2}}}.") == r"\sqrt{x^{2}}"
    assert last_boxed("no box here") is None
    assert last_boxed(r"\boxed{unbalanced") is None
    assert last_boxed(r"\boxed 5.") == "5"


# (gold, completion, kept, reason) — equivalent forms must pass, wrong ones must not.
CASES = [
    ("72", r"<think>48+24</think>The answer is \boxed{72}.", True, None),
    ("0.5", r"<think>half</think>\boxed{\frac{1}{2}}", True, None),
    ("\\frac{1}{2}", r"</think>\boxed{0.5}", True, None),
    ("1000", r"</think>\boxed{1,000}", True, None),
    ("2\\sqrt{2}", r"</think>\boxed{\sqrt{8}}", True, None),
    ("(1, 2)", r"</think>\boxed{(1,2)}", True, None),
    ("[0, 1)", r"</think>\boxed{[0,1)}", True, None),
    ("5", r"</think>So $x = 5$, i.e. \boxed{x=5}", True, None),
    ("\\text{(B)}", r"</think>\boxed{\text{(B)}}", True, None),
    ("11", "Tom has 4 + 7 = 11 apples.\n\nSo, Tom now has 11 apples.", True, None),  # no box: last number
    ("15", r"The final answer is 15. Your answer goes within \boxed{}.", True, None),  # empty box ignored
    ("72", r"</think>\boxed{73}", False, "wrong_answer"),
    ("3", r"</think>\boxed{-3}", False, "wrong_answer"),
    ("12", "</think>I am not sure.", False, "no_answer"),
    (None, r"</think>\boxed{4}", False, "no_gold"),
    ("4", r"<think>\boxed{4} but never closed", False, "think_unclosed"),
    ("4", "<think>ok</think>   ", False, "empty_response"),
]


@pytest.mark.parametrize("gold,completion,kept,reason", CASES)
def test_math_and_format_verdicts(gold, completion, kept, reason):
    verdict = run(("format", "math"), row(gold, completion), OPTIONS)
    assert (verdict.ok, verdict.reason) == (kept, reason), verdict


def test_truncated_and_require_think():
    assert run(("format",), row("4", r"\boxed{4}", finish_reason="length"), OPTIONS).reason == "truncated"
    strict = {**OPTIONS, "require_think": True}
    assert run(("format",), row("4", r"\boxed{4}"), strict).reason == "no_think"
    assert run(("format",), row("4", r"<think>a</think>\boxed{4}"), strict).ok


def test_math_skips_other_domains():
    assert run(("math",), row("4", "a poem", domain="general"), OPTIONS).ok


POWER_TOWER = r"</think>\boxed{9^{9^{9^{9}}}}"
LONG_SUM = "</think>\\boxed{" + "+".join(["1"] * 5000) + "}"


def test_pool_rejects_explosive_inputs_within_the_limit_and_goes_on():
    tasks = [
        ("tower", ("math",), row("1", POWER_TOWER), OPTIONS),
        ("sum", ("math",), row("5000", LONG_SUM), OPTIONS),
        ("good", ("math",), row("4", r"</think>\boxed{4}"), OPTIONS),
    ]
    start = time.monotonic()
    with VerifyPool(workers=2, timeout=3.0) as pool:
        results = dict(pool.imap(iter(tasks)))
        assert results["good"] == Verdict(True, None, "4")
        assert not results["tower"].ok and not results["sum"].ok
        assert results["tower"].reason == "timeout"
        # the pool still works after killing workers
        assert dict(pool.imap(iter([("again", ("math",), row("9", r"\boxed{9}"), OPTIONS)])))["again"].ok
    assert time.monotonic() - start < 3.0 * 2 + 10


def test_pool_timeout_kills_the_worker():
    with VerifyPool(workers=1, timeout=1.0) as pool:
        pid = pool.workers[0].process.pid
        start = time.monotonic()
        ((_, verdict),) = list(pool.imap(iter([("tower", ("math",), row("1", POWER_TOWER), OPTIONS)])))
        elapsed = time.monotonic() - start
        assert verdict == Verdict(False, "timeout")
        assert pool.workers[0].process.pid != pid  # killed and replaced
        assert 0.9 < elapsed < 5
        assert pool.stats["timeout"] == 1


def test_worker_killed_from_outside_is_retried_then_crashed():
    import os
    import signal

    with VerifyPool(workers=1, timeout=60.0) as pool:
        killed = []

        def killer():
            for _ in range(2):  # the first attempt and its one retry
                time.sleep(1.0)
                pid = pool.workers[0].process.pid
                killed.append(pid)
                os.kill(pid, signal.SIGKILL)

        thread = threading.Thread(target=killer)
        thread.start()
        start = time.monotonic()
        ((_, verdict),) = list(pool.imap(iter([("slow", ("math",), row("1", POWER_TOWER), OPTIONS)])))
        thread.join()
        assert verdict == Verdict(False, "crashed")
        assert len(set(killed)) == 2 and pool.stats == {"timeout": 0, "crashed": 1, "retried": 1}
        assert time.monotonic() - start < 30


JOBS = "distill.filter.filterwork"  # the module whose run_job runs a Job: the filter's


def _range_job(tmp_path, hang_at: int, rows: int = 10):
    """A job over a real trace file whose row `hang_at` runs until it is killed."""
    from helpers import trace, write_traces

    from distill.verify.wire import Job

    traces = [trace(f"p{i}", "4", r"</think>\boxed{4}" if i != hang_at else POWER_TOWER) for i in range(rows)]
    path = write_traces(tmp_path / "traces", [traces]) / "shard-00000.parquet"
    return Job("file", "verify", (str(path), ("format", "math"), OPTIONS, frozenset()), 0, rows)


def test_a_row_of_a_range_that_overruns_costs_only_that_row(tmp_path):
    with VerifyPool(workers=1, timeout=1.5, jobs=JOBS) as pool:
        answers = dict(pool.imap(iter([_range_job(tmp_path, hang_at=4)])))
    assert answers.pop(("file", 4)) == Verdict(False, "timeout")
    assert answers == {("file", i): (True, None, "4") for i in range(10) if i != 4}
    assert pool.stats["timeout"] == 1


def test_a_row_of_a_range_whose_worker_is_killed_is_retried_then_crashed(tmp_path):
    import os
    import signal

    with VerifyPool(workers=1, timeout=60.0, jobs=JOBS) as pool:
        killed = []

        def killer():
            for _ in range(2):  # the first attempt and its one retry, both on the hanging row
                time.sleep(1.5)
                killed.append(pool.workers[0].process.pid)
                os.kill(killed[-1], signal.SIGKILL)

        thread = threading.Thread(target=killer)
        thread.start()
        answers = dict(pool.imap(iter([_range_job(tmp_path, hang_at=6)])))
        thread.join()
    assert answers.pop(("file", 6)) == Verdict(False, "crashed")
    assert answers == {("file", i): (True, None, "4") for i in range(10) if i != 6}
    assert len(set(killed)) == 2 and pool.stats == {"timeout": 0, "crashed": 1, "retried": 1}


def test_repetition_share_in_numpy_equals_the_plain_definition():
    import random

    from distill.verify.repetition import repeated_share, repeated_share_exact, repeated_share_numpy, repeats_above

    rng = random.Random(0)
    vocabulary = ["the", "sum", "x", "=", "3", "Wait,", "let", "me", "check", "é", "\\frac{1}{2}", "∑", "每天", "ab", "ba",
                  "\x00", "\x00\x00", "a\x00", "a"]  # NULs: a word of zeros is not the empty sum
    # every kind of whitespace str.split() knows, ASCII and not, runs of it, and none at the ends
    spaces = [" ", "\n", "\t", "  ", "\r\n", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0", "\u2003", "\u3000", "\u2029"]
    for trial in range(300):
        words = [rng.choice(vocabulary) for _ in range(rng.randint(0, 400 if trial % 2 else 3000))]
        if trial % 3 == 0:  # a loop
            words += words[-rng.randint(1, 30):] * rng.randint(1, 20)
        text = "".join(w + rng.choice(spaces) for w in words)
        text = rng.choice(["", " ", "\n"]) + text
        if trial % 5 == 0:  # ASCII only: read a byte a character
            text = text.encode("ascii", "ignore").decode()
        for n in (2, 10):
            if trial == 0:  # nothing at all, and whitespace only
                assert repeated_share_numpy("", n) == repeated_share_numpy(" \n", n) == 0.0
            exact = repeated_share_exact(text, n)
            assert repeated_share_numpy(text, n) == exact and repeated_share(text, n) == exact, (trial, n)
            for threshold in (0.0, 0.05, 0.2, 0.5):  # judged on signatures first, exactly when that is not enough
                assert repeats_above(text, n, threshold) == (exact > threshold), (trial, n, threshold)


def test_letters_per_script_counted_as_one_regex_pass_per_script_counts_them():
    import random

    from distill.verify.language import _NOT_LANGUAGE, _patterns, has_foreign_letters, script_counts

    def by_regex(text):  # the plain way: every letter matched, one pass per script
        text = _NOT_LANGUAGE.sub(" ", text)
        return {name: len(p.findall(text)) for name, p in _patterns()[0].items()}

    pieces = ["plain ASCII reasoning, x = 3 ", "with × and − and α, π, é, ñ ", "mixed 每天 in", "Сначала ", "ثم", "שלום",
              "नमस्ते", "สวัสดี", "カタカナ", "한국어", "fullwidth Ａ ", "∑∫√", "emoji 🙂 ", "中a中", " a ", "\\frac{a}{b} ",
              "\\alpha", "ºª", "\ud800",
              # single letters beside every kind of neighbour `\\b` tells apart
              "x²", "_y", "3z", "a×b", "πr", "\\\\q", "\\x1", "ⅷc", "é", "q", "\\", "a", "-", "b\\c",
              "🙂d", "e🙂", "𠀀f𠀀", "\ud800g", "\ud840", "\udc00", "\ud840h\udc00"]
    rng = random.Random(1)
    for trial in range(1000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        counts = by_regex(text)
        assert script_counts(text) == counts, text
        assert has_foreign_letters(text) == any(v for k, v in counts.items() if k != "latin"), text


def test_language_and_repetition_on_random_code_points_equal_the_plain_definitions():
    """Random text from every plane the checks treat apart (controls, Latin-1, Greek to Thai,
    spaces and math symbols, CJK, Hangul, lone surrogates, emoji, CJK beyond the BMP), some of
    it looping: the numpy counts equal the plain definitions."""
    import random

    from distill.verify.language import _NOT_LANGUAGE, _patterns, has_foreign_letters, script_counts
    from distill.verify.repetition import repeated_share_exact, repeated_share_numpy, repeats_above

    ranges = [(0x0, 0x20), (0x80, 0x250), (0x370, 0x700), (0x900, 0x980), (0xE00, 0xE80), (0x2000, 0x2070),
              (0x2200, 0x2300), (0x3000, 0x3100), (0x4E00, 0x4F00), (0xAC00, 0xAC80), (0xD800, 0xE000),
              (0xFF00, 0xFFF0), (0x1F600, 0x1F650), (0x20000, 0x20100)]
    rng = random.Random(2)
    for trial in range(600):
        chars = []
        for _ in range(rng.choice([0, 1, 5, 50, 500, 3000])):
            r = rng.random()
            if r < 0.55:
                chars.append(rng.choice("abcdefghijklmnopqrstuvwxyzABCXYZ"))
            elif r < 0.7:
                chars.append(rng.choice(" \n\t\\_0123456789{}$"))
            else:
                low, high = rng.choice(ranges)
                chars.append(chr(rng.randrange(low, high)))
        text = "".join(chars)
        if trial % 4 == 0:  # a loop in front
            text = " ".join(text.split()[:20] * rng.randint(1, 30)) + text
        blanked = _NOT_LANGUAGE.sub(" ", text)
        counts = {name: len(p.findall(blanked)) for name, p in _patterns()[0].items()}
        assert script_counts(text) == counts, trial
        assert has_foreign_letters(text) == any(v for k, v in counts.items() if k != "latin"), trial
        for n in (2, 10):
            exact = repeated_share_exact(text, n)
            assert repeated_share_numpy(text, n) == exact, (trial, n)
            assert all(repeats_above(text, n, t) == (exact > t) for t in (0.0, 0.1, 0.2, 0.5)), (trial, n)
