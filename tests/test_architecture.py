"""The import graph of distill/ keeps the shape docs/architecture.md describes: a core that imports
no stage, a shared layer above it (the engines that call models, the verifiers that judge
answers) that imports the core and itself only, one package per stage that imports the core, the
shared layer and itself (no other stage: no exception), the look tools above the stages,
cli/pipeline on top, and no import cycle anywhere. Every import counts, those inside functions
too (read with `ast`, nothing is imported)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "distill"

STAGES = ("generate", "filter", "train", "eval")
SHARED = ("engines", "verify")  # what several stages use: model calls and shard writer, judging
LOOK = "look"  # inspect, samples, plots, export: they read every stage's folder
TOP = ("cli", "pipeline", "__main__")  # the commands: they may import anything


def modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name → (file, is a package's __init__)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ["distill", *path.relative_to(PACKAGE).with_suffix("").parts]
        package = parts[-1] == "__init__"
        if package:
            parts = parts[:-1]
        out[".".join(parts)] = (path, package)
    return out


def graph() -> dict[str, set[str]]:
    """Module → the distill modules it imports (at the top or inside a function)."""
    mods = modules()
    edges: dict[str, set[str]] = {}
    for name, (path, package) in mods.items():
        here = name.split(".") if package else name.split(".")[:-1]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.split(".")[0] == "distill")
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[: len(here) - (node.level - 1)]
                    source = ".".join(base + (node.module.split(".") if node.module else []))
                else:
                    source = node.module or ""
                if source.split(".")[0] != "distill":
                    continue
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    deps.add(sub if sub in mods else source)
        edges[name] = {d for d in deps if d != name}
    return edges


def layer(module: str) -> str:
    """'core', a shared package's name, a stage's name, 'look' or 'top'."""
    parts = module.split(".")
    if len(parts) == 1:
        return "core"  # distill/__init__.py: the version
    head = parts[1]
    if head in TOP:
        return "top"
    if head in STAGES or head in SHARED or head == LOOK:
        return head
    return "core"


def test_every_module_is_read():
    edges = graph()
    assert {"distill.cli", "distill.config", "distill.generate.stage", "distill.filter.stage",
            "distill.train.stage", "distill.eval.stage", "distill.look.inspect", "distill.engines",
            "distill.engines.shardwriter", "distill.verify", "distill.verify.shard"} <= set(edges)
    assert edges["distill.cli"], "the graph misses imports"


def test_no_import_cycles():
    edges = graph()
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == "open":
                cycles.append(path[path.index(dep):] + [dep] if dep in path else [node, dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = "closed"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles: " + "; ".join(" → ".join(c) for c in cycles)


def _crossings() -> list[tuple[str, str, str, str]]:
    edges = graph()
    return [(a, b, layer(a), layer(b)) for a, deps in edges.items() for b in deps if layer(a) != layer(b)]


def test_the_core_imports_no_stage():
    bad = [f"{a} → {b}" for a, b, la, lb in _crossings() if la == "core"]
    assert not bad, "the core imports a shared package, a stage, the look tools or the CLI: " + ", ".join(bad)


def test_a_shared_package_imports_only_the_core_and_itself():
    bad = [f"{a} → {b}" for a, b, la, lb in _crossings() if la in SHARED and lb != "core"]
    assert not bad, "a shared package imports a stage or another shared package: " + ", ".join(bad)


def test_a_stage_imports_only_the_core_the_shared_layer_and_itself():
    bad = [f"{a} → {b}" for a, b, la, lb in _crossings() if la in STAGES and lb != "core" and lb not in SHARED]
    assert not bad, ("a stage imports another stage (move the shared piece to the core or the shared "
                     "layer): " + ", ".join(bad))


def test_the_shared_layer_is_used_by_the_stages_that_share_it():
    used = {(la, lb) for a, b, la, lb in _crossings()}
    assert {("generate", "engines"), ("eval", "engines"), ("filter", "verify"), ("eval", "verify")} <= used


def test_look_and_stages_never_import_the_commands():
    bad = [f"{a} → {b}" for a, b, la, lb in _crossings() if lb == "top" and la != "top"]
    assert not bad, ", ".join(bad)
    bad = [f"{a} → {b}" for a, b, la, lb in _crossings() if lb == LOOK and la != "top"]
    assert not bad, "only the CLI uses the look tools: " + ", ".join(bad)
