"""export: a run's rows as JSON Lines, Parquet or a save_to_disk folder, with a dataset card and
provenance.json; the hub upload against a stubbed HfApi (no network here)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
import yaml
from helpers import ROOT, run_cli, trace, write_traces

from distill.look import hub
from distill import shards
from distill.errors import ConfigError, UserError
from distill.look.export import run_export
from distill.filter.stage import run_filter
from distill.generate.stage import run_generate
from distill.recipes import load_recipe, to_dict

SETTINGS = ["generate.backend=fake", "data.0.limit=9", "generate.shard_size=3", "generate.n=2", "filter.workers=1"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real run folder (read only in these tests): the quickstart recipe through the fake
    teacher (right two times in three), then the real format and math verifiers and dedup."""
    out = tmp_path_factory.mktemp("export") / "run"
    recipe = load_recipe("quickstart", SETTINGS)
    run_generate(recipe, out)
    run_filter(recipe, out, out)
    return out


def rows_of(folder):
    return pq.ParquetDataset(folder).read().to_pylist()


def key(row):
    return row["id"], row["sample_idx"]


def front_matter(readme):
    text = readme.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1]), text


def test_jsonl_round_trip_keeps_every_row_and_message(run, tmp_path):
    result = run_export(run, tmp_path / "out", "jsonl")
    kept = rows_of(run / "filtered" / "data")
    lines = (tmp_path / "out" / "data" / "train.jsonl").read_text().splitlines()
    exported = [json.loads(line) for line in lines]
    assert result["rows"] == len(exported) == len(kept) == 8 and result["kind"] == "kept"
    assert [key(r) for r in exported] == [key(r) for r in kept]
    for ours, theirs in zip(exported, kept):
        assert ours["messages"] == theirs["messages"]  # a list of {role, content}
        assert [m["role"] for m in ours["messages"]] == ["user", "assistant"]
        assert ours["pass_rate"] == pytest.approx(theirs["pass_rate"], abs=1e-6)
        assert {k: v for k, v in ours.items() if k != "pass_rate"} == {k: v for k, v in theirs.items() if k != "pass_rate"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["README.md", "data", "provenance.json", "recipe.yaml"]
    config, _ = front_matter(tmp_path / "out" / "README.md")
    assert config["configs"][0]["data_files"] == [{"split": "train", "path": "data/train.jsonl"}]


def test_parquet_loads_with_datasets_and_pyarrow(run, tmp_path):
    import datasets

    out = tmp_path / "out"
    result = run_export(run, out, "parquet")
    assert result["files"] == [f"data/train-{i:05d}-of-00003.parquet" for i in range(3)]
    kept = rows_of(run / "filtered" / "data")
    assert pads.dataset(out / "data").to_table().to_pylist() == kept
    ds = datasets.load_dataset("parquet", data_dir=str(out / "data"), split="train", cache_dir=str(tmp_path / "c1"))
    assert [key(r) for r in ds] == [key(r) for r in kept] and ds["messages"] == [r["messages"] for r in kept]
    # the card's configs let the folder itself load, as load_dataset(REPO) will on the hub
    by_card = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "c2"))
    assert by_card["id"] == ds["id"]


def test_hf_format_loads_from_disk(run, tmp_path):
    import datasets

    out = tmp_path / "out"
    run_export(run, out, "hf")
    ds = datasets.load_from_disk(str(out))
    kept = rows_of(run / "filtered" / "data")
    assert ds.num_rows == len(kept) and [key(r) for r in ds] == [key(r) for r in kept]
    assert ds["messages"] == [r["messages"] for r in kept]
    config, text = front_matter(out / "README.md")
    assert "configs" not in config and f'load_from_disk("{out}")' in text  # load_dataset refuses such a folder
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # datasets' cache went with the build


