"""Lightning callbacks of the suite: plots, submissions (and, later, layer selection and curricula)."""

from callbacks.plots import CAMGrid, ClassificationPlots
from callbacks.submission import SubmissionWriter

__all__ = ["CAMGrid", "ClassificationPlots", "SubmissionWriter"]
