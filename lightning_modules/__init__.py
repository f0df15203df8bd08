"""LightningModules, one per method; plain networks live in ``lightning_modules.nets``."""

from lightning_modules.attributes import AttributeSegmenter
from lightning_modules.base import LesionClassifier
from lightning_modules.dds import DeeplySupervisedClassifier
from lightning_modules.patch import PatchAttentionClassifier
from lightning_modules.segmentation import LesionSegmenter, SegAN, SegmentationEnsemble
from lightning_modules.triplet import TripletClassifier
from lightning_modules.weighting import CBAMClassifier, HierarchicalClassifier

__all__ = ["AttributeSegmenter", "CBAMClassifier", "DeeplySupervisedClassifier", "HierarchicalClassifier",
           "LesionClassifier", "LesionSegmenter", "PatchAttentionClassifier", "SegAN", "SegmentationEnsemble",
           "TripletClassifier"]