def test_card_and_provenance_hold_what_made_the_rows(run, tmp_path):
    run_export(run, tmp_path / "out", "jsonl")
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    report = json.loads((run / "filtered" / "report.json").read_text())
    recipe = yaml.safe_load((run / "recipe.resolved.yaml").read_text())
    assert prov["teacher"]["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert prov["teacher"]["revision"] == "not pinned"
    assert prov["teacher"]["recorded"] == [rows_of(run / "filtered" / "data")[0]["teacher"]]
    sampling = prov["sampling"]
    assert (sampling["temperature"], sampling["top_p"], sampling["max_tokens"], sampling["n"], sampling["seed"]) == (
        0.6, 0.95, 256, 2, 0)
    assert sampling["template"]["user"].startswith("{problem}")
    assert prov["prompts"] == [{"card": "arithmetic", "split": "train", "generator": "arithmetic",
                                "params": {"count": 200, "seed": 0, "split": "train"}, "limit": 9}]
    assert prov["filters"]["verifiers"] == ["format", "math"] and prov["filters"]["dedup"] is True
    assert "workers" not in prov["filters"]
    assert prov["counts"]["generate"]["prompts"] == 9 and prov["counts"]["generate"]["samples"] == 18
    assert prov["counts"]["filter"]["reasons"] == report["reasons"] == {"duplicate": 4, "wrong_answer": 6}
    assert prov["counts"]["exported"] == report["kept"] == 8
    assert prov["counts"]["exported_by_source"] == {"arithmetic": 8}
    assert prov["versions"]["generated_with"]["distill"] == prov["versions"]["exported_with"]["distill"]
    assert prov["command"] == f"distill export {run} --format jsonl --out {tmp_path / 'out'}"
    assert prov["reproduce"][:2] == ["distill generate --recipe recipe.yaml --out runs/quickstart",
                                     "distill filter runs/quickstart --recipe recipe.yaml --out runs/quickstart"]
    config, text = front_matter(tmp_path / "out" / "README.md")
    assert config["license"] == "unknown" and {"distill", "reasoning", "synthetic"} <= set(config["tags"])
    assert config["size_categories"] == ["n<1K"]
    for line in ("| model | HuggingFaceTB/SmolLM2-135M-Instruct |", "| temperature | 0.6 |", "| top_p | 0.95 |",
                 "| max_tokens | 256 |", "| n | 2 |", '| verifiers | ["format", "math"] |', "| dedup | true |",
                 "| prompts | 9 |", "| samples generated | 18 |", "| kept | 8 |", "| rejected | 10 |",
                 "| duplicate | 4 |", "| wrong_answer | 6 |", "distill generate --recipe recipe.yaml --out runs/quickstart"):
        assert line in text, line
    # the shipped recipe.yaml is the run's recipe and loads as one: the reproduce commands work
    shipped = load_recipe(str(tmp_path / "out" / "recipe.yaml"))
    assert to_dict(shipped)["generate"] == recipe["generate"] and to_dict(shipped)["filter"] == recipe["filter"]


def test_rejected_rows_and_traces(run, tmp_path):
    result = run_export(run, tmp_path / "rej", "parquet", rows="rejected")
    rejected = pads.dataset(tmp_path / "rej" / "data").to_table().to_pylist()
    assert result["kind"] == "rejected" and len(rejected) == 10 and all(r["reject_reason"] for r in rejected)
    prov = json.loads((tmp_path / "rej" / "provenance.json").read_text())
    assert prov["counts"]["exported_by_reason"] == {"duplicate": 4, "wrong_answer": 6}
    # a traces/ folder given directly: every sample, no filter, but the run's teacher and prompts
    result = run_export(run / "traces", tmp_path / "traces", "jsonl")
    lines = (tmp_path / "traces" / "data" / "train.jsonl").read_text().splitlines()
    assert result["kind"] == "traces" and len(lines) == 18
    prov = json.loads((tmp_path / "traces" / "provenance.json").read_text())
    assert prov["filters"] == prov["counts"]["filter"] == "not applied (raw traces)"
    assert prov["teacher"]["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and prov["prompts"][0]["limit"] == 9


def test_a_folder_distill_did_not_write_says_unknown(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    pq.write_table(pa.table({"messages": [[{"role": "user", "content": "hi"}]], "x": [1]}), folder / "a.parquet")
    pq.write_table(pa.table({"messages": pa.array([], pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
                             "x": pa.array([], pa.int64())}), folder / "b.parquet")
    result = run_export(folder, tmp_path / "out", "parquet")
    assert result["rows"] == 1 and result["kind"] is None
    assert result["files"] == ["data/train-00000-of-00001.parquet"]  # the empty file is left out
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert prov["teacher"] == {"model": "unknown", "revision": "unknown", "recorded": "unknown"}
    assert prov["sampling"] == prov["prompts"] == prov["filters"] == prov["counts"]["generate"] == "unknown"
    assert prov["reproduce"] == "unknown"
    text = (tmp_path / "out" / "README.md").read_text()
    assert "Sampling: unknown." in text and "Filters: unknown." in text and "distill did not write" in text
    # hand-written traces without a manifest: what the rows record is used, nothing more
    write_traces(tmp_path / "hand", [[trace("a", "1", "\\boxed{1}")]])
    run_export(tmp_path / "hand", tmp_path / "out2", "jsonl")
    prov = json.loads((tmp_path / "out2" / "provenance.json").read_text())
    assert prov["teacher"]["recorded"] == ["hand"] and prov["teacher"]["model"] == "unknown"
    assert prov["sampling"]["temperature"] == 0.6 and prov["counts"]["generate"] == "unknown"
    # files of two schemas: parquet and jsonl take them file by file, datasets cannot make one table
    pq.write_table(pa.table({"y": ["text"]}), folder / "c.parquet")
    with pytest.raises(UserError, match="datasets cannot load these Parquet files as one dataset"):
        run_export(folder, tmp_path / "out3", "hf")
    assert not (tmp_path / "out3").exists()


def test_a_run_whose_traces_do_not_match_the_rows_is_not_trusted(run, tmp_path):
    copy = shutil.copytree(run, tmp_path / "run")
    manifest = json.loads((copy / "traces" / "manifest.json").read_text())
    manifest["gen_config"] = manifest["gen_config"].replace('"temperature": 0.6', '"temperature": 1.0')
    (copy / "traces" / "manifest.json").write_text(json.dumps(manifest))
    run_export(copy, tmp_path / "out", "jsonl")
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert prov["sampling"]["temperature"] == 0.6  # what the rows themselves record
    assert prov["teacher"]["model"] == prov["prompts"] == prov["counts"]["generate"] == prov["reproduce"] == "unknown"


def test_unfinished_stages_are_refused_in_one_line(run, tmp_path):
    half = tmp_path / "half"
    write_traces(half / "traces" / "data", [[trace("a", "1", "\\boxed{1}")]])
    shards.mark_done(half / "traces", 0)
    result = run_cli("export", half, "--format", "jsonl", "--out", tmp_path / "o", "--rows", "traces")
    assert result.returncode == 1 and result.stderr == (
        f"error: {half / 'traces'}: not finished (1 shards done, no manifest); "
        "rerun the same `distill generate` command first\n")
    # a filter still in its first pass: filtered/ has only _pass1/
    shutil.copytree(run / "traces", tmp_path / "run2" / "traces")
    (tmp_path / "run2" / "filtered" / "_pass1" / "_done").mkdir(parents=True)
    with pytest.raises(UserError, match=r"filtered: not finished \(0 shards done, no manifest\); rerun the same `distill filter`"):
        run_export(tmp_path / "run2", tmp_path / "o", "jsonl")
    shutil.rmtree(tmp_path / "run2" / "filtered")
    with pytest.raises(UserError, match="a run folder without filtered/; run `distill filter` into it first"):
        run_export(tmp_path / "run2", tmp_path / "o", "jsonl")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args, message, code", [
    (["--format", "csv"], "--format must be one of jsonl, parquet, hf; got 'csv'", 2),
    (["--format", "jsonl", "--rows", "all"], "--rows must be one of kept, rejected, traces; got 'all'", 2),
    (["--format", "jsonl", "--private"], "--private needs --push-to-hub REPO", 2),
    (["--format", "jsonl", "--push-to-hub", "a/b/c"], "--push-to-hub a/b/c: Repo id must be in the form", 2),
])
def test_cli_mistakes_are_one_line(run, tmp_path, args, message, code):
    result = run_cli("export", run, "--out", tmp_path / "o", *args)
    assert result.returncode == code and result.stderr.startswith(f"error: {message}")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()


def test_bad_paths_are_one_line_and_delete_nothing(run, tmp_path):
    result = run_cli("export", tmp_path / "nothere", "--format", "jsonl", "--out", tmp_path / "o")
    assert result.returncode == 1 and result.stderr == f"error: {tmp_path / 'nothere'}: no such folder\n"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="exists and is not an earlier distill export"):
        run_export(run, tmp_path / "mine", "jsonl")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    for out, message in ((run, "overlaps the folder being exported"), (run / "filtered" / "x", "overlaps"),
                         (tmp_path / "o.jsonl", "names a file; --out is a folder"),
                         (run / "traces", "is a distill run or stage folder")):
        with pytest.raises(ConfigError, match=message):
            run_export(run, out, "jsonl")
    with pytest.raises(UserError, match="holds distill stage folders"):
        run_export(run.parent, tmp_path / "o", "jsonl")
    with pytest.raises(ConfigError, match="holds traces rows, not kept"):
        run_export(run / "traces", tmp_path / "o", "jsonl", rows="kept")


def test_rerun_replaces_an_earlier_export_whole(run, tmp_path, monkeypatch):
    out = tmp_path / "out"
    run_export(run, out, "jsonl")
    run_export(run, out, "parquet")
    assert not (out / "data" / "train.jsonl").exists() and len(list((out / "data").glob("*.parquet"))) == 3
    # a failure while building leaves the earlier export as it was, and no build folder behind
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    from distill.look import provenance

    monkeypatch.setattr(provenance, "card", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        run_export(run, out, "jsonl")
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_kill_9_mid_export_leaves_the_earlier_export(run, tmp_path):
    out = tmp_path / "out"
    run_export(run, out, "parquet")
    before = sorted(p.name for p in (out / "data").iterdir())
    script = ("import os, signal, sys; from distill.look import export, provenance; "
              "provenance.card = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL); "
              f"export.run_export({str(run)!r}, {str(out)!r}, 'jsonl')")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == -9
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".out.export-tmp-")]
    assert len(left) == 1 and (left[0] / "export" / "data" / "train.jsonl").is_file()  # killed after the data
    assert sorted(p.name for p in (out / "data").iterdir()) == before  # OUT untouched: still the parquet export
    run_export(run, out, "jsonl")  # the rerun clears the dead build
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and (out / "data" / "train.jsonl").is_file()


