"""The ``dermlab`` console script: the Trainer verbs go to LightningCLI (:mod:`dermlab.commands.trainer`), the
suite's own commands to their modules in :mod:`dermlab.commands` (one module per command, each with
``main(argv)``) and :mod:`dermlab.grid`.

Only what a command needs is imported: ``dermlab lerf`` or ``dermlab score`` start without importing Lightning.
"""

from __future__ import annotations

import importlib
import logging
import sys
import warnings
from collections.abc import Callable
from typing import TextIO

from dermlab.errors import DataError, clean_message

# Extra commands that are not Trainer verbs: name -> "module:function" taking argv.
COMMANDS = {
    "synth": "dermlab.commands.synth:main",
    "score": "dermlab.commands.score:main",
    "compare": "dermlab.commands.compare:main",
    "prepare": "dermlab.commands.prepare:main",
    "demo": "dermlab.commands.demo:main",
    "grid": "dermlab.grid.command:main",
    "tune": "dermlab.tuning.command:main",
    "lerf": "dermlab.commands.lerf:main",
    "objsize": "dermlab.commands.objsize:main",
    "compare-cams": "dermlab.commands.compare_cams:main",
    "cbam-maps": "dermlab.commands.cbam_maps:main",
    "postprocess": "dermlab.commands.postprocess:main",
    "audit": "dermlab.commands.audit:main",
    "weights": "dermlab.commands.weights:main",
    "export": "dermlab.commands.export:main",
    "classify": "dermlab.commands.classify:main",
}


def command(name: str) -> Callable[[list[str]], object]:
    """The ``main(argv)`` of extra command ``name``, its module imported only now (a command imports what it needs
    alone). Some mains also return what they made (a figure's path, the metrics); :func:`main` ignores it.

    Raises:
        KeyError: ``name`` is not a key of ``COMMANDS``.
    """
    module, function = COMMANDS[name].split(":")
    return getattr(importlib.import_module(module), function)


PACKAGES = ("dermlab", "datamodules", "lightning_modules", "callbacks")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each record (not the stream of its creation)."""

    dermlab = True

    @property
    def stream(self) -> TextIO:
        """The current ``sys.stderr``; a stream assigned (as ``StreamHandler.__init__`` does) is ignored."""
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def show_log_lines() -> None:
    """Print the suite's own log lines from INFO up on stderr, as ``INFO: …`` / ``WARNING: …`` like Lightning's
    (which file a table was read from, what a set-up left out, what a run wrote); once per process."""
    for name in PACKAGES:
        logger = logging.getLogger(name)
        if not any(getattr(h, "dermlab", False) for h in logger.handlers):
            handler = _StderrHandler()
            handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
            logger.addHandler(handler)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``dermlab`` console script; a :class:`~dermlab.errors.DataError` ends it with its message
    and exit code 2."""
    # Lightning 2.6 on torch 2.14 warns once per loop about a torch-internal rename; it is not actionable.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    show_log_lines()
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] in ("-h", "--help"):
        print(f"extra commands: {', '.join(COMMANDS)} (dermlab <command> --help)\n")
    try:
        if args and args[0] in COMMANDS:
            command(args[0])(args[1:])
        else:
            from dermlab.commands.trainer import build_cli

            build_cli(argv)  # None: LightningCLI reads sys.argv itself
    except DataError as error:
        print(f"dermlab: error: {clean_message(error)}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
