"""Published trace datasets as `distill filter` input: a few rows in each published layout (column
names and types as the dataset cards give them; the rows are made up here) go through
`distill filter --format NAME` and `distill train` unchanged but for the path."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import run_cli
from typer.testing import CliRunner

from distill import shards
from distill.cli import app

BOX = "\\boxed"


def r1(reasoning: str, answer: str) -> str:
    return f"<think>\n{reasoning}\n</think>\n\nSo the answer is ${BOX}{{{answer}}}$."


def stratos(reasoning: str, solution: str, closed: bool = True) -> str:
    """An assistant turn with Sky-T1's markers, as Bespoke-Stratos and OpenThoughts publish them."""
    if not closed:
        return f"<|begin_of_thought|>\n\n{reasoning}"
    return (f"<|begin_of_thought|>\n\n{reasoning}\n\n<|end_of_thought|>\n\n"
            f"<|begin_of_solution|>\n\n{solution}\n\n<|end_of_solution|>")


SYSTEM = "Think it through in a Thought section, then give a Solution section."  # our words, not theirs

MESSAGES = pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))
CONVERSATIONS = pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))


def _openr1_row(uuid, problem, answer, gens, reasons, verdicts):
    return {"problem": problem, "solution": f"Worked out: {BOX}{{{answer}}}", "answer": answer,
            "problem_type": "Algebra", "question_type": "math-word-problem", "source": "olympiads", "uuid": uuid,
            "is_reasoning_complete": [g is not None for g in gens], "generations": gens,
            "correctness_math_verify": verdicts, "correctness_llama": None, "finish_reasons": reasons,
            "correctness_count": sum(bool(v) for v in verdicts),
            "messages": [{"content": problem, "role": "user"}, {"content": gens[0] or "", "role": "assistant"}]}


OPENR1 = pa.schema([("problem", pa.string()), ("solution", pa.string()), ("answer", pa.string()),
                    ("problem_type", pa.string()), ("question_type", pa.string()), ("source", pa.string()),
                    ("uuid", pa.string()), ("is_reasoning_complete", pa.list_(pa.bool_())),
                    ("generations", pa.list_(pa.string())), ("correctness_math_verify", pa.list_(pa.bool_())),
                    ("correctness_llama", pa.list_(pa.bool_())), ("finish_reasons", pa.list_(pa.string())),
                    ("correctness_count", pa.int64()), ("messages", MESSAGES)])


def write_openr1(path: Path) -> Path:
    rows = [
        _openr1_row("u-1", "What is 6 times 7?", "42", [r1("6 * 7 = 42", "42"), r1("6 * 7 = 48", "48")],
                    ["stop", "stop"], [True, False]),
        _openr1_row("u-2", "Write 2/4 in lowest terms.", "\\frac{1}{2}",
                    [r1("2/4 is one half", "0.5"), "<think>\nhalving 2 and 4 gives"], ["stop", "length"], [True, False]),
        # finish_reasons null (as in part of the published rows); a null sample costs only itself
        _openr1_row("u-3", "What is 3 + 4?", "7", [r1("3 + 4 = 7", "7"), None], None, [True, False]),
        # 3 generations, 2 finish_reasons: the row is skipped and counted, the others go on
        _openr1_row("u-4", "What is 1 + 1?", "2", [r1("1 + 1", "2")] * 3, ["stop", "stop"], [True, True, True]),
    ]
    pq.write_table(pa.Table.from_pylist(rows, OPENR1), path)
    return path


