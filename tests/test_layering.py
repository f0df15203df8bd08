"""The package's floors (README *Architecture*), enforced by reading every import with ``ast``. Floors, bottom to top:
the primitives of ``dermlab`` (everything in it but the command layer) → ``datamodules``, ``lightning_modules``
(with its plain ``nets``) → ``callbacks`` → the command layer (``dermlab.cli``, ``dermlab.commands``,
``dermlab.grid``, ``dermlab.tuning``). A module may import its own floor and the floors below, never above. One
exception, Lightning's own pattern: a LightningModule's ``configure_callbacks`` may import the callbacks that its
method cannot run without (dds' layer selection, SegAN's frozen-encoder epochs). Lazy imports inside functions
count like top-level ones. One more: the public facade ``dermlab.load_model`` imports the (Lightning-free) model
package reader, lazily.

Lightning-free modules — every primitive of ``dermlab``, every plain network of ``lightning_modules.nets`` and
every module of ``datamodules`` that defines no LightningDataModule (the data sets of ``datamodules.datasets``,
splits, transforms, cache, audit) — must not import Lightning even indirectly: importing ``a.b.c`` runs
``a/__init__.py`` and ``a/b/__init__.py`` first, so the import-time graph (top-level imports, package ``__init__``
files included) is followed from each of them, and a fresh interpreter that imports them all is checked for
Lightning in ``sys.modules``.
"""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("dermlab", "datamodules", "lightning_modules", "callbacks")
COMMAND_LAYER = ("dermlab.cli", "dermlab.commands", "dermlab.grid", "dermlab.tuning", "dermlab.__main__")
FLOORS = {"primitives": 0, "datamodules": 1, "lightning_modules": 1, "callbacks": 2, "commands": 3}


def floor(module: str) -> str | None:
    """The floor of a dotted module name of this repository, None for anything else (the standard library,
    torch, ...)."""
    top = module.split(".")[0]
    if top == "dermlab":
        if module == "dermlab":
            return "primitives"
        return "commands" if module.startswith(COMMAND_LAYER) else "primitives"
    return top if top in FLOORS else None


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path) -> list[tuple[str, int, str]]:
    """(imported module, line, enclosing function or "") of every import in ``path``, relative ones resolved."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []

    def visit(node, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else function
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # from . import x / from ..y import z
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                    names = [f"{base}.{alias.name}" for alias in child.names] if not child.module else [base]
                    found.extend((target, child.lineno, function) for target in names)
                else:
                    found.append((base, child.lineno, function))
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), "")
    return found


def allowed(source: str, target: str, function: str) -> bool:
    """Whether module ``source`` may import ``target`` (from inside ``function``, "" at the top level)."""
    here, there = floor(source), floor(target)
    if source.startswith("lightning_modules.nets"):  # plain nn.Modules: no Lightning, no LightningModules
        if target.split(".")[0] == "lightning" or (there == "lightning_modules"
                                                   and not target.startswith("lightning_modules.nets")):
            return False
    if there is None:
        return True
    if source == "dermlab" and target == "lightning_modules.nets.package":
        return True  # the public facade dermlab.load_model: a lazy import (and its type) of the package reader
    if here == "lightning_modules" and there == "callbacks" and function == "configure_callbacks":
        return True  # Lightning's pattern: the callbacks a method cannot run without
    return FLOORS[there] <= FLOORS[here]


def violations(root: Path) -> list[str]:
    """Every import in ``root``'s packages that breaks the floors, as ``file:line: a -> b (floor → floor)``."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            source = module_name(path, root)
            for target, line, function in imports(path, root):
                if not allowed(source, target, function):
                    found.append(f"{path.relative_to(root)}:{line}: {source} -> {target} "
                                 f"({floor(source)} → {floor(target)})")
    return found


LIGHTNING = ("lightning", "pytorch_lightning")


def defines_a_datamodule(module: str, root: Path = REPO) -> bool:
    """Whether ``module`` (of ``root``) defines a class named ``...DataModule`` at its top level."""
    path = root / Path(*module.split(".")).with_suffix(".py")
    if not path.is_file():
        return False
    return any(isinstance(node, ast.ClassDef) and node.name.endswith("DataModule")
               for node in ast.parse(path.read_text(encoding="utf-8")).body)


