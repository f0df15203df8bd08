"""LightningModules, one per method; plain networks live in ``lightning_modules.nets``."""

from lightning_modules.base import LesionClassifier
from lightning_modules.dds import DeeplySupervisedClassifier
from lightning_modules.patch import PatchAttentionClassifier

__all__ = ["DeeplySupervisedClassifier", "LesionClassifier", "PatchAttentionClassifier"]