def write_sharegpt(path: Path, jsonl: bool = False) -> Path:
    rows = [
        {"system": SYSTEM, "conversations": [
            {"from": "user", "value": "Return your final response within \\boxed{}. What is 5 + 5?"},
            {"from": "assistant", "value": stratos("Five and five make ten.", f"{BOX}{{10}}")}]},
        {"system": SYSTEM, "conversations": [
            {"from": "user", "value": "Generate a Python function that returns its argument doubled."},
            {"from": "assistant", "value": stratos("Multiply by two.", "```python\ndef double(x):\n    return 2 * x\n```")}]},
        {"system": SYSTEM, "conversations": [
            {"from": "user", "value": "Name the smallest prime number."},
            {"from": "assistant", "value": stratos("Two is prime and nothing smaller is", "", closed=False)}]},
        {"system": SYSTEM, "conversations": [{"from": "user", "value": "A question nobody answered."},
                                             {"from": "assistant", "value": ""}]},
    ]
    if jsonl:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        pq.write_table(pa.Table.from_pylist(rows, pa.schema([("system", pa.string()), ("conversations", CONVERSATIONS)])),
                       path)
    return path


OT_META = ["problem", "deepseek_reasoning", "deepseek_solution", "ground_truth_solution", "domain", "source",
           "test_cases", "starter_code"]


def write_openthoughts_metadata(path: Path) -> Path:
    def row(problem, reasoning, solution, truth, domain, tests=None):
        return {"problem": problem, "deepseek_reasoning": reasoning, "deepseek_solution": solution,
                "ground_truth_solution": truth, "domain": domain, "source": f"made-up-{domain}",
                "test_cases": json.dumps(tests) if tests is not None else None, "starter_code": ""}

    add = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    rows = [
        row("What is 9 + 9?", "Nine and nine.", f"It is {BOX}{{18}}.", f"9 + 9 = {BOX}{{18}}", "math"),
        row("Read two integers and print their sum.", "Read, add, print.", add, None, "code",
            {"inputs": ["1 2\n", "5 7\n"], "outputs": ["3\n", "12\n"]}),
        row("Return the sum of a list.", "Use sum.", "```python\ndef total(xs):\n    return sum(xs)\n```", None,
            "code", {"fn_name": "total", "inputs": [[[1, 2]]], "outputs": [3]}),
        row("Which weighs more, a kilo of feathers or a kilo of lead?", "Both are a kilo.", "Neither.", None, "puzzle"),
    ]
    pq.write_table(pa.Table.from_pylist(rows, pa.schema([(c, pa.string()) for c in OT_META])), path)
    return path


def write_s1k_v1(path: Path) -> Path:
    rows = [{"solution": "21", "question": "What is 3 times 7?", "cot_type": "math", "source_type": "made/up",
             "metadata": "{}", "cot": None, "thinking_trajectories": ["3 times 7", "is 21"],
             "attempt": f"{BOX}{{21}}"},
            {"solution": "8", "question": "What is 2 cubed?", "cot_type": "math", "source_type": "made/up",
             "metadata": "{}", "cot": None, "thinking_trajectories": ["2 * 2 * 2 = 6"], "attempt": f"{BOX}{{6}}"}]
    schema = pa.schema([("solution", pa.string()), ("question", pa.string()), ("cot_type", pa.string()),
                        ("source_type", pa.string()), ("metadata", pa.string()), ("cot", pa.null()),
                        ("thinking_trajectories", pa.list_(pa.string())), ("attempt", pa.string())])
    pq.write_table(pa.Table.from_pylist(rows, schema), path)
    return path


S1K_COLUMNS = ["solution", "question", "cot_type", "source_type", "metadata", "gemini_thinking_trajectory",
               "gemini_attempt", "deepseek_thinking_trajectory", "deepseek_attempt", "gemini_grade",
               "gemini_grade_reason", "deepseek_grade", "deepseek_grade_reason"]


def _s1k_row(question, solution, cot_type, thinking, attempt, grade):
    row = dict.fromkeys(S1K_COLUMNS, "")
    row.update(solution=solution, question=question, cot_type=cot_type, source_type="made/up",
               metadata="{}", deepseek_thinking_trajectory=thinking, deepseek_attempt=attempt, deepseek_grade=grade,
               gemini_thinking_trajectory="(gemini's)", gemini_attempt="(gemini's)", gemini_grade="No")
    return row


