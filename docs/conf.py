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
html_static_path = ["_static"]

# API reference: one page per module (autosummary), type hints in the description, members in source order
autosummary_generate = not SKIP_API
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
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
               r"pytorch_metric_learning|imagehash|safetensors|argparse|pathlib|collections|typing|enum|dataclasses|"
               r"concurrent|queue|subprocess|io|os|re|json|csv|abc|contextlib|functools|itertools|logging|"
               r"threading|types|numbers|datetime|random|warnings|math)(\..*)?"),
    (r"py:.*", r"(Path|Tensor|Module|LightningModule|LightningDataModule|Callback|Trainer|DataFrame|Series|"
               r"ndarray|Image|Image\.Image|Dataset|DataLoader|Sampler|Namespace|ArgumentParser|Any|Callable|"
               r"Iterable|Iterator|Sequence|Mapping|Literal|Optional|Union|None|NoneType|TypeVar|Self|"
               r"ndarray|dtype|device|Generator|Figure|Axes|STEP_OUTPUT|LightningCLI|T|nn\.Module)"),
    (r"py:class", r"(int|float|str|bool|bytes|dict|list|tuple|set|frozenset|object|type|callable|optional|"
                  r"array|array-like|iterable|sequence|mapping|path|file|tensor|default|shape|.* of .*)"),
]
