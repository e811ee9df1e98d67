"""filter beyond verification: decontamination, dedup, selection, pass rates, quotas, ranks,
resume inside the second pass, the report and its plot."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.dataset as pads
import pytest
from helpers import ROOT, run_cli, trace, write_traces

from distill.filter import stage as filter_mod
from distill import shards
from distill.filter.stage import run_filter
from distill.recipes import load_recipe

SHARED = ROOT.parent / "shared" / "data"
RIGHT = "<think>\nworking it out step by step\n</think>\n\n\\boxed{{{}}}"


def kept(out: Path) -> list[dict]:
    return pads.dataset(out / "filtered" / "data", format="parquet").to_table().to_pylist()


def rejected(out: Path) -> dict[tuple[str, int], str]:
    rows = pads.dataset(out / "filtered" / "rejected", format="parquet").to_table().to_pylist()
    return {(r["id"], r["sample_idx"]): r["reject_reason"] for r in rows}


def recipe(*sets: str):
    return load_recipe(None, ["filter.timeout=3", "filter.workers=1", *sets])


def test_exact_duplicates_across_files_are_dropped(tmp_path):
    a = trace("p1", "4", RIGHT.format(4), problem="What is 2 + 2?")
    same_text = trace("p1", "4", RIGHT.format(4), sample_idx=1, problem="What is 2 + 2?")
    respaced = trace("p1", "4", RIGHT.format(4).replace(" ", "  ").upper().replace("BOXED", "boxed"),
                     sample_idx=2, problem="What   is 2 + 2?")
    other = trace("p1", "4", RIGHT.format("2+2"), sample_idx=3, problem="What is 2 + 2?")
    src = write_traces(tmp_path / "in", [[a, same_text], [respaced, other]])
    run_filter(recipe(), src, tmp_path / "o")
    assert sorted(r["sample_idx"] for r in kept(tmp_path / "o")) == [0, 3]
    assert rejected(tmp_path / "o") == {("p1", 1): "duplicate", ("p1", 2): "duplicate"}
    run_filter(recipe("filter.dedup=false"), src, tmp_path / "o2")
    assert len(kept(tmp_path / "o2")) == 4


def test_near_duplicate_problems_keep_the_first(tmp_path):
    base = ("A train leaves the station at noon travelling at sixty miles per hour towards a city that is "
            "one hundred and eighty miles away. At what time does it arrive at the city?")
    near = base.replace("noon", "midday")
    unrelated = "Find the number of positive divisors of 3600 that are perfect squares and also multiples of 4."
    rows = [trace("first", "3", RIGHT.format(3), problem=base), trace("first", "3", RIGHT.format("3.0"), sample_idx=1, problem=base),
            trace("second", "3", RIGHT.format(3), problem=near), trace("third", "6", RIGHT.format(6), problem=unrelated),
            trace("copy", "3", RIGHT.format(3), problem=base)]  # same text under another id
    src = write_traces(tmp_path / "in", [rows[:2], rows[2:]])
    run_filter(recipe("filter.near_dedup=0.7"), src, tmp_path / "o")
    assert sorted({r["id"] for r in kept(tmp_path / "o")}) == ["first", "third"]
    assert rejected(tmp_path / "o") == {("second", 0): "near_duplicate", ("copy", 0): "near_duplicate"}


def _benchmark_file(tmp_path: Path) -> Path:
    path = tmp_path / "bench.jsonl"
    problems = ["Let $x$ be the smallest positive integer such that $x^2$ ends in the digits 444. Find the "
                "remainder when $x$ is divided by 1000.", "What is 1 + 1?"]
    path.write_text("".join(json.dumps({"problem": p, "answer": "1", "unique_id": f"b{i}"}) + "\n"
                            for i, p in enumerate(problems)))
    return path


def test_benchmark_problems_are_decontaminated(tmp_path):
    leaked = ("Here is one for you. Let x be the smallest positive integer such that x^2 ends in the digits 444; "
              "find the remainder when x is divided by 1000.")
    rows = [trace("leak", "38", RIGHT.format(38), problem=leaked),
            trace("short", "2", RIGHT.format(2), problem="What is 1+1?"),  # shorter than 8 words: matched whole
            trace("clean", "2", RIGHT.format(2), problem="What is one plus one, written as a digit, in base ten?")]
    src = write_traces(tmp_path / "in", [rows])
    bench = _benchmark_file(tmp_path)
    result = run_filter(recipe(f"filter.decontaminate=[{{card: math500, path: {bench}}}]"), src, tmp_path / "o")
    assert [r["id"] for r in kept(tmp_path / "o")] == ["clean"]
    assert rejected(tmp_path / "o") == {("leak", 0): "contaminated", ("short", 0): "contaminated"}
    assert result["contaminated"] == {"math500": 2}


@pytest.mark.skipif(not (SHARED / "math500.jsonl").is_file(), reason="needs ../shared/data")
def test_decontamination_against_the_shared_benchmark_files(tmp_path):
    math500 = json.loads((SHARED / "math500.jsonl").read_text().splitlines()[7])["problem"]
    gsm8k = json.loads((SHARED / "gsm8k_test.jsonl").read_text().splitlines()[3])["question"]
    rows = [trace("m", "1", RIGHT.format(1), problem="Rephrased: " + math500),
            trace("g", "1", RIGHT.format(1), problem=gsm8k.upper()),
            trace("c", "1", RIGHT.format(1), problem="A wholly new problem about counting lattice points on a circle.")]
    src = write_traces(tmp_path / "in", [rows])
    sets = [f"filter.decontaminate=[{{card: math500, path: {SHARED / 'math500.jsonl'}}}, "
            f"{{card: gsm8k-test, path: {SHARED / 'gsm8k_test.jsonl'}}}, {{card: aime24, path: {SHARED / 'aime24.jsonl'}}}, "
            f"{{card: amc23, path: {SHARED / 'amc23.jsonl'}}}]"]
    result = run_filter(recipe(*sets), src, tmp_path / "o")
    assert [r["id"] for r in kept(tmp_path / "o")] == ["c"]
    assert result["contaminated"] == {"math500": 1, "gsm8k-test": 1}


def _problem(pid: str, answers: list[str], lengths: list[int]) -> list[dict]:
    rows = []
    for i, (answer, n) in enumerate(zip(answers, lengths)):
        row = trace(pid, "4", "<think>\n" + " ".join(f"step{j}" for j in range(n)) + f"\n</think>\n\n\\boxed{{{answer}}}", sample_idx=i,
                    problem=f"Problem {pid}: 2 + 2")
        row["completion_tokens"] = n
        rows.append(row)
    return rows


@pytest.mark.parametrize("select,k,expected", [
    ("all", 1, {0, 2, 3}), ("first", 1, {0}), ("first", 2, {0, 2}), ("shortest", 1, {3}), ("shortest", 2, {2, 3}),
])
def test_selection_per_problem_and_pass_rate(tmp_path, select, k, expected):
    src = write_traces(tmp_path / "in", [_problem("p", ["4", "5", "4", "4"], [30, 10, 20, 5])])
    run_filter(recipe(f"filter.select={select}", f"filter.select_k={k}"), src, tmp_path / "o")
    rows = kept(tmp_path / "o")
    assert {r["sample_idx"] for r in rows} == expected
    assert all(r["pass_rate"] == pytest.approx(0.75) for r in rows)
    reasons = rejected(tmp_path / "o")
    assert reasons.pop(("p", 1)) == "wrong_answer"
    assert set(reasons.values()) <= {"not_selected"} and len(reasons) == 3 - len(expected)


def _mixture(tmp_path: Path) -> Path:
    files = []
    for f in range(4):
        rows = []
        for i in range(10):
            rows += _problem(f"m{f}-{i}", ["4", "4"], [10, 12])
            g = trace(f"g{f}-{i}", None, f"Hello number {f}-{i}, here is a friendly reply.", domain="general",
                      problem=f"Say hello to {f}-{i}")
            g["source"] = "chat"
            rows.append(g)
        files.append(rows)
    return write_traces(tmp_path / "in", files)  # 80 math rows, 40 general rows


def test_quotas_and_target_are_exact_and_seeded(tmp_path):
    src = _mixture(tmp_path)
    sets = ["filter.quotas={math: 30, general: 0.25}", "filter.target=40"]
    result = run_filter(recipe(*sets), src, tmp_path / "a")
    rows = kept(tmp_path / "a")
    assert [r["domain"] for r in rows].count("math") == 30 and [r["domain"] for r in rows].count("general") == 10
    assert result["reasons"]["over_quota"] == 80
    assert result["quotas"]["groups"]["math"] == {"wanted": 30, "available": 80, "kept": 30}
    again = run_filter(recipe(*sets), src, tmp_path / "b")
    assert kept(tmp_path / "b") == rows and again["kept"] == 40
    other = run_filter(recipe(*sets, "filter.seed=1"), src, tmp_path / "c")
    assert other["kept"] == 40 and {r["id"] for r in kept(tmp_path / "c")} != {r["id"] for r in rows}
    # by source, and a target alone
    run_filter(recipe("filter.quota_by=source", "filter.quotas={chat: 5}"), src, tmp_path / "d")
    assert [r["source"] for r in kept(tmp_path / "d")].count("chat") == 5 and len(kept(tmp_path / "d")) == 85
    run_filter(recipe("filter.target=7"), src, tmp_path / "e")
    assert len(kept(tmp_path / "e")) == 7


def test_ranks_give_the_same_rows_as_one_process(tmp_path):
    src = _mixture(tmp_path)
    sets = ["filter.target=50", "filter.select=first"]
    run_filter(recipe(*sets), src, tmp_path / "one")
    part = run_filter(recipe(*sets), src, tmp_path / "two", rank=1, world_size=2)
    assert part["complete"] is False and part["files_done"] == 2
    run_filter(recipe(*sets), src, tmp_path / "two", rank=0, world_size=2)
    assert kept(tmp_path / "two") == kept(tmp_path / "one")
    assert rejected(tmp_path / "two") == rejected(tmp_path / "one")
    assert not (tmp_path / "two" / "filtered" / "_pass1").exists()


def test_a_crash_in_the_second_pass_resumes_to_the_same_rows(tmp_path, monkeypatch):
    src = _mixture(tmp_path)
    sets = ["filter.target=50"]
    run_filter(recipe(*sets), src, tmp_path / "clean")
    real, calls = shards.mark_done, []

    def crash_on_third_final_shard(stage, index):
        if stage.name == "filtered":
            calls.append(index)
            if len(calls) == 3:
                raise KeyboardInterrupt  # as if killed here
        real(stage, index)

    monkeypatch.setattr(shards, "mark_done", crash_on_third_final_shard)
    with pytest.raises(KeyboardInterrupt):
        run_filter(recipe(*sets), src, tmp_path / "crashed")
    monkeypatch.setattr(shards, "mark_done", real)
    assert shards.done(tmp_path / "crashed" / "filtered") == {0, 1}
    run_filter(recipe(*sets), src, tmp_path / "crashed")
    assert kept(tmp_path / "crashed") == kept(tmp_path / "clean")
    assert rejected(tmp_path / "crashed") == rejected(tmp_path / "clean")


def test_report_json_and_histogram(tmp_path):
    src = _mixture(tmp_path)
    result = run_filter(recipe("filter.target=50"), src, tmp_path / "o")
    report = json.loads((tmp_path / "o" / "filtered" / "report.json").read_text())
    assert report["rows_in"] == 120 and report["kept"] == 50 == result["kept"]
    assert report["by_source"]["chat"]["pass_rate"] == 1.0 and report["by_source"]["handwritten"]["pass_rate"] == 1.0
    assert report["lengths"]["kept"]["count"] == 50 and report["lengths"]["rejected"]["count"] == 70
    assert report["problems"]["count"] == 80 and report["problems"]["all_right"] == 80
    png = tmp_path / "o" / "filtered" / "lengths.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and report["plots"] == ["lengths.png"]
    import matplotlib.image

    assert matplotlib.image.imread(png).shape[:2] == (400, 700)


def test_filter_cli_prints_sources_and_lengths(tmp_path):
    src = _mixture(tmp_path)
    result = run_cli("filter", src, "--out", tmp_path / "o", "--set", "filter.target=50", "--set", "filter.timeout=3")
    assert result.returncode == 0, result.stderr
    assert "by source" in result.stdout and "completion tokens" in result.stdout and "over_quota" in result.stdout


@pytest.mark.parametrize("setting,message", [
    ("filter.quotas={math: 0.5}", "filter.quotas.math is a share of target (0.5): set filter.target too"),
    ("filter.select=best", "filter.select must be one of all, first, shortest"),
    ("filter.near_dedup=1.5", "filter.near_dedup must be a Jaccard threshold in (0, 1)"),
    ("filter.decontaminate=[math5000]", "math5000"),
])
def test_bad_filter_settings_are_one_line(tmp_path, setting, message):
    src = write_traces(tmp_path / "in", [[trace("a", "1", RIGHT.format(1))]])
    result = run_cli("filter", src, "--out", tmp_path / "o", "--set", setting)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_changed_filter_setting_is_refused_on_resume(tmp_path):
    src = _mixture(tmp_path)
    run_filter(recipe("filter.target=50"), src, tmp_path / "o")
    result = run_cli("filter", src, "--out", tmp_path / "o", "--set", "filter.target=60", "--set", "filter.timeout=3",
                     "--set", "filter.workers=1")
    assert result.returncode != 0 and "filter" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_pass1_folder_is_unused_after_completion(tmp_path):
    src = _mixture(tmp_path)
    run_filter(recipe(), src, tmp_path / "o")
    assert not (tmp_path / "o" / "filtered" / filter_mod.PASS1).exists()


def test_only_one_process_writes_the_second_pass(tmp_path):
    import fcntl

    src = _mixture(tmp_path)
    stage = tmp_path / "o" / "filtered"
    stage.mkdir(parents=True)
    with open(stage / "_pass2.lock", "a") as held:  # as if another rank were finishing
        fcntl.flock(held, fcntl.LOCK_EX)
        result = run_filter(recipe(), src, tmp_path / "o")
        assert result == {"complete": False, "files": 4, "files_done": 4, "finishing_elsewhere": True}
        assert not (stage / "manifest.json").exists()
    result = run_filter(recipe(), src, tmp_path / "o")  # the lock is free again
    assert result["complete"] and result["kept"] == 120
    # a late rank that finds pass 1 gone and the stage complete reports it complete
    assert run_filter(recipe(), src, tmp_path / "o", rank=1, world_size=2)["kept"] == 120


@pytest.mark.parametrize("args,message", [
    (["--world-size", "0"], "--world-size must be at least 1, got 0"),
    (["--rank", "2", "--world-size", "2"], "--rank must be in 0..1 for --world-size 2, got 2"),
    (["--rank", "-1", "--world-size", "2"], "--rank must be in 0..1 for --world-size 2, got -1"),
])
def test_bad_rank_options_are_one_line(tmp_path, args, message):
    src = write_traces(tmp_path / "in", [[trace("a", "1", RIGHT.format(1))]])
    result = run_cli("filter", src, "--out", tmp_path / "o", *args)
    assert result.returncode == 2 and result.stderr.strip() == f"error: {message}"


def test_traces_from_elsewhere_with_their_own_column_types(tmp_path):
    import pyarrow as pa

    table = pa.table({
        "id": ["q1", "q2", "q3"], "sample_idx": ["0", "0", "1"], "problem": ["1+1?", "Pick.", "2+2?"],
        "answer": [2, None, 4], "domain": ["math", "science", "math"], "completion": [RIGHT.format(2), RIGHT.format("B"), RIGHT.format(5)],
        "completion_tokens": ["12", "7", None], "choices": [None, '["red", "blue"]', None],
        "tests": [None, None, None],
    })
    shards.write_table(tmp_path / "in" / "t.parquet", table)
    table2 = table.set_column(3, "answer", pa.array([2, 2, 4]))
    result = run_filter(recipe(), tmp_path / "in", tmp_path / "o")
    assert sorted(r["id"] for r in kept(tmp_path / "o")) == ["q1"]
    assert rejected(tmp_path / "o") == {("q2", 0): "no_gold", ("q3", 1): "wrong_answer"}
    assert result["rows_in"] == 3 and table2.num_rows == 3
    bad = table.set_column(1, "sample_idx", pa.array(["zero", "0", "1"]))
    shards.write_table(tmp_path / "bad" / "t.parquet", bad)
    out = run_cli("filter", tmp_path / "bad", "--out", tmp_path / "o2")
    assert out.returncode == 1 and "column 'sample_idx' must hold whole numbers" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_a_finished_out_folder_is_not_taken_for_other_traces(tmp_path):
    one = write_traces(tmp_path / "one", [[trace("a", "1", RIGHT.format(1))]])
    two = write_traces(tmp_path / "two", [[trace("b", "2", RIGHT.format(2)), trace("c", "3", RIGHT.format(3))]])
    run_filter(recipe(), one, tmp_path / "o")
    result = run_cli("filter", two, "--out", tmp_path / "o", "--set", "filter.timeout=3", "--set", "filter.workers=1")
    assert result.returncode == 1 and "filtered other trace files than" in result.stderr and "use a new --out" in result.stderr
    assert run_filter(recipe(), one, tmp_path / "o")["kept"] == 1  # the same inputs: still fine


def test_a_run_folder_without_traces_is_refused(tmp_path):
    src = _mixture(tmp_path)
    run_filter(recipe(), src, tmp_path / "run")
    (tmp_path / "run" / "recipe.resolved.yaml").write_text("name: x\n")
    result = run_cli("filter", tmp_path / "run", "--out", tmp_path / "again")
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {tmp_path / 'run'}: a run folder without traces/; run `distill generate` into it first"


def test_a_missing_benchmark_file_fails_before_anything_is_written(tmp_path):
    src = write_traces(tmp_path / "in", [[trace("a", "1", RIGHT.format(1))]])
    result = run_cli("filter", src, "--out", tmp_path / "o", "--set",
                     f"filter.decontaminate=[{{card: math500, path: {tmp_path / 'nope.jsonl'}}}]")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "filter.decontaminate.0" in result.stderr and "no such file" in result.stderr
    assert not (tmp_path / "o").exists()


def test_rows_no_answer_verifier_covers_are_reported(tmp_path):
    rows = [trace("a", "1", RIGHT.format(1), domain="Math"), trace("b", "1", RIGHT.format(1)),
            trace("c", None, "```python\nwhile True: pass\n```", domain="code")]
    src = write_traces(tmp_path / "in", [rows])
    result = run_cli("filter", src, "--out", tmp_path / "o", "--set", "filter.verifiers=[format,math]",
                     "--set", "filter.workers=1")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "o" / "filtered" / "report.json").read_text())
    assert report["unverified"] == {"Math": 1, "code": 1}
    assert "1 kept rows of domain 'Math' were checked by no answer verifier" in " ".join(result.stdout.split())


def test_quota_cut_by_the_target_says_so(tmp_path):
    src = _mixture(tmp_path)
    result = run_cli("filter", src, "--out", tmp_path / "o", "--set", "filter.target=20",
                     "--set", "filter.quotas={math: 60, general: 100}", "--set", "filter.workers=1")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "(cut by filter.target)" in text and "quota general: " in text and "(only 40 available)" in text
    assert len(kept(tmp_path / "o")) == 20


@pytest.mark.skipif(not (SHARED / "gpqa_diamond.jsonl").is_file(), reason="needs ../shared/data")
def test_gpqa_local_copy_with_its_own_columns(tmp_path):
    question = json.loads((SHARED / "gpqa_diamond.jsonl").read_text().splitlines()[0])["question"]
    rows = [trace("g", "A", RIGHT.format("A"), domain="science", problem=question)]
    src = write_traces(tmp_path / "in", [rows])
    spec = (f"filter.decontaminate=[{{card: gpqa-diamond, path: {SHARED / 'gpqa_diamond.jsonl'}, "
            "columns: {problem: question, answer: answer, id: id}}]")
    result = run_filter(recipe(spec), src, tmp_path / "o")
    assert result["contaminated"] == {"gpqa-diamond": 1}


def test_a_quota_for_a_group_that_never_occurs_is_named(tmp_path):
    src = _mixture(tmp_path)
    result = run_cli("filter", src, "--out", tmp_path / "o", "--set", "filter.quotas={maths: 5}", "--set", "filter.workers=1")
    assert result.returncode == 0, result.stderr
    assert "no row has domain 'maths'; those seen: general, math" in " ".join(result.stdout.split())
