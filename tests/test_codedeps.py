"""gradsweep.codedeps: the package modules a script imports, read from its source.

A made-up package checks every import form against sets written out by hand; the real
package is checked against what Python itself imports (a subprocess's ``sys.modules``) and
against the lazy ``gradsweep.plotting``'s own map of names to submodules.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gradsweep.codedeps import _Package, imported_files, imported_modules

PACKAGE = "cdtoy"
# cdtoy/            __init__ imports nothing
#   base.py         imports nothing
#   mid.py          `from cdtoy import base`, and inside a function `import cdtoy.late`
#   late.py         `from .base import *` (relative)
#   unused.py       imported by nobody
#   sub/__init__.py `from . import leaf` (relative, a submodule)
#   sub/leaf.py     `from ..mid import thing` (relative, two levels up; a name)
#   lazy/__init__.py  a module-level __getattr__ loads its submodules on access
#   lazy/one.py     defines `ONE` and `shared`; lazy/two.py defines `two` and `shared`;
#   lazy/three.py   imports `two` from lazy.two (an import, not a definition)
TOY = {
    "__init__.py": '"""The toy package."""\n',
    "base.py": "import json\n\nVALUE = json.dumps(1)\n",
    "mid.py": """
        from cdtoy import base

        def thing():
            import cdtoy.late

            return cdtoy.late, base
        """,
    "late.py": "from .base import *  # noqa: F403\n",
    "unused.py": "import cdtoy.base\n",
    "sub/__init__.py": "from . import leaf\n",
    "sub/leaf.py": "from ..mid import thing\n",
    "lazy/__init__.py": """
        import importlib

        LOCAL = 1

        def __getattr__(name):
            for module in ("one", "two", "three"):
                found = importlib.import_module(f"cdtoy.lazy.{module}")
                if hasattr(found, name):
                    return getattr(found, name)
            raise AttributeError(name)
        """,
    "lazy/one.py": "ONE = 1\n\ndef shared():\n    return ONE\n",
    "lazy/two.py": "def two():\n    return 2\n\nshared = two\n",
    "lazy/three.py": "from cdtoy.lazy.two import two\n",
}
ROOT = {PACKAGE}
LAZY = {f"{PACKAGE}.lazy"}


@pytest.fixture
def toy(tmp_path, monkeypatch) -> Path:
    for name, text in TOY.items():
        path = tmp_path / PACKAGE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def modules_of(root: Path, source: str) -> set[str]:
    script = root / "script.py"
    script.write_text(textwrap.dedent(source))
    return {m.removeprefix(f"{PACKAGE}.") for m in imported_modules(script, PACKAGE)} - ROOT


CASES = {
    # script source: modules (without the "cdtoy." prefix; cdtoy itself is always there)
    "import json\nfrom os import path\n": set(),
    "import cdtoy.base\n": {"base"},
    "from cdtoy import base\n": {"base"},
    "from cdtoy.base import VALUE\n": {"base"},
    # mid -> base, and its function's cdtoy.late -> base again
    "import cdtoy.mid as m\n": {"mid", "base", "late"},
    # a package: its __init__ imports leaf (relative), leaf imports mid (two levels up)
    "from cdtoy.sub import leaf\n": {"sub", "sub.leaf", "mid", "base", "late"},
    "def f():\n    import cdtoy.sub\n": {"sub", "sub.leaf", "mid", "base", "late"},
    "import importlib\nimportlib.import_module('cdtoy.base')\n": {"base"},
    "import importlib\nimportlib.import_module(f'cdtoy.{1}')\n": set(),  # unknowable
    # lazy: only the submodules whose top level defines the name
    "from cdtoy import lazy\nlazy.ONE\n": {"lazy", "lazy.one"},
    "import cdtoy.lazy\ncdtoy.lazy.ONE + 1\n": {"lazy", "lazy.one"},
    "from cdtoy.lazy import two\n": {"lazy", "lazy.two"},
    "from cdtoy.lazy import shared\n": {"lazy", "lazy.one", "lazy.two"},
    "from cdtoy.lazy import three\n": {"lazy", "lazy.three", "lazy.two"},  # a submodule
    "from cdtoy.lazy import LOCAL\n": {"lazy"},  # the __init__'s own name
    # anything else could load any submodule
    "from cdtoy.lazy import nowhere\n": {"lazy", "lazy.one", "lazy.two", "lazy.three"},
    "from cdtoy import lazy\nprint(lazy)\n": {"lazy", "lazy.one", "lazy.two", "lazy.three"},
    "from cdtoy.lazy import *\n": {"lazy", "lazy.one", "lazy.two", "lazy.three"},
}


@pytest.mark.parametrize(("source", "expected"), CASES.items(), ids=range(len(CASES)))
def test_import_forms(toy, source, expected):
    assert modules_of(toy, source) == expected


def test_files_are_the_modules_files(toy):
    script = toy / "script.py"
    script.write_text("from cdtoy.sub import leaf\n")
    package = toy / PACKAGE
    assert imported_files(script, PACKAGE) == sorted(
        package / name
        for name in (
            "__init__.py",
            "base.py",
            "late.py",
            "mid.py",
            "sub/__init__.py",
            "sub/leaf.py",
        )
    )


def test_an_edited_module_is_read_again(toy):
    assert modules_of(toy, "import cdtoy.base\n") == {"base"}
    base = toy / PACKAGE / "base.py"
    stat = base.stat()
    base.write_text(base.read_text() + "import cdtoy.unused\n")
    os.utime(base, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert modules_of(toy, "import cdtoy.base\n") == {"base", "unused"}


def test_lazy_names_resolve_to_plotting_s_own_map():
    """gradsweep.plotting loads a name's submodule from its _HOMES map on first access."""
    from gradsweep import plotting

    package = _Package("gradsweep")
    for name, home in plotting._HOMES.items():
        found = package.lazy_attribute("gradsweep.plotting", name)
        assert found == [f"gradsweep.plotting.{home}"], name


