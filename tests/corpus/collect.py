"""Rebuild the published-recipe corpus (tests/corpus/<project>/…) from local git mirrors.

Not a test: run it by hand when the corpus should follow newer commits, then review the diff of
expected.yaml. Each published training YAML is reduced to its keys and values (comments, layout
and prose dropped; a chat template replaced by a short ChatML one, since the template's text is
not what the checks read), and LLaMA-Factory's dataset_info.json to the attributes of each entry.

    python tests/corpus/collect.py MIRRORS_DIR [WHEELS_DIR]

WHEELS_DIR holds older transformers and TRL wheels (pip download --no-deps transformers==4.57.1
trl==0.19.1 …), whose dropped arguments published files still carry.

MIRRORS_DIR holds bare or work-tree clones named owner+name/repo (the layout the project's
research tooling writes). The commit of every file is recorded in sources.yaml.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).parent
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

# (project, repository, which files, whether every file that ever existed at those paths counts)
PROJECTS = [
    ("open-r1", "huggingface+open-r1", lambda p: p.startswith("recipes/") and "accelerate_configs" not in p, True),
    ("LLaMA-Factory", "hiyouga+LLaMA-Factory",
     lambda p: p.startswith("examples/") and "/accelerate/" not in p and "deepspeed" not in p, False),
    ("open-thoughts", "open-thoughts+open-thoughts", lambda p: p.startswith("train/"), False),
    ("SkyThought", "NovaSky-AI+SkyThought",
     lambda p: p.startswith("skythought/train/LLaMA-Factory/examples/") and "/accelerate/" not in p
     and "deepspeed" not in p, False),
    ("alignment-handbook", "huggingface+alignment-handbook", lambda p: p.startswith("recipes/"), False),
]
DATASET_INFO = [("LLaMA-Factory", "hiyouga+LLaMA-Factory", "data/dataset_info.json"),
                ("SkyThought", "NovaSky-AI+SkyThought", "skythought/train/LLaMA-Factory/data/dataset_info.json")]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def reduce(text: str):
    data = yaml.safe_load(text)
    if isinstance(data, dict) and isinstance(data.get("chat_template"), str):
        data["chat_template"] = CHATML
    return data


def main(mirrors: Path) -> None:
    sources = {}
    for project, name, wanted, history in PROJECTS:
        repo = mirrors / name / "repo"
        head = git(repo, "rev-parse", "HEAD").strip()
        refs = ["--all"] if history else ["HEAD"]
        if history:  # every path that ever held a recipe on any branch, at its last version
            log = git(repo, "log", "--format=", "--name-only", "--all")
            paths = sorted({p for p in log.split() if p.endswith((".yaml", ".yml")) and wanted(p)})
        else:
            paths = [p for p in git(repo, "ls-tree", "-r", "--name-only", "HEAD").split()
                     if p.endswith((".yaml", ".yml")) and wanted(p)]
        files = {}
        for path in paths:
            commit = git(repo, "log", "-1", "--format=%H", *refs, "--", path).strip()
            present = path in git(repo, "ls-tree", "-r", "--name-only", commit, "--", path).split()
            rev = commit if present else git(repo, "rev-parse", f"{commit}^").strip()  # last version before removal
            try:
                data = reduce(git(repo, "show", f"{rev}:{path}"))
            except (yaml.YAMLError, subprocess.CalledProcessError):
                continue
            if not isinstance(data, dict):
                continue
            target = HERE / project / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100))
            files[path] = rev
        sources[project] = {"repository": name.replace("+", "/"), "head": head, "files": files}
    for project, name, path in DATASET_INFO:
        repo = mirrors / name / "repo"
        text = git(repo, "show", f"HEAD:{path}")
        target = HERE / project / path
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            info = json.loads(text)
            text = json.dumps(info, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
        except ValueError:  # kept as published (SkyThought's has a trailing comma): its error is part of the test
            info = {}
        target.write_text(text)
        for attrs in info.values():
            standin(target.parent, attrs)
    (HERE / "sources.yaml").write_text(yaml.safe_dump(sources, sort_keys=True, width=200))




def standin(folder: Path, attrs: dict) -> None:
    """Two rows of our own, in the layout an entry of dataset_info.json declares, where the entry
    names a local file: the corpus test resolves every dataset, and a few files train on them."""
    name = attrs.get("file_name")
    if not name or attrs.get("ranking") or not str(name).endswith((".json", ".jsonl")):
        return
    cols, tags = attrs.get("columns", {}), attrs.get("tags", {})
    if attrs.get("formatting", "alpaca") == "alpaca":
        p, q, r = cols.get("prompt", "instruction"), cols.get("query", "input"), cols.get("response", "output")
        rows = [{p: "Add 2 and 3.", q: "", r: "5"}, {p: "Name a prime number.", q: "below 5", r: "3"}]
    else:
        m, role, text = cols.get("messages", "conversations"), tags.get("role_tag", "from"), tags.get("content_tag", "value")
        user, bot = tags.get("user_tag", "human"), tags.get("assistant_tag", "gpt")
        rows = [{m: [{role: user, text: "Add 2 and 3."}, {role: bot, text: "5"}]},
                {m: [{role: user, text: "Hi."}, {role: bot, text: "Hello."},
                     {role: user, text: "Add 1 and 1."}, {role: bot, text: "2"}]}]
    for key in ("images", "videos", "audios", "tools", "system"):
        if cols.get(key):
            for row in rows:
                row[cols[key]] = [] if key in ("images", "videos", "audios") else ""
    path = folder / str(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    else:
        path.write_text(json.dumps(rows, indent=1) + "\n")


def _fields(source: str) -> dict:
    """name -> default of each dataclass field in a module's source (None where not a literal)."""
    import ast

    out = {}
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return out
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        for item in node.body:
            if not (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)):
                continue
            default = None
            value = item.value
            if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "field":
                value = next((k.value for k in value.keywords if k.arg == "default"), None)
            try:
                default = ast.literal_eval(value) if value is not None else None
            except ValueError:
                default = None
            out[item.target.id] = default
    return out


