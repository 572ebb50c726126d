"""Which package modules a script imports, read from the source with :mod:`ast` (nothing is
executed): the code inputs of the workflow's rules (``script_code`` in workflow/rules/common.smk),
so that editing a module reruns exactly the rules whose scripts import it.

Followed, transitively, within one package (``gradsweep`` by default):

- ``import pkg.a.b [as x]``, ``from pkg.a import b`` (``b`` a submodule or a name), relative
  imports, ``importlib.import_module("pkg.a")`` with a string constant, and imports inside
  functions (they run when the function does);
- the ``__init__`` of every package on the way (importing ``pkg.a.b`` runs ``pkg/a/__init__``);
- lazy packages, whose ``__init__`` defines a module-level ``__getattr__`` (gradsweep.plotting):
  ``pkg.name``, or ``from pkg import name``, counts the submodules that define ``name`` at their
  top level (by ``def``, ``class`` or assignment); a name no submodule defines, ``import *``,
  or the package used other than as ``pkg.name`` (passed on, ``getattr``) counts them all.

Imports of other packages are ignored. Parsed files are cached per process, by path,
modification time and size. Imported, this module imports nothing heavy and nothing from its
own package: the Snakefile imports it while it is parsed.

    python -m gradsweep.codedeps workflow/scripts/results_table.py   # the modules, one a line
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["imported_files", "imported_modules", "module_imports"]


@dataclass(frozen=True)
class _Import:
    """``import module [as alias]`` (no ``names``), or ``from <level dots><module> import
    names`` (``names``: (name, the name it is bound to) pairs)."""

    level: int
    module: str
    names: tuple[tuple[str, str], ...] = ()
    alias: str = ""
    call: bool = False  # importlib.import_module("module"): binds no name

    def bound(self) -> list[str]:
        """The local names the statement binds."""
        if self.call:
            return []
        if not self.names:
            return [self.alias or self.module.split(".")[0]]
        return [as_name for name, as_name in self.names if name != "*"]


@dataclass(frozen=True)
class _Summary:
    """What resolving one file's imports needs from its source."""

    imports: tuple[_Import, ...]
    chains: frozenset[tuple[str, ...]]  # every dotted `a.b.c` read, from its first name on
    bare: frozenset[str]  # names read other than as `name.attribute`
    defined: frozenset[str]  # top-level names bound by def, class or assignment
    imported: frozenset[str]  # top-level names bound by an import
    lazy: bool  # a module-level __getattr__


def _chain(node: ast.expr) -> tuple[str, ...] | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return (node.id, *reversed(parts)) if isinstance(node, ast.Name) else None


def _import(node: ast.Import | ast.ImportFrom) -> list[_Import]:
    if isinstance(node, ast.Import):
        return [_Import(0, alias.name, alias=alias.asname or "") for alias in node.names]
    names = tuple((alias.name, alias.asname or alias.name) for alias in node.names)
    return [_Import(node.level, node.module or "", names)]


def _imported_by_call(node: ast.Call) -> str | None:
    """The module of ``importlib.import_module("a.b")`` or ``__import__("a.b")``, if named by
    a string constant (an f-string or a variable: nothing)."""
    function = _chain(node.func)
    if not function or function[-1] not in ("import_module", "__import__") or not node.args:
        return None
    first = node.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value if not first.value.startswith(".") else None
    return None


def _top_level_names(tree: ast.Module) -> tuple[set[str], set[str]]:
    """(names bound by def, class or assignment; names bound by import) at module level."""
    defined: set[str] = set()
    imported: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                defined.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            imported.update(name for imp in _import(node) for name in imp.bound())
    return defined, imported


@functools.cache
def _summary(path: str, mtime_ns: int, size: int) -> _Summary:
    tree = ast.parse(Path(path).read_bytes(), filename=path)
    imports: list[_Import] = []
    chains: set[tuple[str, ...]] = set()
    attribute_bases: set[int] = set()
    names: list[ast.Name] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.append(node)
        elif isinstance(node, ast.Attribute):
            attribute_bases.add(id(node.value))
            if chain := _chain(node):
                chains.add(chain)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            imports.extend(_import(node))
        elif isinstance(node, ast.Call) and (name := _imported_by_call(node)):
            imports.append(_Import(0, name, call=True))
    bare = {name.id for name in names if id(name) not in attribute_bases}
    defined, imported = _top_level_names(tree)
    return _Summary(
        imports=tuple(imports),
        chains=frozenset(chains),
        bare=frozenset(bare),
        defined=frozenset(defined),
        imported=frozenset(imported),
        lazy="__getattr__" in defined,
    )


def _summary_of(path: Path) -> _Summary:
    stat = path.stat()
    return _summary(str(path), stat.st_mtime_ns, stat.st_size)