def write_s1k(path: Path) -> Path:
    rows = [
        _s1k_row("Find 12 squared.", f"12 squared is {BOX}{{144}}.", "math", "12 * 12 = 144", f"{BOX}{{144}}", "Yes"),
        _s1k_row("How many sides has a hexagon?", "6", "math", "hex means six", f"Final answer: {BOX}{{6}}", "Yes"),
        _s1k_row("Prove that the sum of two even numbers is even.", "Let a = 2m and b = 2n.\nThen a + b = 2(m + n).",
                 "math", "write them as 2m and 2n", "a + b = 2(m + n), which is even.", "Yes"),
        _s1k_row("Five letters, 'a fruit': ____", "APPLE", "crossword", "a fruit in five letters", "APPLE", "Yes"),
    ]
    pq.write_table(pa.Table.from_pylist(rows, pa.schema([(c, pa.string()) for c in S1K_COLUMNS])), path)
    return path


def write_limo(path: Path) -> Path:
    """LIMO publishes one JSON Lines file (limo.jsonl)."""
    rows = [
        {"question": "What is 9 - 4?", "solution": f"Nine minus four. Check: 5 + 4 = 9. {BOX}{{5}}", "answer": "5"},
        {"question": "What is 10 / 2?", "solution": f"Ten halves... {BOX}{{4}}", "answer": "5"},
        {"question": "Empty one", "solution": None, "answer": "1"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{not json\n")
    return path


def write_numina(path: Path) -> Path:
    def row(problem, solution):
        return {"source": "synthetic_math", "problem": problem, "solution": solution,
                "messages": [{"content": problem, "role": "user"}, {"content": solution, "role": "assistant"}]}

    rows = [
        row("What is 8 + 2?", f"Adding, 8 + 2 = 10. The answer is {BOX}{{10}}."),
        row("What is 8 + 2?", f"Adding, 8 + 2 = 10. The answer is {BOX}{{10}}."),  # published twice: a duplicate
        row("Describe a circle.", "The points at one distance from a centre."),  # no \boxed{}: no gold
    ]
    schema = pa.schema([("source", pa.string()), ("problem", pa.string()), ("solution", pa.string()),
                        ("messages", MESSAGES)])
    pq.write_table(pa.Table.from_pylist(rows, schema), path)
    return path


# format -> (writer, file name, expected: {reason or "kept": count}, skipped-line fragment or None)
CASES = {
    "openr1-math": (write_openr1, "train-00000-of-00001.parquet",
                    {"kept": 3, "wrong_answer": 1, "truncated": 1}, "3 generations but 2 finish_reasons"),
    "openthoughts": (write_sharegpt, "train-00000-of-00006.parquet", {"kept": 2, "think_unclosed": 1},
                     "no usable sample"),
    "bespoke-stratos": (lambda p: write_sharegpt(p, jsonl=True), "bespoke.jsonl", {"kept": 2, "think_unclosed": 1},
                        "no usable sample"),
    "openthoughts-metadata": (write_openthoughts_metadata, "metadata-train-00000.parquet",
                              {"kept": 3, "no_tests": 1}, None),
    "s1k": (write_s1k_v1, "train-00000-of-00001.parquet", {"kept": 1, "wrong_answer": 1}, None),
    "s1k-1.1": (write_s1k, "train-00000-of-00001.parquet", {"kept": 3, "no_gold": 1}, None),
    "limo": (write_limo, "limo.jsonl", {"kept": 1, "wrong_answer": 1}, "not valid JSON"),
    "numina-cot": (write_numina, "train-00000-of-00005.parquet", {"kept": 1, "duplicate": 1, "no_gold": 1}, None),
}


def invoke(*args: str):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    return result


def outcome(run: Path) -> dict:
    kept = pq.ParquetDataset(run / "filtered" / "data").read().to_pylist()
    rejected = pq.ParquetDataset(run / "filtered" / "rejected").read().to_pylist()
    counts = {"kept": len(kept)}
    for row in rejected:
        counts[row["reject_reason"]] = counts.get(row["reject_reason"], 0) + 1
    return counts


@pytest.fixture(scope="module")
def filtered(tmp_path_factory):
    """Every layout through `distill filter --format NAME` (the CLI, in this process), each into its run."""
    base = tmp_path_factory.mktemp("published")
    runs = {}
    for name, (write, file, _, _) in CASES.items():
        source = write(base / f"{name}-{file}")
        run = base / f"run-{name}"
        result = invoke("filter", source, "--format", name, "--out", run, "--set", "filter.workers=1")
        assert result.exit_code == 0, (name, result.output)
        runs[name] = (run, result.output)
    return runs


@pytest.mark.parametrize("name", list(CASES))
def test_each_layout_goes_through_the_filter(filtered, name):
    run, output = filtered[name]
    expected, skipped = CASES[name][2], CASES[name][3]
    assert outcome(run) == expected
    if skipped:
        assert "convert: skipped" in output and skipped in output
    traces = pq.ParquetDataset(run / "traces" / "data").read().to_pylist()
    manifest = json.loads((run / "traces" / "manifest.json").read_text())
    assert manifest["stage"] == "published" and manifest["format"] == name
    assert manifest["counts"]["samples"] == len(traces) == sum(expected.values())
    assert (run / "traces" / "_done" / "00000").is_file()
    # the trace schema exactly as generate writes it, and the filter's own report
    assert pq.read_schema(next((run / "traces" / "data").glob("*.parquet"))).names == \
        [f.name for f in __import__("distill.schema", fromlist=["TRACE"]).TRACE]
    report = json.loads((run / "filtered" / "report.json").read_text())
    assert report["rows_in"] == len(traces) and report["kept"] == expected["kept"]


def test_rows_carry_sample_idx_teacher_answer_and_prompt(filtered):
    traces = {(r["id"], r["sample_idx"]): r for r in
              pq.ParquetDataset(filtered["openr1-math"][0] / "traces" / "data").read().to_pylist()}
    # list position is sample_idx; the null second sample of u-3 is gone, its first kept
    assert set(traces) == {("openr1-math/u-1", 0), ("openr1-math/u-1", 1), ("openr1-math/u-2", 0),
                           ("openr1-math/u-2", 1), ("openr1-math/u-3", 0)}
    row = traces[("openr1-math/u-2", 1)]
    assert row["teacher"] == "deepseek-ai/DeepSeek-R1" and row["answer"] == "\\frac{1}{2}"
    assert row["finish_reason"] == "length" and row["source"] == "openr1-math/olympiads"
    assert traces[("openr1-math/u-3", 0)]["finish_reason"] is None
    manifest = json.loads((filtered["openr1-math"][0] / "traces" / "manifest.json").read_text())
    assert manifest["published_verdicts"] == {"correct": 3, "incorrect": 3}
    assert manifest["skipped"] == {"rows": {"3 generations but 2 finish_reasons": 1}, "samples": 1}
    kept = pq.ParquetDataset(filtered["openr1-math"][0] / "filtered" / "data").read().to_pylist()
    assert {r["id"]: r["pass_rate"] for r in kept}["openr1-math/u-1"] == 0.5

    # Sky-T1 markers become <think>; the dataset's system prompt is the student's system turn
    kept = pq.ParquetDataset(filtered["openthoughts"][0] / "filtered" / "data").read().to_pylist()
    first = next(r for r in kept if "5 + 5" in r["problem"])
    assert first["reasoning"] == "Five and five make ten." and first["response"] == f"{BOX}{{10}}"
    assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant"]
    assert first["messages"][0]["content"] == SYSTEM
    assert first["messages"][2]["content"] == f"<think>\nFive and five make ten.\n</think>\n\n{BOX}{{10}}"
    assert first["domain"] == "mixed" and first["answer"] is None
    assert {r["source"] for r in kept} == {"openthoughts"}

    # s1K: gold from `solution` (its \boxed{}, or a one-line answer); crossword rows are domain other
    s1k = {r["problem"]: r for r in pq.ParquetDataset(filtered["s1k-1.1"][0] / "traces" / "data").read().to_pylist()}
    assert s1k["Find 12 squared."]["answer"] == "144" and s1k["How many sides has a hexagon?"]["answer"] == "6"
    assert s1k["Prove that the sum of two even numbers is even."]["answer"] is None
    assert s1k["Five letters, 'a fruit': ____"]["domain"] == "other"
    assert s1k["Find 12 squared."]["completion"].startswith("<think>\n12 * 12 = 144\n</think>")

    # NuminaMath-CoT and LIMO: no separate reasoning; Numina's gold is its solution's \boxed{}
    numina = pq.ParquetDataset(filtered["numina-cot"][0] / "traces" / "data").read().to_pylist()
    assert [r["answer"] for r in numina] == ["10", "10", None]
    assert numina[1]["id"] == numina[0]["id"] + "~2"  # a problem published twice stays two problems
    # OpenThoughts' metadata config: stdin/stdout test_cases run by the code verifier; s1K 1.0 joins its list
    meta = {r["problem"]: r for r in
            pq.ParquetDataset(filtered["openthoughts-metadata"][0] / "filtered" / "data").read().to_pylist()}
    code = meta["Read two integers and print their sum."]
    assert code["domain"] == "code" and json.loads(code["tests"])["outputs"] == ["3\n", "12\n"]
    assert "code" in code["verifier"] and meta["What is 9 + 9?"]["answer"] == "18"
    s1 = pq.ParquetDataset(filtered["s1k"][0] / "traces" / "data").read().to_pylist()
    assert s1[0]["completion"] == f"<think>\n3 times 7\nis 21\n</think>\n\n{BOX}{{21}}"
    assert s1[0]["teacher"] == "gemini-2.0-flash-thinking-exp"
    limo = pq.ParquetDataset(filtered["limo"][0] / "filtered" / "data").read().to_pylist()
    assert limo[0]["reasoning"] is None and limo[0]["messages"][-1]["content"].endswith(f"{BOX}{{5}}")


def test_every_layout_trains(filtered, tiny_recipe, tmp_path):
    """The kept rows of every layout, in one folder, through `distill train` (the real CLI)."""
    data = tmp_path / "all-kept"
    total = 0
    for i, (name, (run, _)) in enumerate(sorted(filtered.items())):
        for f in sorted((run / "filtered" / "data").glob("*.parquet")):
            table = pq.read_table(f)
            total += table.num_rows
            shards.write_table(data / f"{i:02d}-{f.name}", table)
    assert total == sum(case[2]["kept"] for case in CASES.values())
    recipe = tiny_recipe(train={"max_steps": 1, "batch_size": 2, "gradient_checkpointing": False})
    result = run_cli("train", "--recipe", recipe, "--data", data, "--out", tmp_path / "student-run")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "student-run" / "student" / "train_summary.json").read_text())
    assert summary["rows"] == total and summary["supervised_tokens"] > 0


def test_rerun_resumes_and_refuses_other_settings(tmp_path):
    source = write_openr1(tmp_path / "openr1.parquet")
    run = tmp_path / "run"
    args = ["filter", source, "--format", "openr1-math", "--out", run, "--set", "filter.verifiers=[format]",
            "--set", "generate.shard_size=1"]
    assert invoke(*args).exit_code == 0
    stage = run / "traces"
    before = {p.name: p.read_bytes() for p in (stage / "data").glob("*.parquet")}
    assert len(before) == 3  # one problem a shard
    # a kill after the second shard: its marker and the manifest gone, the first shard done
    (stage / shards.MANIFEST).unlink()
    (stage / "_done" / "00001").unlink()
    (stage / "data" / "shard-00001.parquet").unlink()
    import shutil

    shutil.rmtree(run / "filtered")
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert "1 written now" in again.output
    assert {p.name: p.read_bytes() for p in (stage / "data").glob("*.parquet")} == before
    # other settings into the same run: refused, one line, exit 2
    other = invoke("filter", source, "--format", "openr1-math", "--teacher", "someone", "--out", run)
    assert other.exit_code == 2 and "converted with teacher=" in other.output
    assert len(other.output.strip().splitlines()) == 1
    # --teacher names a teacher card: recorded as generate records it
    card = invoke("filter", source, "--format", "openr1-math", "--teacher", "deepseek-r1", "--out", tmp_path / "r2",
                  "--set", "filter.verifiers=[format]")
    assert card.exit_code == 0, card.output
    teachers = pq.ParquetDataset(tmp_path / "r2" / "traces" / "data").read().column("teacher").to_pylist()
    assert set(teachers) == {"deepseek-ai/DeepSeek-R1@main"}


def test_bad_input_is_one_line(tmp_path):
    openr1 = write_openr1(tmp_path / "openr1.parquet")
    cases = [
        # (args, exit code, fragment)
        (["filter", openr1, "--format", "limo"], 1, "no column 'question' for --format limo"),
        (["filter", openr1, "--format", "limo"], 1, "it looks like --format openr1-math"),
        (["filter", write_sharegpt(tmp_path / "st.parquet"), "--format", "auto"], 2,
         "--format openthoughts or --format bespoke-stratos"),
        (["filter", openr1, "--format", "openr1"], 2, "unknown layout 'openr1' (did you mean 'openr1-math'?"),
        (["filter", openr1, "--columns", "problem=problem"], 2, "name the trace"),
        (["filter", openr1, "--columns", "question=problem,completion=generations"], 2, "unknown key 'question'"),
        (["filter", openr1, "--teacher", "me"], 2, "--teacher, --subset and --split go with --format"),
        (["filter", tmp_path / "nothing.parquet", "--format", "limo"], 1, "no such file or folder"),
        (["filter", "someone/some-dataset", "--format", "limo"], 1, "cannot load 'someone/some-dataset' from the hub"),
    ]
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"text": ["hello"], "label": [1]}), other)
    cases.append((["filter", other, "--format", "auto"], 1, "matches no published trace layout"))
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(openr1.read_bytes()[:2000])  # a download cut short
    cases.append((["filter", broken, "--format", "openr1-math"], 1, "not a readable Parquet file"))
    # auto: an OpenR1 file also has NuminaMath-CoT's columns (problem, solution, messages); the more
    # specific layout, first in the table, wins
    auto = invoke("filter", openr1, "--format", "auto", "--out", tmp_path / "auto", "--set", "filter.verifiers=[format]")
    assert auto.exit_code == 0 and "as openr1-math" in auto.output, auto.output
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"question": "q", "solution": "", "answer": "1"}) + "\n")
    cases.append((["filter", empty, "--format", "limo"], 1, "no usable rows for --format limo"))
    for i, (args, code, fragment) in enumerate(cases):
        result = invoke(*args, "--out", tmp_path / f"out{i}")
        lines = result.output.strip().splitlines()
        assert result.exit_code == code, (args, result.output)
        assert fragment in lines[-1] and lines[-1].startswith("error: "), (args, result.output)
        assert "Traceback" not in result.output and len(lines[-1]) < 300