def llamafactory_keys(mirrors: Path) -> dict:
    """Every argument LLaMA-Factory's hparams dataclasses have defined over its history (old names
    stay: published files still carry them), each with its latest default, but the
    transformers TrainingArguments it inherits, which distill reads from the installed version."""
    repo = mirrors / "hiyouga+LLaMA-Factory" / "repo"
    folders = ["src/llmtuner/hparams", "src/llamafactory/hparams"]
    commits = git(repo, "log", "--reverse", "--format=%H", "HEAD", "--", *folders).split()
    keys: dict = {}
    for commit in commits:
        for path in git(repo, "ls-tree", "-r", "--name-only", commit, "--", *folders).split():
            if path.endswith(".py") and not path.endswith(("__init__.py", "parser.py")):
                keys.update(_fields(git(repo, "show", f"{commit}:{path}")))
    return {k: keys[k] for k in sorted(keys) if not k.startswith("_")}


def _history_fields(repo: Path, paths: list[str]) -> dict:
    keys: dict = {}
    for commit in reversed(git(repo, "log", "--all", "--format=%H", "--", *paths).split()):
        for path in paths:
            shown = subprocess.run(["git", "-C", str(repo), "show", f"{commit}:{path}"], capture_output=True, text=True)
            if shown.returncode == 0:
                keys.update(_fields(shown.stdout))
    return keys


def trl_stage_keys() -> dict:
    """For each TRL trainer other than SFT, the config keys SFT's dataclasses do not have: what
    tells a GRPO or DPO file from an SFT one. From the installed TRL (experimental trainers too)."""
    import dataclasses
    import importlib

    import trl

    def names(cls) -> set:
        return {f.name for f in dataclasses.fields(cls)}

    sft = names(trl.SFTConfig) | names(trl.ModelConfig) | names(trl.ScriptArguments)
    stages = {"GRPO": "trl.GRPOConfig", "DPO": "trl.DPOConfig", "KTO": "trl.KTOConfig",
              "reward modelling": "trl.RewardConfig", "RLOO": "trl.RLOOConfig",
              "ORPO": "trl.experimental.orpo.ORPOConfig", "CPO": "trl.experimental.cpo.CPOConfig",
              "online DPO": "trl.experimental.online_dpo.OnlineDPOConfig", "GKD": "trl.experimental.gkd.GKDConfig",
              "PPO": "trl.experimental.ppo.PPOConfig"}
    out = {}
    for stage, dotted in stages.items():
        module, _, cls = dotted.rpartition(".")
        try:
            out[stage] = sorted(names(getattr(importlib.import_module(module), cls)) - sft)
        except (ImportError, AttributeError):
            continue
    return {"trl": trl.__version__, "stages": out}


def published_keys(mirrors: Path, target: Path, wheels: Path | None = None) -> None:
    """distill/published_keys.json: the arguments the published tools define (see foreign.py)."""
    llamafactory = mirrors / "hiyouga+LLaMA-Factory" / "repo"
    lf = llamafactory_keys(mirrors)
    openr1 = mirrors / "huggingface+open-r1" / "repo"
    handbook = mirrors / "huggingface+alignment-handbook" / "repo"
    body = {
        "llamafactory": {"commit": git(llamafactory, "rev-parse", "HEAD").strip(), "keys": lf},
        "open-r1": {"commit": git(openr1, "rev-parse", "HEAD").strip(),
                    "keys": sorted(_history_fields(openr1, ["src/open_r1/configs.py"]))},
        "alignment-handbook": {"commit": git(handbook, "rev-parse", "HEAD").strip(),
                               "keys": sorted(_history_fields(handbook, ["src/alignment/configs.py"]))},
        "trl": trl_stage_keys(),
    }
    if wheels is not None:
        body["older-releases"] = {"wheels": sorted(w.name for w in wheels.glob("*.whl")),
                                  "keys": sorted(older_releases(wheels))}
    target.write_text(json.dumps(body, indent=1, default=str) + "\n")


def older_releases(wheels: Path) -> dict:
    """Arguments of older transformers and TRL releases (wheels from the package registry) that
    the installed ones dropped: published files written for them still carry those keys."""
    import zipfile

    out: dict = {}
    for wheel in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(wheel) as z:
            for name in z.namelist():
                if name.endswith(("training_args.py", "training_args_seq2seq.py", "sft_config.py", "model_config.py",
                                  "configs.py")) or name.endswith("trl/scripts/utils.py"):
                    for key in _fields(z.read(name).decode()):
                        out.setdefault(key, wheel.name.split("-")[0] + " " + wheel.name.split("-")[1])
    return out


if __name__ == "__main__":
    main(Path(sys.argv[1]))
    published_keys(Path(sys.argv[1]), HERE.parent.parent / "distill" / "foreign" / "published_keys.json",
                   Path(sys.argv[2]) if len(sys.argv) > 2 else None)

