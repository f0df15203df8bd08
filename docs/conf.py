"""Sphinx configuration of the dermlab documentation (``make docs`` builds it into ``docs/_build/html``).

Pages are MyST Markdown; the API reference is generated from the docstrings (reST roles) by autodoc /
autosummary; command references are the commands' own ``--help`` (sphinxcontrib-programoutput), so they cannot
drift from the parsers. The build runs with ``-n -W`` (every cross-reference must resolve, every warning fails).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))  # benchmark_tables (the Benchmarks page)
# ``dermlab`` of this checkout first on PATH for the ``program-output`` directives (the build's own interpreter)
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.setdefault("WANDB_MODE", "disabled")

project = "dermlab"
author = "the dermlab developers"
copyright = "the dermlab developers, MIT licence"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinxcontrib.programoutput",
    "sphinx_copybutton",
    "benchmark_tables",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]
# DERMLAB_DOCS_SKIP_API=1: build the pages without the API reference (quicker while writing pages; references
# into the API then do not resolve, so the full build, ``make docs``, is the one that counts)
SKIP_API = os.environ.get("DERMLAB_DOCS_SKIP_API") == "1"
if SKIP_API:
    exclude_patterns += ["api.md", "_api"]

myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = "dermlab"
html_static_path: list[str] = []  # no static files of our own; furo ships its own

# API reference: one page per module (autosummary), type hints in the description, members in source order
autosummary_generate = not SKIP_API
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# undoc-members: every public function / class / method is documented (its signature and types at least), so the
# autosummary tables, which list every public member, always have a target. ignore-module-all: a module documents
# its own definitions whatever its ``__all__`` (timm's ``register_model`` rewrites ``__all__`` of
# ``lightning_modules.nets.arl`` / ``ran``; a package's re-exports are documented once, in their own module).
autodoc_default_options = {"members": True, "undoc-members": True, "ignore-module-all": True,
                           "show-inheritance": True}
# the type aliases of this suite that signatures name (``from __future__ import annotations`` keeps them as
# written): a function's parameter links to the alias's definition (a ``#:`` comment in its module) instead of
# showing the expanded ``Literal[...]``. A class's constructor parameters keep the short name, which the type field
# resolves by itself.
autodoc_type_aliases = {
    "Architecture": "lightning_modules.nets.segmentation.Architecture",
    "Attention": "lightning_modules.nets.patch_attention.Attention",
    "Aggregation": "lightning_modules.nets.patch_attention.Aggregation",
    "AuxKind": "lightning_modules.nets.deep_supervision.AuxKind",
    "BadImagePolicy": "datamodules.datasets.reader.BadImagePolicy",
    "CacheFormat": "datamodules.cache.CacheFormat",
    "ClassWeighting": "lightning_modules.losses.ClassWeighting",
    "ClassWeightNormalise": "lightning_modules.losses.ClassWeightNormalise",
    "Gradient": "lightning_modules.nets.lerf.Gradient",
    "Scheme": "datamodules.datasets.pooled.Scheme",
    "Task": "datamodules.datasets.isic2017.Task",
    "TransformSpec": "datamodules.transforms.TransformSpec",
}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# command references run the suite's own commands from the repository root
programoutput_use_ansi = False

# -n: every reference to our own code must resolve; other libraries' objects are not in this build (no internet,
# so no intersphinx inventories) and are ignored by name.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(torch|lightning|pytorch_lightning|numpy|np|pandas|pd|PIL|timm|torchmetrics|albumentations|A|"
               r"omegaconf|jsonargparse|wandb|matplotlib|scipy|sklearn|h5py|submitit|cv2|segmentation_models_pytorch|"
               r"pytorch_metric_learning|imagehash|safetensors|rich|argparse|pathlib|collections|typing|enum|"
               r"dataclasses|concurrent|queue|subprocess|io|os|re|json|csv|abc|contextlib|functools|itertools|logging|"
               r"threading|types|numbers|datetime|random|warnings|math|optuna|optuna_integration)(\..*)?"),
    (r"py:.*", r"(Path|Tensor|Module|LightningModule|LightningDataModule|Callback|Trainer|DataFrame|Series|"
               r"ndarray|ArrayLike|Image|Image\.Image|Dataset|DataLoader|Sampler|Namespace|ArgumentParser|Any|Callable|"
               r"Iterable|Iterator|Sequence|Mapping|Literal|Optional|Union|None|NoneType|TypeVar|Self|"
               r"ndarray|dtype|device|Generator|Figure|Axes|STEP_OUTPUT|LightningCLI|T|nn\.Module|"
               r"OptimizerCallable|LRSchedulerCallable|Optimizer|LRScheduler)"),
    (r"py:class", r"(int|float|str|bool|bytes|dict|list|tuple|set|frozenset|object|type|callable|optional|"
                  r"array|array-like|iterable|sequence|mapping|path|file|tensor|default|shape)"),
    # a private base class (``_EpochSampler``) that show-inheritance names: private objects are not documented
    (r"py:class", r"(dermlab|datamodules|lightning_modules|callbacks)(\.\w+)*\._\w+"),
]
