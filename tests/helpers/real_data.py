"""Which tests read the shared real sample files (``SHARED_DATA``, ../shared/data), found by reading the tests.

A test reads them when its body, its decorators or its arguments (fixtures) reach ``SHARED_DATA`` of
``tests/conftest.py``: directly, or through a name defined from it — a module constant, a helper function, a fixture
or a ``skipif`` mark — in its own module, in ``tests/conftest.py`` (``HAM_METADATA``, ``derm7pt_release``, the
``ham_root`` fixture) or in a module of ``tests`` it imports from (``tests.helpers.*``). A module whose ``pytestmark``
reaches it makes every test of the module one that reads them. ``tests/conftest.py`` checks at collection that
exactly these tests carry the ``real_data`` mark, so that ``pytest -m real_data`` runs them all and nothing else.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT_NAMES = frozenset({"SHARED_DATA"})  # tests/conftest.py: the one path to ../shared/data
_READING: set[Path] = set()  # modules whose names are being found (an import cycle adds nothing)


def _defined(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return set()


def _used(node: ast.AST) -> set[str]:
    """Every name the node reads, and the argument names of its functions (the fixtures they request)."""
    return {n.id if isinstance(n, ast.Name) else n.arg for n in ast.walk(node) if isinstance(n, (ast.Name, ast.arg))}


def _module_file(module: str, tests_root: Path) -> Path | None:
    """The file of ``tests.<...>`` under ``tests_root``, None for modules outside the test tree."""
    parts = module.split(".")
    if parts[0] != tests_root.name:
        return None
    base = tests_root.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


@cache
def _module(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


@cache
def real_names(path: Path, tests_root: Path, seeds: frozenset[str] = frozenset()) -> frozenset[str]:
    """The module-level names of the module at ``path`` that reach the real data, given ``seeds`` (the real-data
    fixtures of the conftest files above it: a test or fixture requesting one reaches it too)."""
    tree = _module(path)
    real = set(seeds) | (set(ROOT_NAMES) if path == tests_root / "conftest.py" else set())
    for node in tree.body:  # names imported from other modules of the test tree
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            source = _module_file(node.module, tests_root)
            if source is not None and source not in _READING:
                _READING.add(path)
                try:
                    found = real_names(source, tests_root)
                finally:
                    _READING.discard(path)
                real |= {alias.asname or alias.name for alias in node.names if alias.name in found}
    statements = [(_defined(node), _used(node)) for node in tree.body
                  if not isinstance(node, (ast.Import, ast.ImportFrom))]
    changed = True
    while changed:  # until no definition reaches a real name it did not reach before
        changed = False
        for defined, used in statements:
            if defined - real and used & real:
                real |= defined
                changed = True
    return frozenset(real)


@cache
def conftest_fixtures(folder: Path, tests_root: Path) -> frozenset[str]:
    """The functions (fixtures) of the conftest files from ``tests_root`` down to ``folder`` that reach the real
    data, as ``ham_root`` does."""
    found: frozenset[str] = frozenset()
    parts = folder.relative_to(tests_root).parts
    for depth in range(len(parts) + 1):
        conftest = tests_root.joinpath(*parts[:depth], "conftest.py")
        if conftest.is_file():
            real = real_names(conftest, tests_root, found)
            found |= {node.name for node in _module(conftest).body
                      if isinstance(node, ast.FunctionDef) and node.name in real}
    return found


def reads_real_data(path: Path, test: str, tests_root: Path) -> bool:
    """Whether test function ``test`` of the module at ``path`` reaches the real data."""
    path, tests_root = path.resolve(), tests_root.resolve()
    tree = _module(path)
    real = real_names(path, tests_root, conftest_fixtures(path.parent, tests_root))
    for node in tree.body:
        if isinstance(node, ast.Assign) and "pytestmark" in _defined(node) and _used(node) & real:
            return True
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == test:
            return bool(_used(node) & real)
    return False
