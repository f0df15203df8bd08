"""Lightning callbacks of the suite: plots, submissions, deep-supervision layer selection, ARL scale gates,
ARL attention maps, SPL / OHEM curricula,
segmentation (frozen encoder epochs, official mask files, Fig. 1 masks), subgroup metrics and skin tone, the stop on a
non-finite loss or gradient."""

from callbacks.alpha_monitor import AlphaMonitor
from callbacks.attention_maps import AttentionMaps
from callbacks.branch_cams import BranchCAMs
from callbacks.checkpoint import ModelCheckpoint
from callbacks.curriculum import Curriculum
from callbacks.layer_selection import LayerSelection
from callbacks.non_finite import StopOnNonFinite
from callbacks.plots import CAMGrid, ClassificationPlots
from callbacks.segmentation import FreezeEncoder, MaskWriter, SegmentationFigure
from callbacks.subgroups import SubgroupMetrics
from callbacks.submission import SubmissionWriter

__all__ = ["AlphaMonitor", "AttentionMaps", "BranchCAMs", "CAMGrid", "ClassificationPlots", "Curriculum",
           "FreezeEncoder", "ModelCheckpoint", "LayerSelection", "MaskWriter", "SegmentationFigure", "StopOnNonFinite",
           "SubgroupMetrics", "SubmissionWriter"]
