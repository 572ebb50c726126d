"""The package reads in layers (docs/architecture.md): its imports, read from the source with
``ast`` (nothing is executed), form a DAG that only points down the layers, and no gradsweep
import hides inside a function."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

from gradsweep.codedeps import module_imports

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "gradsweep"

# docs/architecture.md draws these; a module imports only from its own layer or those below.
LAYERS = {
    "foundation": ["registry", "io", "data", "config", "settings", "meanfield", "codedeps"],
    "training": ["model", "diagnostics", "optim", "train", "device", "batches", "plan", "run"],
    "analysis": [
        "formatting",
        "facets",
        "verdicts",
        "theory",
        "aggregate",
        "stats",
        "reference",
        "claims",
    ],
    "presentation": ["table", "plotting", "tensorboard", "costs", "summary"],
}
RANK = {top: rank for rank, tops in enumerate(LAYERS.values()) for top in tops}


def graph() -> dict[str, set[str]]:
    """{module: the gradsweep modules it imports directly} (gradsweep.codedeps, the reader
    that also gives every rule its code inputs)."""
    return module_imports("gradsweep")


def imports_inside_functions(path: Path) -> list[str]:
    """The gradsweep modules a file imports inside a function or class body."""
    found = []
    for scope in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for node in ast.walk(scope):
            if isinstance(node, ast.Import):
                found += [a.name for a in node.names if a.name.split(".")[0] == "gradsweep"]
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level or module.split(".")[0] == "gradsweep":
                    found.append("." * node.level + module)
    return found


def layer(module: str) -> int:
    top = module.split(".")[1] if module != "gradsweep" else ""
    if top not in RANK:
        pytest.fail(f"{module}: in no layer; place it in LAYERS and docs/architecture.md")
    return RANK[top]


def test_the_graph_sees_every_kind_of_import() -> None:
    """On the package's own files: from-submodule, aliased and lazy package attributes."""
    g = graph()
    assert {"gradsweep.facets", "gradsweep.plotting.data", "gradsweep.formatting"} <= g[
        "gradsweep.plotting.sweep"
    ]
    assert "gradsweep.plotting.gradients" in g["gradsweep.plotting.speed_of_learning"]
    assert {"gradsweep.verdicts", "gradsweep.settings"} <= g["gradsweep.aggregate"]


def test_imports_form_a_dag() -> None:
    try:
        graphlib.TopologicalSorter(graph()).prepare()
    except graphlib.CycleError as err:
        pytest.fail(f"import cycle: {' -> '.join(err.args[1])}")


def test_no_gradsweep_import_inside_a_function() -> None:
    inner = {
        str(path.relative_to(PACKAGE)): found
        for path in sorted(PACKAGE.rglob("*.py"))
        if (found := imports_inside_functions(path))
    }
    assert not inner, f"imports inside functions or classes: {inner}"


def test_imports_point_down_the_layers() -> None:
    upward = [
        f"{a} ({layer(a)}) -> {b} ({layer(b)})"
        for a, targets in graph().items()
        for b in targets
        if "gradsweep" not in (a, b) and layer(b) > layer(a)
    ]
    assert not upward, f"upward imports: {upward}"


def test_architecture_doc_names_every_module() -> None:
    doc = (PACKAGE.parents[1] / "docs" / "architecture.md").read_text()
    missing = [m for m in graph() if m != "gradsweep" and f"`{m.split('.', 1)[1]}`" not in doc]
    assert not missing, f"docs/architecture.md does not describe: {missing}"
