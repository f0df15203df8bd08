"""The command layer: one module per ``dermlab`` command, each with ``main(argv)``.

:mod:`dermlab.cli` (the console script) dispatches to them; :mod:`dermlab.commands.trainer` is LightningCLI (the
Trainer verbs ``fit`` / ``validate`` / ``test`` / ``predict``); the experiment grids are :mod:`dermlab.grid`.
This is the top floor: it may import every other package, and nothing in ``datamodules``, ``lightning_modules``,
``callbacks`` or the primitives of :mod:`dermlab` imports from it (``tests/test_layering.py``).
"""
