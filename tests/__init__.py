"""The test suite. A package, with an ``__init__.py`` in every folder, so that pytest (its default ``prepend``
import mode) imports each test module by its dotted path from the repository root (``tests.dermlab.grid.test_spec``):
files in different folders may share a base name, and any test imports ``tests.conftest`` and ``tests.helpers.*``."""