# ---------------------------------------------------------------- the hub, stubbed


@pytest.fixture
def fake_hub(monkeypatch):
    """HfApi with create_repo / repo_info / upload_folder recorded instead of sent (no network
    here): the upload records every file and its bytes, since the folder is gone after."""
    from huggingface_hub import HfApi

    calls = {"create_repo": [], "upload_folder": [], "private": False, "fail": None}
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")

    def create_repo(self, repo_id, **kwargs):
        calls["create_repo"].append({"repo_id": repo_id, **kwargs})
        return f"https://huggingface.co/datasets/{repo_id}"

    def repo_info(self, repo_id, **kwargs):
        return type("Info", (), {"private": calls["private"]})()

    def upload_folder(self, *, folder_path, **kwargs):
        if calls["fail"]:
            raise calls["fail"]
        files = {str(p.relative_to(folder_path)): p.read_bytes() for p in sorted(Path(folder_path).rglob("*")) if p.is_file()}
        calls["upload_folder"].append({**kwargs, "files": files})

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "repo_info", repo_info)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def test_push_uploads_parquet_shards_and_the_card(run, tmp_path, fake_hub):
    result = run_export(run, tmp_path / "out", "jsonl", push_to_hub="me/reasoning")
    assert result["url"] == "https://huggingface.co/datasets/me/reasoning"
    assert fake_hub["create_repo"] == [{"repo_id": "me/reasoning", "repo_type": "dataset", "exist_ok": True, "private": None}]
    [upload] = fake_hub["upload_folder"]
    assert upload["repo_id"] == "me/reasoning" and upload["repo_type"] == "dataset"
    assert upload["delete_patterns"] == ["data/*"]  # an earlier, larger export's shards do not linger
    assert sorted(upload["files"]) == ["README.md", "data/train-00000-of-00003.parquet",
                                       "data/train-00001-of-00003.parquet", "data/train-00002-of-00003.parquet",
                                       "provenance.json", "recipe.yaml"]
    uploaded = [r for name in sorted(upload["files"]) if name.endswith(".parquet")
                for r in pq.read_table(pa.BufferReader(upload["files"][name])).to_pylist()]
    assert uploaded == rows_of(run / "filtered" / "data")
    card = upload["files"]["README.md"].decode()
    assert "path: data/train-*.parquet" in card and 'load_dataset("me/reasoning", split="train")' in card
    assert json.loads(upload["files"]["provenance.json"])["format"] == "parquet"
    # the local export is the jsonl one, and no staging folder is left
    assert json.loads((tmp_path / "out" / "provenance.json").read_text())["format"] == "jsonl"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_push_failures_are_one_line_and_keep_the_export(run, tmp_path, fake_hub):
    import huggingface_hub.errors as hub_errors

    fake_hub["fail"] = ConnectionError("Failed to resolve 'huggingface.co'")
    with pytest.raises(UserError, match=r"upload failed \(Failed to resolve 'huggingface.co'\); the export in .* is "
                                         r"complete; rerun the same command to retry"):
        run_export(run, tmp_path / "out", "parquet", push_to_hub="me/reasoning")
    assert len(list((tmp_path / "out" / "data").glob("*.parquet"))) == 3
    http = sys.modules[hub_errors.HfHubHTTPError.__mro__[1].__module__]  # the HTTP library huggingface_hub uses
    response = http.Response(403, request=http.Request("POST", "https://huggingface.co/api/datasets/me/reasoning"))
    fake_hub["fail"] = hub_errors.HfHubHTTPError("403 Forbidden: you do not have write access", response=response)
    with pytest.raises(UserError, match="403 Forbidden.*does the token have write access to it"):
        run_export(run, tmp_path / "out", "parquet", push_to_hub="me/reasoning")
    # --private on an existing public repo: refused, nothing uploaded
    fake_hub["fail"] = None
    with pytest.raises(UserError, match="the repo exists and is public"):
        run_export(run, tmp_path / "out", "parquet", push_to_hub="me/reasoning", private=True)
    assert fake_hub["upload_folder"] == [] and fake_hub["create_repo"][-1]["private"] is True


