"""LightningModules, one per method; plain networks live in ``lightning_modules.nets``."""

from lightning_modules.base import LesionClassifier
from lightning_modules.dds import DeeplySupervisedClassifier

__all__ = ["DeeplySupervisedClassifier", "LesionClassifier"]
