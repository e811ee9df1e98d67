"""Hostile or broken inputs: each is one line and a non-zero exit (or a per-row reason), nothing
already written is lost, and a rerun after the fix ends with the rows of a clean run."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import run_cli, trace, write_traces

from distill import schema, shards
from distill.errors import ConfigError
from distill.verify.choice import check_choice


def _one_line(result, code: int) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def _math(i: int, right: bool = True) -> dict:
    return trace(f"q{i}", str(i), f"<think>\n{i} it is\n</think>\n\nSo \\boxed{{{i if right else i + 1}}}.")


def _kept(run: Path) -> list[tuple]:
    rows = pq.read_table(run / "filtered" / "data").to_pylist()
    return sorted((r["id"], r["sample_idx"], r["completion"], json.dumps(r["messages"])) for r in rows)


FILTER = ("--set", "filter.verifiers=[format,math]", "--set", "filter.workers=1")


def test_null_fields_in_traces_are_rejected_with_their_reason(tmp_path):
    good = [_math(i) for i in range(4)]
    broken = [dict(_math(10), problem=None), dict(_math(11), id=None), dict(_math(12), sample_idx=None)]
    result = run_cli("filter", write_traces(tmp_path / "t", [good + broken]), "--out", tmp_path / "run", *FILTER)
    assert result.returncode == 0, result.stderr
    rejected = pq.read_table(tmp_path / "run" / "filtered" / "rejected").to_pylist()
    assert sorted(r["reject_reason"] for r in rejected) == ["no_id", "no_problem", "no_sample_idx"]
    clean = run_cli("filter", write_traces(tmp_path / "clean", [good]), "--out", tmp_path / "clean_run", *FILTER)
    assert clean.returncode == 0 and _kept(tmp_path / "run") == _kept(tmp_path / "clean_run")


def _bad_utf8(table: pa.Table, column: str) -> pa.Table:
    values = [v.encode() + b" \xff\xfe" for v in table.column(column).to_pylist()]
    return table.set_column(table.column_names.index(column), column,
                            pa.array(values, pa.binary()).view(pa.string()))


def test_invalid_utf8_in_a_shard_is_named_and_the_fixed_rerun_resumes(tmp_path):
    files = [[_math(i) for i in range(3)], [_math(i) for i in range(3, 6)]]
    traces = write_traces(tmp_path / "t", files)
    good_second = (traces / shards.shard_name(1)).read_bytes()
    pq.write_table(_bad_utf8(schema.table(files[1], schema.TRACE), "completion"), traces / shards.shard_name(1))
    line = _one_line(run_cli("filter", traces, "--out", tmp_path / "run", *FILTER), 1)
    assert line == (f"error: {traces / shards.shard_name(1)}: column 'completion' holds bytes that are not valid "
                    f"UTF-8; re-encode that text as UTF-8 (or drop those rows) and rerun")
    assert shards.done(tmp_path / "run" / "filtered" / "_pass1") == {0}  # the first file's work is kept
    (traces / shards.shard_name(1)).write_bytes(good_second)
    assert run_cli("filter", traces, "--out", tmp_path / "run", *FILTER).returncode == 0
    clean = run_cli("filter", write_traces(tmp_path / "c", files), "--out", tmp_path / "clean", *FILTER)
    assert clean.returncode == 0 and _kept(tmp_path / "run") == _kept(tmp_path / "clean")


GENERATE = ("--recipe", "quickstart", "--set", "generate.backend=fake", "--set", "generate.shard_size=2")


def test_invalid_utf8_and_null_ids_in_a_jsonl_source(tmp_path):
    source = tmp_path / "prompts.jsonl"
    lines = [json.dumps({"problem": f"What is {i} + 1?", "answer": str(i + 1), "id": i}) for i in range(4)]
    source.write_bytes(("\n".join(lines[:2]) + "\n").encode() + b'{"problem": "caf\xe9", "answer": "1", "id": 9}\n')
    where = ("--set", f"data.0.path={source}", "--set", "data.0.columns={problem: problem, answer: answer, id: id}")
    line = _one_line(run_cli("generate", *GENERATE, *where, "--out", tmp_path / "run"), 1)
    assert line.startswith(f"error: {source}: line 3 is not valid UTF-8 (byte 0xe9 at offset ")
    source.write_text("\n".join(lines[:2] + [json.dumps({"problem": "No id", "answer": "1", "id": None})]) + "\n")
    line = _one_line(run_cli("generate", *GENERATE, *where, "--out", tmp_path / "run"), 1)
    assert line.startswith(f"error: {source}: row 2 has no 'id' (null)")
    source.write_text("\n".join(lines) + "\n")  # fixed: the rerun gives the rows of a clean run
    assert run_cli("generate", *GENERATE, *where, "--out", tmp_path / "run").returncode == 0
    assert run_cli("generate", *GENERATE, *where, "--out", tmp_path / "clean").returncode == 0
    read = [pq.read_table(tmp_path / r / "traces" / "data").sort_by("id").drop(["gen_config"]) for r in ("run", "clean")]
    assert read[0].num_rows == 8 and read[0].equals(read[1])


def test_a_write_that_fails_without_a_file_name_is_named(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        Path(args[1]).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "Error writing bytes to file")  # as pyarrow raises it: no file name

    monkeypatch.setattr(pq, "write_table", full)
    target = tmp_path / "data" / "shard-00000.parquet"
    with pytest.raises(OSError) as e:
        shards.write_table(target, pa.table({"a": [1]}))
    assert e.value.filename == str(target) and e.value.errno == errno.ENOSPC
    assert "free some space" in e.value.strerror
    assert list(target.parent.iterdir()) == []  # no temp file left taking space


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs (root only, where mount is allowed), unmounted after."""
    point = tmp_path / "disk"
    point.mkdir()
    if os.getuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(point)],
                                          capture_output=True).returncode != 0:
        pytest.skip("needs root and mount for a small tmpfs (the unit test above covers the rest)")
    yield point
    subprocess.run(["umount", "-l", str(point)], check=False)