def test_columns_map_reads_any_other_layout(tmp_path):
    """A layout of one's own: samples as lists, reasoning and answer apart, the gold in a \\boxed{}."""
    rows = [{"q": "What is 2 + 5?", "ref": f"{BOX}{{7}}", "thoughts": ["2 + 5 = 7", "2 + 5 = 8"],
             "finals": [f"{BOX}{{7}}", f"{BOX}{{8}}"]},
            {"q": "What is 1 + 5?", "ref": f"{BOX}{{6}}", "thoughts": ["one and five"], "finals": ["\\boxed{6}", "x"]}]
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = tmp_path / "run"
    result = invoke("filter", path, "--columns", "problem=q,answer_boxed=ref,reasoning=thoughts,response=finals",
                    "--teacher", "my-teacher", "--out", run, "--set", "filter.workers=1")
    assert result.exit_code == 0, result.output
    assert "1 row (1× 1 thoughts but 2 finals" in result.output  # the mismatched row costs only itself
    assert outcome(run) == {"kept": 1, "wrong_answer": 1}
    traces = pq.ParquetDataset(run / "traces" / "data").read().to_pylist()
    assert {r["teacher"] for r in traces} == {"my-teacher"} and [r["sample_idx"] for r in traces] == [0, 1]
    assert traces[0]["completion"] == f"<think>\n2 + 5 = 7\n</think>\n\n{BOX}{{7}}" and traces[0]["source"] == "mine"


