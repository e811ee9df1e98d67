"""Prompt sources: GSM8K-style local files through the gsm8k card, the arithmetic generator."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import run_cli, write_yaml

from distill.arithmetic import arithmetic, split_of
from distill.config import DataSource, DatasetCard
from distill.recipes import load_card
from distill.errors import UserError
from distill.sources import load_prompts, prompt_rows

GSM8K_ROWS = [
    {"question": "Ann has 3 apples and buys 4 more. How many apples?", "answer": "3 + 4 = <<3+4=7>>7\n#### 7"},
    {"question": "A pen costs $2. How much do 6 pens cost?", "answer": "2 * 6 = <<2*6=12>>12\n#### 12"},
    {"question": "Tom reads 1,000 pages a year for 2 years. How many pages?", "answer": "#### 2,000"},
]


@pytest.fixture
def gsm8k_file(tmp_path):
    path = tmp_path / "gsm8k_like.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in GSM8K_ROWS))
    return path


def test_gsm8k_card_reads_a_local_jsonl(gsm8k_file):
    card = load_card(DatasetCard, "gsm8k")
    rows = prompt_rows(DataSource(card=card, path=str(gsm8k_file)))
    assert [r["answer"] for r in rows] == ["7", "12", "2,000"]
    assert rows[0]["problem"] == GSM8K_ROWS[0]["question"]
    assert {r["source"] for r in rows} == {"gsm8k"} and {r["domain"] for r in rows} == {"math"}
    again = prompt_rows(DataSource(card=card, path=str(gsm8k_file)))
    assert [r["id"] for r in rows] == [r["id"] for r in again]  # stable ids
    assert len({r["id"] for r in rows}) == 3


def test_gsm8k_card_reads_a_local_parquet(gsm8k_file, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "g.parquet"
    pq.write_table(pa.Table.from_pylist(GSM8K_ROWS), path)
    rows = prompt_rows(DataSource(card=load_card(DatasetCard, "gsm8k"), path=str(path), limit=2))
    assert [r["answer"] for r in rows] == ["7", "12"]


def test_limit_and_repeated_problems(gsm8k_file, tmp_path):
    dup = tmp_path / "dup.jsonl"
    dup.write_text(gsm8k_file.read_text() + json.dumps(GSM8K_ROWS[0]) + "\n")
    card = load_card(DatasetCard, "gsm8k")
    rows = load_prompts((DataSource(card=card, path=str(dup)),))
    assert len(rows) == 3  # the repeated problem is not asked twice
    assert len(load_prompts((DataSource(card=card, path=str(dup)),), limit=2)) == 2


def test_missing_column_is_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"prompt": "x", "answer": "1"}) + "\n")
    with pytest.raises(UserError, match=r"no column 'question'.*gsm8k"):
        prompt_rows(DataSource(card=load_card(DatasetCard, "gsm8k"), path=str(path)))


def test_missing_local_file(tmp_path):
    with pytest.raises(UserError, match="nothere.jsonl: no such file"):
        prompt_rows(DataSource(card=load_card(DatasetCard, "gsm8k"), path=str(tmp_path / "nothere.jsonl")))


def test_hub_unreachable_is_one_line(tmp_path):
    recipe = write_yaml(tmp_path / "r.yaml", {"teacher": "smollm2-135m-instruct", "data": ["gsm8k"]})
    result = run_cli("generate", "-r", recipe, "--out", tmp_path / "run", env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "cannot load 'openai/gsm8k' from the hub" in result.stderr and "data.N.path" in result.stderr


def _solve(problem: str) -> int:
    nums = [int(n) for n in re.findall(r"\d+", problem)]
    if "more" in problem or "+" in problem:
        return nums[0] + nums[1]
    if "gives away" in problem:
        return nums[0] - nums[1]
    return nums[0] * nums[1]  # "times", "boxes"


def test_arithmetic_is_seeded_distinct_and_right():
    rows = list(arithmetic(count=300, seed=7))
    assert rows == list(arithmetic(count=300, seed=7))
    assert rows != list(arithmetic(count=300, seed=8))
    assert len({r["problem"] for r in rows}) == 300
    for r in rows:
        assert int(r["answer"]) == _solve(r["problem"]), r


def test_arithmetic_card_yields_prompt_rows():
    rows = prompt_rows(DataSource(card=load_card(DatasetCard, "arithmetic"), limit=10))
    assert len(rows) == 10 and all(r["answer"].isdigit() and r["id"].startswith("arithmetic/") for r in rows)


def test_the_held_out_arithmetic_card_shares_no_problem_with_the_training_card():
    train = prompt_rows(DataSource(card=load_card(DatasetCard, "arithmetic")))
    test = prompt_rows(DataSource(card=load_card(DatasetCard, "arithmetic-test")))
    assert len(train) == 200 and len(test) == 100
    assert not {r["problem"] for r in train} & {r["problem"] for r in test}
    for r in test:
        assert int(r["answer"]) == _solve(r["problem"]), r
    # whatever the seed, a problem's split is fixed by its text
    assert all(split_of(r["problem"]) == "test" for r in arithmetic(count=50, seed=3, split="test"))
    with pytest.raises(ValueError, match="split must be one of all, train, test"):
        next(arithmetic(split="dev"))


def test_unknown_generator_param():
    from distill.errors import ConfigError

    card = DatasetCard(name="a", generator="arithmetic", params={"cuont": 3})
    with pytest.raises(ConfigError, match="unknown generator param 'cuont'"):
        prompt_rows(DataSource(card=card))


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not (SHARED_DATA / "math500.jsonl").is_file(), reason="needs ../shared/data")
@pytest.mark.parametrize("card,file,rows,first_answer", [
    ("math500", "math500.jsonl", 500, r"\left( 3, \frac{\pi}{2} \right)"),
    ("aime24", "aime24.jsonl", 30, None),
    ("amc23", "amc23.jsonl", 40, "27"),
    ("gsm8k-test", "gsm8k_test.jsonl", 1319, "18"),
])
def test_benchmark_cards_read_the_local_copies(card, file, rows, first_answer):
    got = prompt_rows(DataSource(card=load_card(DatasetCard, card), path=str(SHARED_DATA / file)))
    assert len(got) == rows and all(r["problem"] and r["answer"] for r in got)
    assert all(r["source"] == card and r["id"].startswith(card + "/") for r in got)
    if first_answer is not None:
        assert got[0]["answer"] == first_answer
