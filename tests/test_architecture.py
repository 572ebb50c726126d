"""The package reads in layers (docs/architecture.md): its imports, read from the source with
``ast`` (nothing is executed), form a DAG that only points down the layers, and no gradsweep
import hides inside a function."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "gradsweep"

# docs/architecture.md draws these; a module imports only from its own layer or those below.
LAYERS = {
    "foundation": ["registry", "io", "data", "config", "settings", "meanfield", "codedeps"],
    "training": ["model", "diagnostics", "optim", "train", "device", "batches", "run"],
    "analysis": ["formatting", "facets", "verdicts", "aggregate", "stats", "reference", "claims"],
    "presentation": ["table", "plotting", "tensorboard"],
}
RANK = {top: rank for rank, tops in enumerate(LAYERS.values()) for top in tops}


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def resolve(name: str, known: dict[str, Path]) -> str | None:
    """The longest known module that ``name`` (a dotted import target) lies in."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str, path: Path, known: dict[str, Path]) -> list[tuple[str, bool]]:
    """(imported gradsweep module, at module level?) for every import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top = set(map(id, tree.body))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # `from pkg import sub` imports the submodule sub where there is one
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] != "gradsweep":
                continue
            hit = resolve(target, known)
            if hit and hit != "gradsweep" and hit != module:
                found.append((hit, id(node) in top))
    return found


def graph() -> tuple[dict[str, set[str]], list[str]]:
    """{module: the gradsweep modules it imports}, and the imports inside functions."""
    known = modules()
    edges: dict[str, set[str]] = {}
    inner = []
    for module, path in known.items():
        edges[module] = set()
        for target, at_top in imports(module, path, known):
            edges[module].add(target)
            if not at_top:
                inner.append(f"{module} -> {target}")
    return edges, inner


def layer(module: str) -> int:
    top = module.split(".")[1] if module != "gradsweep" else ""
    if top not in RANK:
        pytest.fail(f"{module}: in no layer; place it in LAYERS and docs/architecture.md")
    return RANK[top]


def test_the_walker_sees_every_kind_of_import() -> None:
    """The reader itself, on the package's own files: plain, from-submodule and aliased."""
    known = modules()
    found = dict(imports("gradsweep.plotting.sweep", known["gradsweep.plotting.sweep"], known))
    assert {"gradsweep.facets", "gradsweep.plotting.data", "gradsweep.formatting"} <= set(found)
    assert "gradsweep.plotting" not in found  # `from gradsweep.plotting import data` is data


def test_imports_form_a_dag() -> None:
    edges, _ = graph()
    try:
        graphlib.TopologicalSorter(edges).prepare()
    except graphlib.CycleError as err:
        pytest.fail(f"import cycle: {' -> '.join(err.args[1])}")


def test_no_gradsweep_import_inside_a_function() -> None:
    _, inner = graph()
    assert not inner, f"imports inside functions or classes: {inner}"


def test_imports_point_down_the_layers() -> None:
    edges, _ = graph()
    upward = [
        f"{a} ({layer(a)}) -> {b} ({layer(b)})"
        for a, targets in edges.items()
        for b in targets
        if a != "gradsweep" and layer(b) > layer(a)
    ]
    assert not upward, f"upward imports: {upward}"


def test_architecture_doc_names_every_module() -> None:
    doc = (PACKAGE.parents[1] / "docs" / "architecture.md").read_text()
    missing = [m for m in modules() if m != "gradsweep" and f"`{m.split('.', 1)[1]}`" not in doc]
    assert not missing, f"docs/architecture.md does not describe: {missing}"
