"""What `distill eval --model X` evaluates: a model folder, a LoRA adapter folder (as `distill
train` writes in RUN/student), a run folder, a teacher or student card, or a hub id; always as
a TeacherCard (what the generation backends run) plus the adapter to apply, if any."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from .. import cards, models
from ..config import StudentCard, TeacherCard
from ..errors import ConfigError, UserError
from ..runfolder import RESOLVED

ADAPTER_CONFIG = "adapter_config.json"


@dataclass(frozen=True)
class EvalModel:
    card: TeacherCard  # the (base) model the engine loads
    adapter: str | None = None  # a LoRA adapter folder applied on top
    recipe: str | None = None  # the recipe that trained it, when it comes from a run folder
    base: str | None = None  # the model it was trained from, when known (adapter base, run's student)


def from_student(card: StudentCard) -> TeacherCard:
    """A student card as something to generate with: same weights; training keys do not apply."""
    return TeacherCard(name=card.name, model=card.model, revision=card.revision, gguf=card.gguf, dtype=card.dtype)


def _run_info(run: Path) -> tuple[str | None, str | None]:
    """The recipe name and student model recorded in a run folder's recipe.resolved.yaml."""
    try:
        data = yaml.safe_load((run / RESOLVED).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None, None
    student = data.get("student")
    model = student.get("model") if isinstance(student, dict) else student
    return data.get("name"), model if isinstance(model, str) else None


def _adapter(folder: Path) -> tuple[str, str | None]:
    """The base model an adapter folder names, and its revision (distill records a card's pin)."""
    try:
        config = json.loads((folder / ADAPTER_CONFIG).read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{folder / ADAPTER_CONFIG}: unreadable ({e})") from None
    base = config.get("base_model_name_or_path")
    if not base:
        raise UserError(f"{folder / ADAPTER_CONFIG}: names no base_model_name_or_path; cannot tell what to load under it")
    return str(base), config.get("revision")


def _folder(folder: Path) -> EvalModel:
    recipe = base = None
    if (folder / RESOLVED).is_file() and (folder / "student").is_dir():  # a run folder: its student
        recipe, base = _run_info(folder)
        folder = folder / "student"
    else:  # RUN/student or RUN/student/merged: what trained it
        run = next((d for d in (folder.parent, folder.parent.parent) if (d / RESOLVED).is_file()), None)
        if run is not None:
            recipe, base = _run_info(run)
    if (folder / ADAPTER_CONFIG).is_file():
        adapter_base, revision = _adapter(folder)
        card = TeacherCard(name=folder.name, model=adapter_base, revision=revision)
        if adapter_base.startswith(("/", ".", "~")) and not (Path(adapter_base).expanduser() / "config.json").is_file():
            raise UserError(
                f"{folder}: the adapter's base model {adapter_base} is not there (base_model_name_or_path in "
                f"{ADAPTER_CONFIG}); put the base model back, or merge the adapter (`distill train --merge`)"
            )
        models.check_loadable(card, "the adapter's base model")
        return EvalModel(card, adapter=str(folder.resolve()), recipe=recipe, base=base or adapter_base)
    if (folder / "config.json").is_file():
        return EvalModel(TeacherCard(name=folder.name, model=str(folder.resolve())), recipe=recipe, base=base)
    raise UserError(f"{folder}: not a model folder (no config.json, and no {ADAPTER_CONFIG} of a LoRA adapter)")


def resolve(spec: str) -> EvalModel:
    """`--model X` to what the backends load; every mistake is one line."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return _folder(path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise UserError(f"{spec}: no such card file")
        from ..recipes import load_card

        try:
            return EvalModel(load_card(TeacherCard, str(path)))
        except ConfigError as first:
            try:
                return EvalModel(from_student(load_card(StudentCard, str(path))))
            except ConfigError:
                raise first from None
    teachers, students = cards.names("teachers"), cards.names("students")
    if spec in teachers or spec in students:
        from ..recipes import load_card

        if spec in teachers:
            return EvalModel(load_card(TeacherCard, spec))
        return EvalModel(from_student(load_card(StudentCard, spec)))
    if spec.startswith(("/", ".", "~")) or path.exists() or spec.count("/") != 1:
        raise UserError(
            f"--model {spec}: no such model folder, and not a teacher or student card "
            f"({', '.join(teachers + students)}) or a hub id (org/name)"
        )
    card = TeacherCard(name=spec.split("/")[-1], model=spec)
    models.check_loadable(card, "model")
    return EvalModel(card)


def model_name(model: EvalModel) -> str:
    name = models.describe(model.card)
    return f"{name} + adapter {model.adapter}" if model.adapter else name
