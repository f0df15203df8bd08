"""dermlab: reproducing and recombining published skin-lesion methods on dermoscopy data sets.

This package holds the suite's bottom and top floors (``docs/architecture.md``). Its rooms are the primitives, free
of Lightning: :mod:`dermlab.challenge` (the ISIC truths, submissions and official scorers), :mod:`dermlab.metrics`
(every metric's one definition), :mod:`dermlab.stats`, :mod:`dermlab.files` (the readers), :mod:`dermlab.imaging`
and :mod:`dermlab.runtime`, with :mod:`dermlab.errors` and :mod:`dermlab.figures` beside them. :mod:`dermlab.cli`,
:mod:`dermlab.commands` and :mod:`dermlab.grid` are the command layer on top; ``tests/test_layering.py`` keeps every
import on its floor. Importing the package itself imports nothing; :func:`load_model` (the public entry point of an
exported model package) imports the package reader when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lightning_modules.nets.package import ModelPackage


def load_model(folder: str | Path, channels_last: bool = True) -> ModelPackage:
    """A model package exported by ``dermlab export``, loaded for prediction, without Lightning.

    Returns a :class:`~lightning_modules.nets.package.ModelPackage`: ``predict(paths_or_arrays)`` gives the (N, K)
    class probabilities (columns ``class_names``) through the run's evaluation preprocessing (a model with patient
    metadata takes ``predict(paths, metadata=frame)``, one row per image), ``net`` is the plain
    ``torch.nn.Module`` (its weights channels-last unless ``channels_last=False``: the faster layout on the CPU). The
    one import of this package's facade from the floor above (``tests/test_layering.py``).

    Raises:
        DataError: the folder is not a complete, unaltered package (the file is named).
    """
    from lightning_modules.nets.package import ModelPackage

    return ModelPackage.load(folder, channels_last)
