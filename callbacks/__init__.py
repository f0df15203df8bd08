"""Lightning callbacks of the suite: plots, submissions, deep-supervision layer selection."""

from callbacks.branch_cams import BranchCAMs
from callbacks.layer_selection import LayerSelection
from callbacks.plots import CAMGrid, ClassificationPlots
from callbacks.submission import SubmissionWriter

__all__ = ["BranchCAMs", "CAMGrid", "ClassificationPlots", "LayerSelection", "SubmissionWriter"]