def test_a_full_disk_is_one_line_and_the_rerun_with_space_completes(tmp_path, small_disk):
    import random

    rng = random.Random(0)
    words = lambda: " ".join("".join(rng.choice("abcdefghijklmnop") for _ in range(7)) for _ in range(120))  # noqa: E731
    files = [[trace(f"q{f}-{i}", "1", f"<think>\n{words()}\n</think>\n\n\\boxed{{1}}") for i in range(60)]
             for f in range(4)]
    traces = write_traces(tmp_path / "t", files)
    line = _one_line(run_cli("filter", traces, "--out", small_disk / "run", *FILTER), 1)
    assert line.startswith(f"error: {small_disk / 'run' / 'filtered'}") and "No space left on device; " in line
    assert "free some space or write to another --out" in line
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    assert run_cli("filter", traces, "--out", small_disk / "run", *FILTER).returncode == 0
    assert run_cli("filter", traces, "--out", tmp_path / "clean", *FILTER).returncode == 0
    assert _kept(small_disk / "run") == _kept(tmp_path / "clean")
    # generate on the same full disk: the same one line
    subprocess.run(["umount", str(small_disk)], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small_disk)], check=True)
    line = _one_line(run_cli("generate", *GENERATE, "--set", "data.0.limit=400", "--out", small_disk / "gen"), 1)
    assert "No space left on device; free some space or write to another --out" in line


def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path):
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi")]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\nfilter: {seed: 1}\n")
    start = time.monotonic()
    line = _one_line(run_cli("filter", tmp_path, "--recipe", bomb, "--out", tmp_path / "run"), 2)
    assert line == f"error: {bomb}: its aliases expand to more than 100000 values"
    assert time.monotonic() - start < 30 and not (tmp_path / "run").exists()
    loop = tmp_path / "loop.yaml"
    loop.write_text("filter: &f {quotas: *f}\n")
    assert "refers to itself" in _one_line(run_cli("filter", tmp_path, "--recipe", loop, "--out", tmp_path / "r"), 2)


def test_keys_in_recipes_and_cards_are_refused_before_anything_is_written(tmp_path):
    key = f"sk-{uuid.uuid4().hex}"
    out = tmp_path / "run"
    for assignment in (f"teacher.engine.api_key={key}", f"teacher.engine.api_key_env={key}",
                       f"teacher.engine.extra_body={{hf_token: {key}}}"):
        result = run_cli("generate", "--recipe", "quickstart", "--out", out, "--set", assignment)
        line = _one_line(result, 2)
        assert key not in result.stderr + result.stdout and ("holds a secret" in line or "value not shown" in line)
        assert not out.exists()
    card = tmp_path / "mine.yaml"
    card.write_text(f"model: org/model\nbackend: openai\nengine: {{base_url: 'http://127.0.0.1:1/v1', api_key: {key}}}\n")
    result = run_cli("generate", "--recipe", "quickstart", "--out", out, "--set", f"teacher={card}")
    assert key not in result.stderr and "engine.api_key holds a secret" in _one_line(result, 2)
    assert not out.exists()


@pytest.mark.parametrize("response, kept", [("\\boxed{B or C}", False), ("\\boxed{B, C}", False),
                                            ("\\boxed{B/C}", False), ("\\boxed{B}", True), ("\\boxed{(B) 42}", True)])
def test_a_choice_of_two_letters_is_no_choice(response, kept):
    row = {"answer": "B", "choices": ["41", "42", "43"], "response": response, "problem": "Which?"}
    assert check_choice(row, {}).ok is kept


def test_inspect_sample_never_sends_terminal_escapes(tmp_path):
    row = trace("e1", "4", "<think>\n\x1b[2Jcleared\n</think>\n\n\x1b]0;title\x07\\boxed{4}",
                problem="What is \x1b[31mred\x1b[0m 2+2?\u202e")
    traces = write_traces(tmp_path / "t", [[row]])
    result = run_cli("inspect", traces, "--sample", "1")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout and "\u202e" not in result.stdout
    assert "\\x1b[2Jcleared" in result.stdout and "\\x1b[31mred" in result.stdout and "\\u202e" in result.stdout


def test_export_of_a_run_that_kept_no_rows(tmp_path):
    traces = write_traces(tmp_path / "t", [[_math(1, right=False)]])
    kept_nothing = run_cli("filter", traces, "--out", tmp_path / "run", *FILTER)
    assert kept_nothing.returncode == 1 and "the filter kept 0 of 1 rows" in kept_nothing.stderr  # written all the same
    result = run_cli("export", tmp_path / "run", "--out", tmp_path / "ex", "--format", "hf")
    assert result.returncode == 0, result.stderr
    import datasets

    ds = datasets.load_from_disk(str(tmp_path / "ex"))
    assert ds.num_rows == 0 and "messages" in ds.column_names


def test_student_card_mistakes_are_config_errors():
    from distill.train.student import check_template

    class Tokenizer:
        chat_template = "{{ raise_exception('broken') }}"

        def apply_chat_template(self, *args, **kwargs):
            raise ValueError("broken")

    with pytest.raises(ConfigError) as e:
        check_template(Tokenizer(), type("Card", (), {"name": "mine"})())
    assert e.value.exit_code == 2 and "its chat template fails on a plain conversation" in str(e.value)
