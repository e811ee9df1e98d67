"""`distill eval`: the metrics on hand-made verdicts, the R1 references, runs through the fake
backend (scores, resume after kill -9, bad input), a LoRA adapter through transformers, and the
real SmolLM2 on GSM8K test problems through the real engines."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import ROOT, kill_9, run_cli, start_cli, wait_for_done, write_yaml

from distill import metrics
from distill.eval import references
from distill.metrics import Sample

SHARED = ROOT.parent / "shared" / "data"
needs_shared = pytest.mark.skipif(not (SHARED / "gsm8k_test.jsonl").is_file(), reason="no ../shared/data")


# ---------------------------------------------------------------- metrics on hand-made verdicts


def S(correct: bool, answer: str | None = None) -> Sample:
    return Sample(correct, answer)


def test_pass_at_1_is_the_mean_of_per_problem_means_with_se_over_problems():
    problems = [
        [S(True), S(True), S(False), S(False)],  # 0.5
        [S(True)] * 4,  # 1.0
        [S(False)] * 4,  # 0.0
    ]
    p1, se = metrics.pass_at_1(problems)
    assert p1 == pytest.approx(50.0)
    # per-problem means 0.5, 1, 0: sample sd 0.5; SE = 0.5 / sqrt(3)
    assert se == pytest.approx(100 * 0.5 / math.sqrt(3))  # 28.8675…


def test_pass_at_1_with_one_sample_is_accuracy():
    p1, se = metrics.pass_at_1([[S(True)], [S(False)], [S(True)], [S(True)]])
    assert p1 == pytest.approx(75.0)
    assert se == pytest.approx(25.0)  # sd of 1,0,1,1 is 0.5; / sqrt(4)
    assert metrics.pass_at_1([[S(True), S(False)]]) == (50.0, 0.0)  # one problem: no spread to measure
    assert metrics.pass_at_1([]) == (0.0, 0.0)


def test_unequal_sample_counts_weigh_problems_equally():
    p1, _ = metrics.pass_at_1([[S(True)], [S(False)] * 3])
    assert p1 == pytest.approx(50.0)  # not 1 of 4 samples


def test_majority_vote_ignores_missing_answers_and_breaks_ties_by_first_seen():
    assert metrics.majority([S(False, "5"), S(True, "7"), S(False, "5")]).answer == "5"
    assert metrics.majority([S(False, None), S(False, ""), S(True, "3")]).answer == "3"
    assert metrics.majority([S(False, None)]) is None
    tie = metrics.majority([S(True, "a"), S(False, "b"), S(False, "b"), S(True, "a")])
    assert tie.answer == "a"
    # answers written differently but identically up to spacing, $, \left/\right and \dfrac vote together
    grouped = metrics.majority([S(False, "4"), S(True, "\\dfrac{1}{2}"), S(True, "$\\frac{1}{ 2}$")])
    assert grouped.correct and grouped.answer == "\\dfrac{1}{2}"  # 2 votes to 1
    assert metrics.majority([S(True, "7"), S(False, "4"), S(False, "4.")]).answer == "4"
    assert metrics.majority([S(True, "7"), S(False, "\\left(1,2\\right)"), S(False, "(1, 2)")]).answer != "7"


def test_cons_at_n_counts_problems_whose_majority_answer_is_right():
    problems = [
        [S(False, "5"), S(True, "7"), S(False, "5")],  # majority 5: wrong
        [S(False, None), S(False, None), S(True, "3")],  # only 3 voted: right
        [S(False, None)],  # no answer at all: wrong
        [S(True, "a"), S(False, "b")],  # tie, first seen: right
    ]
    assert metrics.cons_at_n(problems) == pytest.approx(50.0)
    assert metrics.cons_at_n([]) == 0.0


# ---------------------------------------------------------------- references


def test_references_hold_the_papers_table_for_six_students():
    table = {m["name"]: m["benchmarks"] for m in references.load()["models"]}
    assert len(table) == 6
    assert table["DeepSeek-R1-Distill-Qwen-7B"]["aime24"] == {"pass@1": 55.5, "cons@64": 83.3}
    assert table["DeepSeek-R1-Distill-Qwen-7B"]["math500"]["pass@1"] == 92.8
    assert table["DeepSeek-R1-Distill-Qwen-7B"]["gpqa-diamond"]["pass@1"] == 49.1
    assert table["DeepSeek-R1-Distill-Llama-70B"]["codeforces"]["rating"] == 1633
    assert table["DeepSeek-R1-Distill-Qwen-1.5B"]["aime24"]["cons@64"] == 52.7


def test_reference_match_by_model_recipe_or_base():
    assert references.match("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B")["matched"] == "model"
    assert references.match("/models/deepseek-r1-distill-llama-8b/")["name"] == "DeepSeek-R1-Distill-Llama-8B"
    hit = references.match("/runs/x/student", recipe="r1-distill-qwen-14b")
    assert (hit["name"], hit["matched"]) == ("DeepSeek-R1-Distill-Qwen-14B", "recipe")
    hit = references.match("/runs/x/student", base="Qwen/Qwen2.5-Math-7B")
    assert (hit["name"], hit["matched"]) == ("DeepSeek-R1-Distill-Qwen-7B", "base")
    assert references.match("HuggingFaceTB/SmolLM2-135M-Instruct", base="Qwen/Qwen2.5-7B") is None


# ---------------------------------------------------------------- through the fake backend


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def bench_files(tmp_path):
    """A MATH-500-shaped file (5 problems) and a GPQA-shaped local copy (options in the question)."""
    math = _jsonl(tmp_path / "math.jsonl", [
        {"unique_id": f"m/{i}", "problem": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(1, 6)
    ])
    gpqa = _jsonl(tmp_path / "gpqa.jsonl", [
        {"id": i, "question": f"Which is {i}?\n\nA. {i}\nB. {i + 1}\nC. {i + 2}\nD. {i + 3}", "answer": "A"}
        for i in range(1, 4)
    ])
    fake = write_yaml(tmp_path / "fake.yaml", {"model": "fake-model", "backend": "fake"})
    return {"math": math, "gpqa": gpqa, "fake": fake}


def _expected(scored_rows: list[dict]) -> tuple[float, float]:
    """pass@1 and cons@n computed here from the raw completions, not with distill's code: the
    fake teacher writes \\boxed{gold} when right and \\boxed{gold1} when wrong."""
    by_id: dict[str, list[bool]] = {}
    for r in scored_rows:
        by_id.setdefault(r["id"], []).append(f"\\boxed{{{r['answer']}}}" in r["completion"])
    means = [sum(v) / len(v) for v in by_id.values()]
    # every wrong sample of a problem writes the same wrong answer; right ones the gold answer
    cons = [sum(v) * 2 > len(v) or (sum(v) * 2 == len(v) and v[0]) for v in by_id.values()]
    return 100 * sum(means) / len(means), 100 * sum(cons) / len(cons)


def test_eval_end_to_end_through_the_fake_backend(tmp_path, bench_files):
    out = tmp_path / "run"
    result = run_cli("eval", "--model", bench_files["fake"], "--out", out,
                     "--benchmark", f"math500={bench_files['math']},gpqa-diamond={bench_files['gpqa']}",
                     "--n", "4", "--set", "eval.shard_size=2")
    assert result.returncode == 0, result.stderr
    scores = json.loads((out / "eval" / "scores.json").read_text())
    assert scores["protocol"]["temperature"] == 0.6 and scores["protocol"]["top_p"] == 0.95
    assert scores["protocol"]["max_tokens"] == 32768
    assert scores["protocol"]["prompt"].endswith("Please reason step by step, and put your final answer within \\boxed{}.")
    assert scores["reference"] is None
    for name, problems, verifier in (("math500", 5, "math"), ("gpqa-diamond", 3, "choice")):
        s = scores["benchmarks"][name]
        assert (s["problems"], s["n"], s["samples"], s["verifier"]) == (problems, 4, problems * 4, verifier)
        rows = pq.read_table(out / "eval" / name / "scored.parquet").to_pylist()
        assert len(rows) == problems * 4
        assert sorted({r["sample_idx"] for r in rows}) == [0, 1, 2, 3]
        for r in rows:  # every verdict agrees with what the fake teacher wrote
            assert r["correct"] == (f"\\boxed{{{r['answer']}}}" in r["completion"]), r
        p1, cons = _expected(rows)
        assert 0 < p1 < 100  # both right and wrong samples: the numbers can fail
        assert s["pass@1"] == round(p1, 2) and s["cons@n"] == round(cons, 2)
        means = {}
        for r in rows:
            means.setdefault(r["id"], []).append(r["correct"])
        sd = (sum((sum(v) / 4 - p1 / 100) ** 2 for v in means.values()) / (problems - 1)) ** 0.5
        assert s["pass@1_se"] == round(100 * sd / problems ** 0.5, 2)
        assert sum(s["wrong"].values()) == sum(not r["correct"] for r in rows)
        # the samples as generate writes them: shards, done markers, a manifest
        assert len(list((out / "eval" / name / "data").glob("shard-*.parquet"))) == math.ceil(problems / 2)
        assert json.loads((out / "eval" / name / "manifest.json").read_text())["counts"]["samples"] == problems * 4
    gpqa_rows = pq.read_table(out / "eval" / "gpqa-diamond" / "scored.parquet").to_pylist()
    assert {r["extracted_answer"] for r in gpqa_rows if r["correct"]} == {"A"}
    assert "MATH-500" in result.stdout and "GPQA Diamond" in result.stdout and "pass@1" in result.stdout


def test_per_benchmark_default_n_and_set_override(tmp_path, bench_files):
    out = tmp_path / "run"
    result = run_cli("eval", "--model", bench_files["fake"], "--out", out, "--limit", "2",
                     "-b", f"math500={bench_files['math']}", "-b", f"gpqa-diamond={bench_files['gpqa']}",
                     "--set", "benchmarks.gpqa-diamond.n=3")
    assert result.returncode == 0, result.stderr
    scores = json.loads((out / "eval" / "scores.json").read_text())["benchmarks"]
    assert (scores["math500"]["n"], scores["math500"]["problems"]) == (4, 2)  # MATH-500's default
    assert (scores["gpqa-diamond"]["n"], scores["gpqa-diamond"]["problems"]) == (3, 2)


def test_resume_after_kill_does_not_redo_finished_shards(tmp_path, bench_files):
    args = ["eval", "--model", str(bench_files["fake"]), "--benchmark", f"math500={bench_files['math']}",
            "--n", "3", "--set", "eval.shard_size=1", "--set", "model.engine.delay=0.15"]
    reference = run_cli(*args, "--out", tmp_path / "ref")
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "killed"
    proc = start_cli(*args, "--out", out)
    done = out / "eval" / "math500" / "_done"
    wait_for_done(proc, done, 2, timeout=120)
    kill_9(proc)
    finished = sorted(os.listdir(done))
    assert 2 <= len(finished) < 5
    data = out / "eval" / "math500" / "data"
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in data.glob("shard-*.parquet")}
    assert len(before) >= len(finished)
    assert not (out / "eval" / "scores.json").exists()
    rerun = run_cli(*args, "--out", out)
    assert rerun.returncode == 0, rerun.stderr
    assert f"({len(finished)} of 5 shards done)" in rerun.stdout
    for name in (f"shard-{int(i):05d}.parquet" for i in finished):  # finished shards left as they were
        assert (data / name).stat().st_ino == before[name][0]
        assert (data / name).stat().st_mtime_ns == before[name][1]
    got = json.loads((out / "eval" / "scores.json").read_text())["benchmarks"]
    want = json.loads((tmp_path / "ref" / "eval" / "scores.json").read_text())["benchmarks"]
    assert got == want  # none lost, none twice: the uninterrupted run's scores
    rows = pq.read_table(out / "eval" / "math500" / "scored.parquet").to_pylist()
    assert len(rows) == 15 and len({(r["id"], r["sample_idx"]) for r in rows}) == 15


def _one_line_error(result, code: int, *needles: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_bad_input_is_one_line(tmp_path, bench_files):
    fake, math = str(bench_files["fake"]), str(bench_files["math"])
    out = tmp_path / "bad"
    _one_line_error(run_cli("eval", "--model", fake, "-b", "aime26", "--out", out), 2,
                    "unknown benchmark 'aime26'", "aime24")
    _one_line_error(run_cli("eval", "--model", str(tmp_path / "no-such-model"), "-b", f"math500={math}", "--out", out),
                    1, "no-such-model", "no such model folder")
    (tmp_path / "empty").mkdir()
    _one_line_error(run_cli("eval", "--model", str(tmp_path / "empty"), "-b", f"math500={math}", "--out", out),
                    1, "not a model folder")
    _one_line_error(run_cli("eval", "--model", fake, "-b", f"math500={math}", "--n", "0", "--out", out), 2,
                    "--n must be at least 1, got 0")
    _one_line_error(run_cli("eval", "--model", fake, "-b", "math500=/nope.jsonl", "--out", out), 1, "/nope.jsonl")
    _one_line_error(run_cli("eval", "--model", fake, "-b", f"math500={math}", "--set", "eval.temprature=0",
                            "--out", out), 2, "unknown key 'temprature'", "temperature")
    _one_line_error(run_cli("eval", "--model", fake, "-b", f"math500={math}", "--set", "benchmarks.aime24.n=2",
                            "--out", out), 2, "benchmarks.aime24 is not one of this run's --benchmark")
    assert not out.exists()  # nothing written for a refused command
    # a finished benchmark rerun with other settings is refused, naming the key
    assert run_cli("eval", "--model", fake, "-b", f"math500={math}", "--n", "2", "--out", out).returncode == 0
    _one_line_error(run_cli("eval", "--model", fake, "-b", f"math500={math}", "--n", "3", "--out", out), 2,
                    "written with n=2, this run would use 3")


def test_gpqa_from_the_hub_without_access_says_it_is_gated(monkeypatch):
    import datasets

    from distill.eval import benchmarks
    from distill.config import DatasetCard
    from distill.errors import UserError
    from distill.recipes import load_card

    def refuse(*args, **kwargs):
        raise ConnectionError("Dataset 'Idavidrein/gpqa' is a gated dataset on the Hub. You must be authenticated")

    monkeypatch.setattr(datasets, "load_dataset", refuse)
    bench = benchmarks.Benchmark(name="gpqa-diamond", card=load_card(DatasetCard, "gpqa-diamond"), n=8)
    with pytest.raises(UserError) as info:
        benchmarks.problems(bench)
    message = str(info.value)
    assert "\n" not in message and "gated" in message and "https://huggingface.co/datasets/Idavidrein/gpqa" in message
    assert "--benchmark gpqa-diamond=FILE" in message and "hf auth login" in message
    # not gated, just offline: the same one line without the licence part
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    bench = benchmarks.Benchmark(name="math500", card=load_card(DatasetCard, "math500"), n=4)
    with pytest.raises(UserError) as info:
        benchmarks.problems(bench)
    assert "HuggingFaceH4/MATH-500" in str(info.value) and "--benchmark math500=FILE" in str(info.value)
    assert "gated" not in str(info.value)


def test_gpqa_hub_layout_gets_shuffled_lettered_options(monkeypatch):
    import datasets

    from distill.eval import benchmarks
    from distill.config import DatasetCard
    from distill.recipes import load_card

    raw = [{"Question": f"Q{i}?", "Correct Answer": f"right{i}", "Incorrect Answer 1": f"w{i}a",
            "Incorrect Answer 2": f"w{i}b", "Incorrect Answer 3": f"w{i}c", "Record ID": f"rec{i}"} for i in range(8)]
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.Dataset.from_list(raw))
    bench = benchmarks.Benchmark(name="gpqa-diamond", card=load_card(DatasetCard, "gpqa-diamond"), n=8)
    rows = benchmarks.problems(bench)
    again = benchmarks.problems(bench)
    assert rows == again  # the same letters every time
    assert len({r["answer"] for r in rows}) > 1  # the right option is not always A
    for i, r in enumerate(rows):
        letter = r["answer"]
        assert r["id"] == f"gpqa-diamond/rec{i}"
        assert f"\n{letter}. right{i}" in r["problem"] and r["choices"]["ABCD".index(letter)] == f"right{i}"


def test_bundled_benchmark_cards_load_from_local_copies():
    from distill.eval import benchmarks
    from distill.config import DatasetCard
    from distill.recipes import load_card

    files = {"math500": "math500.jsonl", "aime24": "aime24.jsonl", "amc23": "amc23.jsonl",
             "gsm8k-test": "gsm8k_test.jsonl", "gpqa-diamond": "gpqa_diamond.jsonl"}
    for name in benchmarks.KNOWN:
        card = load_card(DatasetCard, name)  # every bundled benchmark card validates, aime25 included
        assert card.hub, name
        if name not in files or not (SHARED / files[name]).is_file():
            continue
        bench = benchmarks.Benchmark(name=name, card=card, n=1, path=str(SHARED / files[name]))
        rows = benchmarks.problems(bench)
        assert len(rows) == {"math500": 500, "aime24": 30, "amc23": 40, "gsm8k-test": 1319, "gpqa-diamond": 198}[name]
        assert all(r["answer"] for r in rows)
    assert load_card(DatasetCard, "aime25").hub == "yentinglin/aime_2025"


# ---------------------------------------------------------------- LoRA adapter, transformers


@pytest.fixture(scope="module")
def tiny_adapter(tmp_path_factory, tiny_qwen2):
    """A LoRA adapter on the tiny Qwen2 whose B matrices are random (not zero), so it changes
    what the model writes."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen2)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=64, target_modules="all-linear",
                                                  init_lora_weights=False))
    folder = tmp_path_factory.mktemp("adapter") / "student"
    peft_model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_qwen2).save_pretrained(folder)
    return folder


