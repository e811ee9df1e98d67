"""A newcomer's own problems: the README's "Your own problems" recipe, written as the README
shows it, goes through `distill run`; a bundled card over a file it cannot read stops first."""

from __future__ import annotations

import json
import re

from helpers import ROOT, run_cli


def _readme_recipe() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Your own problems", 1)[1]
    return re.search(r"```yaml\n(.*?)```", section, re.S).group(1)


def _problems(path) -> None:
    rows = [{"question": f"What is {a} + {b}?", "solution": str(a + b)} for a, b in ((2, 3), (7, 6), (10, 4))]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_the_readmes_own_problems_recipe_runs(tmp_path, tiny_qwen2):
    recipe = tmp_path / "my-recipe.yaml"
    recipe.write_text(_readme_recipe())
    _problems(tmp_path / "problems.jsonl")
    teacher = tmp_path / "tiny.yaml"
    teacher.write_text(f"model: {tiny_qwen2}\ndtype: float32\nsampling: {{temperature: 1.0, max_tokens: 8}}\n")
    # only the engines are swapped for tiny local ones (no hub here); the data section is the README's
    result = run_cli(
        "run", "--recipe", recipe, "--out", tmp_path / "runs" / "mine",
        "--set", f"teacher={teacher}", "--set", f"student.model={tiny_qwen2}", "--set", "student.max_length=256",
        "--set", "generate.backend=hf", "--set", "generate.n=2",
        # a random model never answers right: keep what it writes so that training has rows
        "--set", "filter.verifiers=[format]", "--set", "filter.reject_truncated=false", "--set", "filter.workers=1",
        "--set", "train.max_steps=1", "--set", "train.batch_size=2",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    traces = tmp_path / "runs" / "mine" / "traces"
    import pyarrow.parquet as pq

    rows = pq.ParquetDataset(traces / "data").read().to_pylist()
    assert {r["problem"] for r in rows} == {"What is 2 + 3?", "What is 7 + 6?", "What is 10 + 4?"}
    assert {r["answer"] for r in rows} == {"5", "13", "14"} and {r["source"] for r in rows} == {"problems"}
    assert (tmp_path / "runs" / "mine" / "student" / "train_summary.json").is_file()


def test_a_bundled_card_over_another_layout_stops_before_generating(tmp_path):
    recipe = tmp_path / "r.yaml"
    text = _readme_recipe().replace("  - path: problems.jsonl", "  - card: gsm8k\n    path: problems.jsonl")
    recipe.write_text("\n".join(line for line in text.splitlines() if "domain:" not in line))
    _problems(tmp_path / "problems.jsonl")
    result = run_cli("generate", "--recipe", recipe, "--out", tmp_path / "run")
    assert result.returncode == 1 and "card 'gsm8k' reads gold answers with the pattern" in result.stderr
    assert "matches 0 of 3 answers" in result.stderr
    assert not list((tmp_path / "run").rglob("*.parquet"))  # nothing generated


def test_cards_show_each_description_and_where_the_files_are():
    result = run_cli("cards", "datasets")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("datasets (") and str(ROOT / "datasets") in lines[0]
    gsm8k = next(line for line in lines if line.split()[:1] == ["gsm8k"])
    assert "GSM8K train" in gsm8k


def _readme_card(name: str) -> str:
    section = (ROOT / "README.md").read_text().split("## Your own teacher", 1)[1]
    return next(block for block in re.findall(r"```yaml\n(.*?)```", section, re.S) if block.startswith(f"# {name}"))


def test_the_readmes_served_teacher_card_reaches_a_local_server_with_its_token(tmp_path):
    """The card as the README writes it, only its port changed to a scripted server's."""
    from openai_server import Script, serve

    script = Script()
    server, url = serve(script)
    try:
        card = tmp_path / "served-teacher.yaml"
        card.write_text(_readme_card("served-teacher.yaml").replace("http://localhost:8080/v1", url))
        assert card.read_text() != _readme_card("served-teacher.yaml")
        recipe = tmp_path / "r.yaml"
        recipe.write_text("teacher: served-teacher.yaml\ndata: [{card: arithmetic, limit: 3}]\ngenerate: {n: 1}\n")
        result = run_cli("generate", "--recipe", recipe, "--out", tmp_path / "run",
                         env={"TEACHER_API_TOKEN": "sk-readme-test"})
        assert result.returncode == 0, result.stderr
        assert script.authorization == ["Bearer sk-readme-test"] * 3
        assert all(body["stream"] and body["model"] == "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"
                   for body in script.requests)
        assert "sk-readme-test" not in "".join(p.read_text(errors="ignore") for p in (tmp_path / "run").rglob("*")
                                               if p.is_file())
        missing = run_cli("generate", "--recipe", recipe, "--out", tmp_path / "run2", env={"TEACHER_API_TOKEN": ""})
        assert missing.returncode != 0 and "TEACHER_API_TOKEN" in missing.stderr
    finally:
        server.shutdown()


def test_the_readmes_vllm_teacher_card_is_a_valid_card(tmp_path):
    from distill.config import TeacherCard
    from distill.recipes import build, parse_yaml

    card = build(TeacherCard, {"name": "mine", **parse_yaml(_readme_card("my-teacher.yaml"))}, "README")
    assert card.backend == "vllm" and card.engine == {"max_model_len": 17408} and card.sampling.max_tokens == 16384