def test_ranks_share_the_conversion_and_generated_traces_are_refused(tmp_path):
    from helpers import trace, write_traces

    source = write_numina(tmp_path / "numina.parquet")
    run = tmp_path / "run"
    base = ["filter", source, "--format", "numina-cot", "--out", run, "--set", "generate.shard_size=1",
            "--set", "filter.workers=1", "--world-size", "2"]
    first = invoke(*base, "--rank", "0")
    assert first.exit_code == 0 and "other ranks pending" in first.output, first.output
    second = invoke(*base, "--rank", "1")
    assert second.exit_code == 0 and "already holds numina-cot traces" in second.output, second.output
    assert outcome(run) == {"kept": 1, "duplicate": 1, "no_gold": 1}
    # a run whose traces/ came from `distill generate`: not mixed with published ones
    write_traces(tmp_path / "gen" / "traces" / "data", [[trace("a", "1", "\\boxed{1}")]])
    shards.mark_done(tmp_path / "gen" / "traces", 0)
    refused = invoke("filter", source, "--format", "numina-cot", "--out", tmp_path / "gen")
    assert refused.exit_code == 2 and "holds traces that `distill generate` wrote" in refused.output


def test_hub_id_json_array_and_saved_dataset(tmp_path, monkeypatch):
    """A hub id goes through datasets.load_dataset (replaced here by an in-memory Dataset: no hub in
    tests) with the subset and split given; a .json file holding one array and a save_to_disk
    folder are read too."""
    import datasets

    rows = [{"question": "What is 4 + 4?", "solution": f"Four and four. {BOX}{{8}}", "answer": "8"}]
    asked = []

    def load_dataset(path, name=None, split=None, **kwargs):
        asked.append((path, name, split))
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    result = invoke("filter", "GAIR/LIMO", "--format", "limo", "--split", "train", "--out", tmp_path / "hub",
                    "--set", "filter.workers=1")
    assert result.exit_code == 0, result.output
    assert asked == [("GAIR/LIMO", None, "train")] and outcome(tmp_path / "hub") == {"kept": 1}
    manifest = json.loads((tmp_path / "hub" / "traces" / "manifest.json").read_text())
    assert manifest["input"] == {"hub": "GAIR/LIMO", "subset": None, "split": "train"}

    array = tmp_path / "limo.json"
    array.write_text(json.dumps(rows * 2))
    result = invoke("filter", array, "--format", "auto", "--out", tmp_path / "json", "--set", "filter.workers=1")
    assert result.exit_code == 0, result.output
    assert outcome(tmp_path / "json") == {"kept": 1, "duplicate": 1}
    # a folder written by datasets' save_to_disk (as `distill export --format hf` writes one)
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    result = invoke("filter", tmp_path / "saved", "--format", "limo", "--out", tmp_path / "disk",
                    "--set", "filter.workers=1")
    assert result.exit_code == 0, result.output
    assert outcome(tmp_path / "disk") == {"kept": 1}
    local = invoke("filter", array, "--format", "limo", "--subset", "x", "--out", tmp_path / "bad")
    assert local.exit_code == 2 and "--subset and --split choose a part of a hub dataset" in local.output
