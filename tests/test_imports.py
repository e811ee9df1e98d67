"""Every import of a distill module inside distill/ resolves, those inside functions too: a module
moved between packages must not leave an import that only fails when its function first runs."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "distill"


def _imports():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ["distill", *path.relative_to(PACKAGE).with_suffix("").parts]
        here = parts[:-1]  # the package a relative import starts from (for __init__ too)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[: len(here) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if source.split(".")[0] == "distill":
                    yield path, node.lineno, source, [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "distill":
                        yield path, node.lineno, alias.name, []


def test_every_distill_import_resolves():
    broken = []
    for path, line, source, names in _imports():
        where = f"{path.relative_to(PACKAGE.parent)}:{line}"
        try:
            module = importlib.import_module(source)
        except ImportError as e:
            broken.append(f"{where}: {source} ({e})")
            continue
        for name in names:
            if not hasattr(module, name):
                try:
                    importlib.import_module(f"{source}.{name}")
                except ImportError:
                    broken.append(f"{where}: {name} from {source}")
    assert not broken, "\n".join(broken)
