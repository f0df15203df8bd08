"""dermlab: reproducing and recombining published skin-lesion methods on dermoscopy data sets.

This package holds the suite's bottom and top floors (``docs/architecture.md``). Its rooms are the primitives, free
of Lightning: :mod:`dermlab.challenge` (the ISIC truths, submissions and official scorers), :mod:`dermlab.metrics`
(every metric's one definition), :mod:`dermlab.stats`, :mod:`dermlab.files` (the readers), :mod:`dermlab.imaging`
and :mod:`dermlab.runtime`, with :mod:`dermlab.errors` and :mod:`dermlab.figures` beside them. :mod:`dermlab.cli`,
:mod:`dermlab.commands` and :mod:`dermlab.grid` are the command layer on top; ``tests/test_layering.py`` keeps every
import on its floor. Importing the package itself imports nothing.
"""