# What the workflow's scripts import from gradsweep, as they write it (workflow/scripts/).
PROBES = {
    "aggregate": "from gradsweep.aggregate import aggregate, concatenate",
    "results_table": "from gradsweep.reference import CLAIM_METRICS\n"
    "from gradsweep.table.results import write_results",
    "plot_figures": "from gradsweep import plotting\n"
    "plotting.read_traces, plotting.plot_activation_init_grid, plotting.plot_ratio_heatmap",
    "plot_experiment": "from gradsweep import plotting\n"
    "from gradsweep.plotting.data import page_runs\n"
    "plotting.data.TRACE_COLUMNS, plotting.plot_step_traces, plotting.plot_update_sizes,\n"
    "plotting.plot_learning_curves",
    "prepare_data": "from gradsweep.data import DataError, prepare\n"
    "from gradsweep.io import job_log",
}


def runtime_modules(source: str) -> set[str]:
    """The gradsweep modules Python has loaded after running ``source``."""
    code = (
        f"{source}\nimport sys\nprint(*sorted(m for m in sys.modules if m.startswith('gradsweep')))"
    )
    env = {**os.environ, "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return set(result.stdout.split())


@pytest.mark.parametrize("probe", PROBES)
def test_everything_python_imports_is_found(tmp_path, probe):
    script = tmp_path / "probe.py"
    script.write_text(PROBES[probe] + "\n")
    static = set(imported_modules(script))
    assert runtime_modules(PROBES[probe]) <= static
    # and not the figures' modules the probe never reaches
    plotting = {m for m in static if m.startswith("gradsweep.plotting.")}
    assert (
        plotting
        == {
            # the analysis layer and the tables import no figure code (docs/architecture.md)
            "aggregate": set(),
            "results_table": set(),
            "plot_figures": {f"gradsweep.plotting.{m}" for m in ("data", "style", "sweep")},
            "plot_experiment": {
                f"gradsweep.plotting.{m}" for m in ("data", "style", "gradients", "curves")
            },
            "prepare_data": set(),
        }[probe]
    )