def lightning_free(module: str, root: Path = REPO) -> bool:
    """Whether ``module`` must import no Lightning: a primitive of ``dermlab``, a plain network, or any module of
    ``datamodules`` that defines no LightningDataModule (the data sets and their readers, splits, transforms,
    cache, audit: all usable in a plain PyTorch loop)."""
    if floor(module) == "primitives" or module.startswith("lightning_modules.nets"):
        return True
    return floor(module) == "datamodules" and not defines_a_datamodule(module, root)


def import_time_graph(root: Path) -> dict[str, set[str]]:
    """{module: the modules of ``root`` and the outside top-level names its import runs}: top-level imports only
    (a lazy import runs later, if ever), each repository target with the ``__init__`` of every package above it."""
    modules = {module_name(path, root): path for package in PACKAGES for path in (root / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        parents = name.split(".")
        edges.update(".".join(parents[:i]) for i in range(1, len(parents)))  # its own packages run first
        for target, _, function in imports(path, root):
            if function:
                continue
            parts = target.split(".")
            chain = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
            edges.update(m for m in chain if m in modules)
            if parts[0] not in PACKAGES:
                edges.add(parts[0])
        graph[name] = edges - {name}
    return graph


def lightning_imports(root: Path) -> list[str]:
    """For each Lightning-free module of ``root`` whose import runs Lightning, the shortest chain of imports to
    it, as ``a -> b -> lightning``."""
    graph = import_time_graph(root)
    found = []
    for start in sorted(m for m in graph if lightning_free(m, root)):
        previous, queue = {start: None}, [start]
        while queue:
            current = queue.pop(0)
            if current in LIGHTNING:
                chain = [current]
                while previous[chain[-1]] is not None:
                    chain.append(previous[chain[-1]])
                found.append(" -> ".join(reversed(chain)))
                break
            for nxt in sorted(graph.get(current, ())):
                if nxt not in previous:
                    previous[nxt] = current
                    queue.append(nxt)
    return found


def test_the_tree_keeps_its_floors():
    assert violations(REPO) == []


def test_the_checker_finds_each_kind_of_upward_import(tmp_path):
    """A hand-made tree with one import per rule (top-level, lazy, relative) and the allowed cases beside them."""
    files = {
        "dermlab/__init__.py": "",
        "dermlab/metrics.py": "import torch\nfrom dermlab.errors import DataError\n",
        "dermlab/scoring.py": "def f():\n    from datamodules.listing import list_images\n",  # primitive -> datamodules
        "dermlab/errors.py": "from .commands import score\n",  # relative: primitive -> command layer
        "dermlab/truth.py": "from . import cli, metrics\n",  # relative, a module by name
        "dermlab/commands/__init__.py": "",
        "dermlab/commands/score.py": "from datamodules import DATAMODULES\nfrom callbacks import Plots\n",
        "datamodules/__init__.py": "from datamodules.base import SkinDataModule\n",
        "datamodules/base.py": "from dermlab.cli import main\nfrom dermlab.metrics import scalars\n",  # -> commands
        "datamodules/ham.py": "from lightning_modules import LesionClassifier\n",  # same floor: allowed
        "lightning_modules/__init__.py": "",
        "lightning_modules/dds.py": ("from callbacks.plots import Plots\n"  # -> callbacks at the top
                                     "class M:\n    def configure_callbacks(self):\n"
                                     "        from callbacks.layers import LayerSelection\n"),  # allowed
        "lightning_modules/nets/__init__.py": "",
        "lightning_modules/nets/cam.py": ("from lightning_modules.base import LesionClassifier\n"  # nets -> modules
                                          "import lightning.pytorch as L\n"  # nets -> Lightning
                                          "from lightning_modules.nets.lerf import lerf\nimport torch\n"),
        "callbacks/__init__.py": "",
        "callbacks/plots.py": "from lightning_modules.nets.cam import maps\nfrom dermlab.grid import run\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = [line.split(": ", 1)[1] for line in violations(tmp_path)]
    assert sorted(found) == sorted([
        "dermlab.scoring -> datamodules.listing (primitives → datamodules)",
        "dermlab.errors -> dermlab.commands (primitives → commands)",
        "dermlab.truth -> dermlab.cli (primitives → commands)",
        "datamodules.base -> dermlab.cli (datamodules → commands)",
        "lightning_modules.dds -> callbacks.plots (lightning_modules → callbacks)",
        "lightning_modules.nets.cam -> lightning_modules.base (lightning_modules → lightning_modules)",
        "lightning_modules.nets.cam -> lightning.pytorch (lightning_modules → None)",
        "callbacks.plots -> dermlab.grid (callbacks → commands)",
    ])


def test_every_command_is_one_module_of_the_command_layer_with_a_main():
    from dermlab.cli import COMMANDS

    for name, target in COMMANDS.items():
        module, function = target.split(":")
        assert module.startswith(("dermlab.commands.", "dermlab.grid.", "dermlab.tuning.")), (name, module)
        assert callable(getattr(importlib.import_module(module), function)), name
    # the Trainer verbs (LightningCLI) and their argument parser are the folder's two non-command modules
    trainer_machinery = {"__init__", "trainer", "config_errors"}
    in_folder = {path.stem for path in (REPO / "dermlab/commands").glob("*.py")} - trainer_machinery
    assert in_folder == {target.split(":")[0].rpartition(".")[2] for target in COMMANDS.values()
                         if target.startswith("dermlab.commands.")}


def test_no_primitive_plain_network_or_data_set_imports_lightning_even_through_a_package():
    assert lightning_imports(REPO) == []


def test_the_checker_follows_an_import_through_a_package_init(tmp_path):
    """The case that once slipped through the direct-import rule: a plain network importing a module of
    ``datamodules``, whose package ``__init__`` imports the LightningDataModules; and a data set, a plain helper
    and the package itself, which must not run Lightning either."""
    files = {
        "dermlab/__init__.py": "",
        "dermlab/files/__init__.py": "",
        "dermlab/files/cache_keys.py": "import os\n",
        "datamodules/__init__.py": "from datamodules.base import SkinDataModule\n",  # eager: runs Lightning
        "datamodules/base.py": "import lightning.pytorch as L\nclass SkinDataModule(L.LightningDataModule): ...\n",
        "datamodules/cache.py": "from dermlab.files.cache_keys import cache_root\n",
        "datamodules/datasets/__init__.py": "",
        "datamodules/datasets/isic2017.py": "from datamodules.base import SkinDataModule\n",  # a data set -> Lightning
        "datamodules/isic2017.py": "from datamodules.base import SkinDataModule\nclass ISIC2017DataModule: ...\n",
        "lightning_modules/__init__.py": "def __getattr__(name):\n    import lightning\n",  # lazy: not run
        "lightning_modules/nets/__init__.py": "",
        "lightning_modules/nets/weights.py": "from datamodules.cache import cache_root\n",  # -> Lightning
        "lightning_modules/nets/cam.py": "from dermlab.files.cache_keys import cache_root\n",  # fine
        "callbacks/__init__.py": "import lightning\n",  # not Lightning-free: allowed
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert violations(tmp_path) == []  # every direct import keeps its floor
    assert lightning_imports(tmp_path) == [  # a module that defines a LightningDataModule may import Lightning
        "datamodules -> datamodules.base -> lightning",
        "datamodules.cache -> datamodules -> datamodules.base -> lightning",
        "datamodules.datasets -> datamodules -> datamodules.base -> lightning",
        "datamodules.datasets.isic2017 -> datamodules.base -> lightning",
        "lightning_modules.nets.weights -> datamodules -> datamodules.base -> lightning"]


def test_a_fresh_interpreter_importing_every_primitive_plain_network_and_data_set_holds_no_lightning():
    modules = sorted(module_name(path, REPO) for package in ("dermlab", "lightning_modules/nets", "datamodules")
                     for path in (REPO / package).rglob("*.py")
                     if lightning_free(module_name(path, REPO)) and path.name != "__main__.py")
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n    importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(modules) > 40 and result.stdout.strip() == "[]", result.stdout[-2000:]