def test_lora_adapter_evaluates_without_a_merge(tmp_path, tiny_qwen2, tiny_adapter, bench_files):
    common = ["-b", f"math500={bench_files['math']}", "--limit", "2", "--backend", "hf", "--max-tokens", "8",
              "--set", "eval.temperature=0", "--set", "model.dtype=float32"]
    base = run_cli("eval", "--model", tiny_qwen2, "--out", tmp_path / "base", *common)
    assert base.returncode == 0, base.stderr
    tuned = run_cli("eval", "--model", tiny_adapter, "--out", tmp_path / "tuned", *common)
    assert tuned.returncode == 0, tuned.stderr
    assert "adapter" in tuned.stdout
    base_rows = pq.read_table(tmp_path / "base" / "eval" / "math500" / "scored.parquet").to_pylist()
    rows = pq.read_table(tmp_path / "tuned" / "eval" / "math500" / "scored.parquet").to_pylist()
    assert json.loads(rows[0]["gen_config"])["adapter"] == str(tiny_adapter.resolve())
    assert "adapter" not in json.loads(base_rows[0]["gen_config"])
    # greedy decoding: the same prompts give other text only because the adapter is applied
    assert [r["completion"] for r in rows] != [r["completion"] for r in base_rows]
    # and exactly what peft itself writes with the adapter
    import torch
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_adapter)
    model = AutoPeftModelForCausalLM.from_pretrained(tiny_adapter).eval()
    text = tok.apply_chat_template([{"role": "user", "content": rows[0]["problem"] + "\n\nPlease reason step by step, "
                                     "and put your final answer within \\boxed{}."}], tokenize=False,
                                   add_generation_prompt=True)
    enc = tok(text, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        ids = model.generate(**enc, do_sample=False, max_new_tokens=8, pad_token_id=tok.pad_token_id)
    assert rows[0]["completion"] == tok.decode(ids[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)


def test_adapter_whose_base_is_gone_is_one_line(tmp_path, tiny_adapter, bench_files):
    import shutil

    moved = tmp_path / "student"
    shutil.copytree(tiny_adapter, moved)
    config = json.loads((moved / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "gone-base")
    (moved / "adapter_config.json").write_text(json.dumps(config))
    _one_line_error(run_cli("eval", "--model", moved, "-b", f"math500={bench_files['math']}", "--out", tmp_path / "o"),
                    1, "the adapter's base model", "gone-base")


# ---------------------------------------------------------------- the real SmolLM2


@pytest.mark.slow
@needs_shared
def test_smollm2_on_gsm8k_with_transformers(tmp_path, smollm2_dir):
    out = tmp_path / "smol"
    result = run_cli("eval", "--model", "smollm2-135m-instruct", "-b", f"gsm8k-test={SHARED / 'gsm8k_test.jsonl'}",
                     "--limit", "5", "--max-tokens", "96", "--backend", "hf", "--out", out, timeout=900,
                     env={"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    _check_smollm2(out, 96)
    assert json.loads((out / "eval" / "scores.json").read_text())["model"].startswith("HuggingFaceTB/SmolLM2-135M")


def _check_smollm2(out: Path, max_tokens: int) -> None:
    scores = json.loads((out / "eval" / "scores.json").read_text())
    s = scores["benchmarks"]["gsm8k-test"]
    assert (s["problems"], s["n"], s["samples"]) == (5, 1, 5)
    rows = pq.read_table(out / "eval" / "gsm8k-test" / "scored.parquet").to_pylist()
    assert len(rows) == 5
    for r in rows:
        assert r["completion"].strip() and 1 <= r["completion_tokens"] <= max_tokens
        assert r["finish_reason"] in ("stop", "length")
        assert r["correct"] == (r["reason"] is None)
    assert s["pass@1"] == round(100 * sum(r["correct"] for r in rows) / 5, 2)


@pytest.mark.vllm
@needs_shared
def test_smollm2_on_gsm8k_with_vllm_and_a_lora_adapter(tmp_path, smollm2_dir):
    """vLLM serves a LoRA adapter on the base weights (enable_lora + LoRARequest), no merge."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    adapter = tmp_path / "run" / "student"
    get_peft_model(model, LoraConfig(r=8, target_modules=["q_proj", "v_proj"])).save_pretrained(adapter)
    AutoTokenizer.from_pretrained(smollm2_dir).save_pretrained(adapter)
    out = tmp_path / "smol"
    result = run_cli("eval", "--model", adapter, "-b", f"gsm8k-test={SHARED / 'gsm8k_test.jsonl'}", "--limit", "5",
                     "--max-tokens", "64", "--backend", "vllm", "--out", out, timeout=900)
    assert result.returncode == 0, result.stderr
    _check_smollm2(out, 64)
    rows = pq.read_table(out / "eval" / "gsm8k-test" / "scored.parquet").to_pylist()
    config = json.loads(rows[0]["gen_config"])
    assert config["backend"] == "vllm" and config["adapter"] == str(adapter.resolve())
    from test_quiet import NOISE

    assert not [n for n in NOISE if n in result.stdout + result.stderr], result.stderr  # an adapter has no config.json


# ---------------------------------------------------------------- the paper's numbers beside ours


@needs_shared
def test_published_student_is_shown_beside_the_papers_numbers(tmp_path):
    card = write_yaml(tmp_path / "r1-7b.yaml", {"model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "backend": "fake"})
    out = tmp_path / "run"
    result = run_cli("eval", "--model", card, "-b", f"aime24={SHARED / 'aime24.jsonl'}", "--limit", "3", "--n", "2",
                     "--out", out)
    assert result.returncode == 0, result.stderr
    scores = json.loads((out / "eval" / "scores.json").read_text())
    assert scores["reference"] == {"model": "DeepSeek-R1-Distill-Qwen-7B", "matched": "model",
                                   "source": "DeepSeek-R1 paper (arXiv:2501.12948), Table 5"}
    assert scores["benchmarks"]["aime24"]["reference"] == {"pass@1": 55.5, "cons@64": 83.3}
    assert "paper: DeepSeek-R1-Distill-Qwen-7B (the published model)" in result.stdout
    assert "55.5" in result.stdout and "83.3" in result.stdout


def test_run_folder_trained_with_a_reproduction_recipe_matches_by_recipe(tmp_path, bench_files):
    run = tmp_path / "runs" / "mine"
    write_yaml(run / "recipe.resolved.yaml", {"name": "r1-distill-qwen-1.5b", "student": {"model": "Qwen/Qwen2.5-Math-1.5B"}})
    (run / "student").mkdir(parents=True)
    (run / "student" / "config.json").write_text("{}")
    out = tmp_path / "out"
    result = run_cli("eval", "--model", run, "--backend", "fake", "-b", f"math500={bench_files['math']}",
                     "--limit", "2", "--n", "1", "--out", out)
    assert result.returncode == 0, result.stderr
    scores = json.loads((out / "eval" / "scores.json").read_text())
    assert scores["reference"]["model"] == "DeepSeek-R1-Distill-Qwen-1.5B" and scores["reference"]["matched"] == "recipe"
    assert scores["benchmarks"]["math500"]["reference"] == {"pass@1": 83.9}
    assert "trained with its reproduction recipe" in result.stdout


# ---------------------------------------------------------------- over HTTP (OpenAI-compatible)


def test_eval_over_http_sends_the_r1_protocol(tmp_path, bench_files):
    from openai_server import Script, serve

    script = Script(["429", "500"])
    server, url = serve(script)
    try:
        card = write_yaml(tmp_path / "http.yaml", {
            "model": "served-model", "backend": "openai",
            "engine": {"base_url": url, "timeout": 5.0, "backoff": 0.01, "max_retries": 4, "concurrency": 4}})
        out = tmp_path / "run"
        result = run_cli("eval", "--model", card, "-b", f"math500={bench_files['math']}", "--n", "3",
                         "--max-tokens", "256", "--out", out)
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr
    asked = [r for r in script.requests if "messages" in r]
    assert len(asked) == 5 * 3 + 2  # one request per sample, two of them retried
    for body in asked:
        assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.6, 0.95, 256)
        assert [m["role"] for m in body["messages"]] == ["user"]
        assert body["messages"][0]["content"].endswith(
            "\n\nPlease reason step by step, and put your final answer within \\boxed{}.")
    assert len({(b["messages"][0]["content"], b["seed"]) for b in asked}) == 15  # every sample its own seed
    rows = pq.read_table(out / "eval" / "math500" / "scored.parquet").to_pylist()
    for r in rows:
        assert r["correct"] == (f"\\boxed{{{r['answer']}}}" in r["completion"])
    s = json.loads((out / "eval" / "scores.json").read_text())["benchmarks"]["math500"]
    assert s["pass@1"] == round(_expected(rows)[0], 2)


# ---------------------------------------------------------------- verdicts: the filter's own checks


def test_verdicts_come_from_the_filters_checks_and_truncated_samples_are_wrong():
    from helpers import trace

    from distill.eval.evalscore import _verify, summarize
    from distill.verify.pool import VerifyPool

    rows = [
        trace("p1", "18", "<think>\nsum\n</think>\n\nSo \\boxed{17}.", sample_idx=0),
        trace("p1", "18", "<think>\nsum\n</think>\n\nSo \\boxed{18}.", finish_reason="length", sample_idx=1),
        trace("p1", "18", "<think>\nsum\n</think>\n\nSo \\boxed{18}.", sample_idx=2),
        trace("p2", "\\frac{1}{2}", "It is \\boxed{0.5}", sample_idx=0),
        trace("p2", "\\frac{1}{2}", "<think>\nstill going, \\boxed{0.5}", sample_idx=1),
        trace("p2", "\\frac{1}{2}", "It is \\boxed{\\dfrac{1}{2}}", sample_idx=2),
    ]
    with VerifyPool(1, 5.0) as pool:
        _verify(rows, "math", 5.0, pool)
    got = [(r["correct"], r["reason"], r["extracted_answer"]) for r in rows]
    assert got == [
        (False, "wrong_answer", "17"),
        (False, "truncated", None),  # cut off: wrong, and no vote, even with the right box in it
        (True, None, "18"),
        (True, None, "0.5"),  # math-verify: 0.5 is 1/2
        (False, "think_unclosed", None),
        (True, None, "\\dfrac{1}{2}"),
    ]
    s = summarize(rows, ["p1", "p2"], 3)
    assert s["pass@1"] == round(100 * (1 / 3 + 2 / 3) / 2, 2)
    # p1: 17 vs 18 one vote each (the truncated 18 does not vote), the first seen wins: wrong;
    # p2: 0.5 and \dfrac{1}{2} vote apart (text differs), one each, 0.5 first: right
    assert s["cons@n"] == 50.0
    assert s["wrong"] == {"think_unclosed": 1, "truncated": 1, "wrong_answer": 1}
    assert s["truncated"] == round(100 / 6, 2)


def test_model_specs_resolve_to_what_the_engines_load(tmp_path, tiny_qwen2, tiny_adapter):
    from distill.eval import evalmodel
    from distill.errors import UserError

    teacher = evalmodel.resolve("smollm2-135m-instruct")
    assert teacher.card.gguf is not None and teacher.adapter is None
    student = evalmodel.resolve("smollm2-135m")  # a student card: the same weights
    assert (student.card.name, student.card.model) == ("smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct")
    folder = evalmodel.resolve(str(tiny_qwen2))
    assert folder.card.model == str(tiny_qwen2.resolve()) and folder.adapter is None
    adapter = evalmodel.resolve(str(tiny_adapter))
    assert adapter.adapter == str(tiny_adapter.resolve()) and adapter.card.model == str(tiny_qwen2)
    assert adapter.base == str(tiny_qwen2)
    with pytest.raises(UserError, match="cannot load model 'no-such-org/no-such-model'"):
        evalmodel.resolve("no-such-org/no-such-model")  # offline in tests: the hub is never reached
    with pytest.raises(UserError, match="no such model folder"):
        evalmodel.resolve("runs/nothing/here")


def test_a_dataset_card_file_is_a_benchmark(tmp_path, bench_files):
    card = write_yaml(tmp_path / "my-bench.yaml", {"path": str(bench_files["math"]), "domain": "math",
                                                   "columns": {"problem": "problem", "answer": "answer"}})
    out = tmp_path / "run"
    result = run_cli("eval", "--model", bench_files["fake"], "-b", card, "--out", out)
    assert result.returncode == 0, result.stderr
    s = json.loads((out / "eval" / "scores.json").read_text())["benchmarks"]["my-bench"]
    assert (s["problems"], s["n"], s["verifier"]) == (5, 1, "math")
