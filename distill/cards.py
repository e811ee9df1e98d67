"""Find cards (teachers, students, datasets, recipes) by name or path.

Lookup order (DESIGN §1): an explicit path, then the cards installed inside the wheel
(`distill/_cards/<kind>/`), then the source checkout's top-level `<kind>/` folder.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from .errors import ConfigError

KINDS = ("teachers", "students", "datasets", "recipes")
_PACKAGE = Path(__file__).resolve().parent


def card_dirs(kind: str) -> list[Path]:
    """Folders searched for cards of `kind`, in order."""
    if kind not in KINDS:
        raise ValueError(f"unknown card kind {kind!r}")
    dirs = [_PACKAGE / "_cards" / kind, _PACKAGE.parent / kind]
    return [d for d in dirs if d.is_dir()]


def names(kind: str) -> list[str]:
    """Names of every card of `kind` that can be found."""
    found: set[str] = set()
    for d in card_dirs(kind):
        found.update(p.stem for p in d.glob("*.yaml"))
    return sorted(found)


def find(kind: str, name: str) -> Path:
    """Path of the card `name` (a bundled name or a path to a .yaml file)."""
    path = Path(name).expanduser()
    if path.suffix in (".yaml", ".yml") or "/" in name:
        if path.is_file():
            return path
        raise ConfigError(f"{name}: no such file (expected a {kind[:-1]} card .yaml)")
    for d in card_dirs(kind):
        candidate = d / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    known = names(kind)
    near = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"did you mean '{near[0]}'? " if near else ""
    raise ConfigError(
        f"no {kind[:-1]} card named '{name}' ({hint}bundled: {', '.join(known) or 'none'}); "
        "give one of those or a path to a .yaml file"
    )


def describe(kind: str) -> list[tuple[str, str, Path]]:
    """(name, one-line description, file) of every card of `kind`: the card's `description:`,
    else the first line of its leading comment."""
    import yaml

    out = []
    for name in names(kind):
        path = find(kind, name)
        text = path.read_text()
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            data = None
        about = data.get("description") if isinstance(data, dict) else None
        if not about:
            comment = next((line for line in text.splitlines() if line.startswith("#")), "")
            about = comment.lstrip("#").strip()
        out.append((name, str(about or ""), path))
    return out
