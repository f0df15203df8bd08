"""LightningModules, one per method; plain networks live in ``lightning_modules.nets``."""

from lightning_modules.base import LesionClassifier

__all__ = ["LesionClassifier"]