def test_cli_push_private(run, tmp_path, fake_hub):
    from typer.testing import CliRunner

    from distill.cli import app

    fake_hub["private"] = True
    result = CliRunner().invoke(app, ["export", str(run), "--format", "hf", "--out", str(tmp_path / "out"),
                                      "--push-to-hub", "me/private-traces", "--private", "--rows", "traces"])
    assert result.exit_code == 0, result.output
    assert "export: 18 trace rows" in result.output and "pushed: https://huggingface.co/datasets/me/private-traces" in result.output
    assert fake_hub["create_repo"][0]["private"] is True
    assert json.loads(fake_hub["upload_folder"][0]["files"]["provenance.json"])["rows"] == "traces"


def test_no_token_is_one_line_before_any_work(run, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC"))}
    env.update(HF_HOME=str(tmp_path / "hf-home"), PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "distill", "export", str(run), "--format", "parquet", "--out",
                             str(tmp_path / "out"), "--push-to-hub", "me/reasoning"],
                            capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 1 and result.stderr == f"error: {hub.NO_TOKEN}\n"
    assert "set HF_TOKEN or run `hf auth login`" in result.stderr and not (tmp_path / "out").exists()


def test_cli_exports_and_stays_light(run, tmp_path):
    result = run_cli("export", run, "--format", "jsonl", "--out", tmp_path / "out")
    assert result.returncode == 0 and f"export: 8 kept rows in {tmp_path / 'out'} (jsonl: data/train.jsonl" in result.stdout
    # importing the export path loads neither torch nor datasets nor huggingface_hub
    probe = subprocess.run([sys.executable, "-c", "import sys, distill.cli, distill.look.export; "
                            "print(sorted(m for m in ('torch', 'datasets', 'huggingface_hub') if m in sys.modules))"],
                           capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert probe.stdout.strip() == "[]"
