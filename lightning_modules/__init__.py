"""LightningModules, one per method; plain networks live in ``lightning_modules.nets``.

The classes are imported on first use (PEP 562), so that importing a plain network (e.g. ``dermlab lerf``'s
``lightning_modules.nets.lerf``) does not import Lightning, torchmetrics and every method first.
"""

from __future__ import annotations

import importlib

_MODULE_OF = {
    "AttributeSegmenter": "attributes",
    "LesionClassifier": "base",
    "DeeplySupervisedClassifier": "dds",
    "PatchAttentionClassifier": "patch",
    "LesionSegmenter": "segmentation",
    "SegAN": "segmentation",
    "SegmentationEnsemble": "segmentation",
    "TripletClassifier": "triplet",
    "CBAMClassifier": "weighting",
    "HierarchicalClassifier": "weighting",
}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> type:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