class _Package:
    """The modules of one installed package, found as files under its folder. Looks each file
    up once: make a new one to see files added or removed since."""

    def __init__(self, name: str) -> None:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError(f"no package {name!r} on sys.path")
        self.name = name
        self.root = Path(next(iter(spec.submodule_search_locations))).resolve()
        self._files: dict[str, Path | None] = {}
        self._summaries: dict[str, _Summary] = {}

    def file(self, module: str) -> Path | None:
        """The file of ``module`` (dotted, from the package's name on), if it is one of ours."""
        if module not in self._files:
            self._files[module] = self._find(module)
        return self._files[module]

    def _find(self, module: str) -> Path | None:
        first, *parts = module.split(".")
        if first != self.name:
            return None
        base = self.root.joinpath(*parts)
        for candidate in (base / "__init__.py", base.with_name(base.name + ".py")):
            if candidate.is_file():
                return candidate
        return None

    def is_package(self, module: str) -> bool:
        file = self.file(module)
        return file is not None and file.name == "__init__.py"

    def submodules(self, package: str) -> list[str]:
        folder = self.root.joinpath(*package.split(".")[1:])
        names = [p.stem for p in folder.glob("*.py") if p.stem != "__init__"]
        names += [p.parent.name for p in folder.glob("*/__init__.py")]
        return [f"{package}.{name}" for name in sorted(names)]

    def summary(self, module: str) -> _Summary:
        if module not in self._summaries:
            file = self.file(module)
            if file is None:
                raise ModuleNotFoundError(f"no module {module!r} under {self.root}")
            self._summaries[module] = _summary_of(file)
        return self._summaries[module]

    def is_lazy(self, module: str) -> bool:
        """A package whose __init__ defines ``__getattr__``: its submodules load on access."""
        return self.is_package(module) and self.summary(module).lazy

    def lazy_attribute(self, package: str, name: str) -> list[str]:
        """The submodules that reading ``package.name`` may import (none unless it is lazy)."""
        if not self.is_lazy(package):
            return []
        init = self.summary(package)
        if name in init.defined | init.imported:
            return []
        subs = self.submodules(package)
        homes = [sub for sub in subs if name in self.summary(sub).defined]
        return homes or subs

    def direct_imports(self, module: str | None, path: Path) -> set[str]:
        """The package's modules that the file imports (``module``: its dotted name, None for a
        script outside the package), with the lazy attributes it reads."""
        summary = self.summary(module) if module else _summary_of(path)
        found: set[str] = set()
        bound: dict[str, str] = {}  # local name -> module of ours
        for imp in summary.imports:
            base = self._absolute(module, imp)
            if base is None or self.file(base) is None:
                continue
            found.add(base)
            if not imp.names:  # `import a.b.c` binds a, `import a.b.c as x` binds a.b.c
                for local in imp.bound():
                    bound[local] = base if imp.alias else base.split(".")[0]
                continue
            for name, as_name in imp.names:
                if name == "*":
                    found.update(self.submodules(base) if self.is_package(base) else [])
                elif self.file(sub := f"{base}.{name}"):
                    found.add(sub)
                    bound[as_name] = sub
                else:
                    found.update(self.lazy_attribute(base, name))
        for chain in summary.chains:
            if chain[0] in bound:
                found.update(self._walk(bound[chain[0]], chain[1:]))
        for name in summary.bare & bound.keys():  # a lazy package passed on: all it may load
            if self.is_lazy(bound[name]):
                found.update(self.submodules(bound[name]))
        return found

    def _absolute(self, module: str | None, imp: _Import) -> str | None:
        if not imp.level:
            return imp.module
        if module is None:  # a relative import in a script: not into this package
            return None
        parts = module.split(".")
        keep = len(parts) - imp.level + (1 if self.is_package(module) else 0)
        if keep < 1:
            return None
        return ".".join([*parts[:keep], *([imp.module] if imp.module else [])])

    def _walk(self, module: str, attributes: tuple[str, ...]) -> set[str]:
        found: set[str] = set()
        for attribute in attributes:
            if self.file(sub := f"{module}.{attribute}"):
                found.add(sub)
                module = sub
            else:
                found.update(self.lazy_attribute(module, attribute))
                break
        return found


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:n]) for n in range(1, len(parts) + 1)]


def imported_modules(script: str | Path, package: str = "gradsweep") -> list[str]:
    """The modules of ``package`` that running ``script`` imports, transitively, sorted."""
    return _imported(_Package(package), Path(script))


def imported_files(script: str | Path, package: str = "gradsweep") -> list[Path]:
    """The files of :func:`imported_modules`: absolute, sorted."""
    pkg = _Package(package)
    files = [pkg.file(module) for module in _imported(pkg, Path(script))]
    return sorted(file for file in files if file is not None)


def module_imports(package: str = "gradsweep") -> dict[str, set[str]]:
    """Every module of ``package`` (a subpackage by its ``__init__``) and the package's modules
    it imports directly, read as for a script: the graph tests/test_architecture.py checks."""
    pkg = _Package(package)
    modules, todo = [], [package]
    while todo:
        module = todo.pop()
        modules.append(module)
        if pkg.is_package(module):
            todo.extend(pkg.submodules(module))
    graph = {}
    for module in sorted(modules):
        file = pkg.file(module)
        assert file is not None, module
        graph[module] = pkg.direct_imports(module, file) - {module}
    return graph


def _imported(pkg: _Package, script: Path) -> list[str]:
    todo = list(pkg.direct_imports(None, script))
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        for name in _with_parents(module):
            if name not in seen:
                seen.add(name)
                file = pkg.file(name)
                assert file is not None, name
                todo.extend(pkg.direct_imports(name, file) - seen)
    return sorted(seen)


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        print(f"{argument}:", *imported_modules(argument), sep="\n  ")
