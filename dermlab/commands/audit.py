"""``dermlab audit -c CONFIG [overrides]``: the split audit of a config's data, as JSON, without training.

It resolves the configs and overrides exactly as ``dermlab fit`` would, instantiates the datamodule alone (no
model, no trainer: a stage-2 config that still lacks its stage-1 run can be audited), reads every split as its
files list it (images present or not, so a metadata-only copy can be audited) and prints the
:class:`~datamodules.audit.SplitAudit` plus what steers the run (``selection``: the metrics that choose the
checkpoint, stop early or drive a plateau scheduler, and how many validation images they are computed on). The
exit status is 0 when the splits are clean, 2 when anything leaks and 1 when the config or the data cannot be
read (the message names what and why).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import TYPE_CHECKING, Any

from dermlab.errors import DataError

if TYPE_CHECKING:
    from jsonargparse import Namespace

PLATEAU = "ReduceLROnPlateau"
STEERING_CALLBACKS = ("ModelCheckpoint", "EarlyStopping")


def instantiate(namespace: Namespace) -> Any:
    """An instance of the class a resolved config entry names (``class_path``, imported now), built from its
    ``init_args`` (none: no arguments); whatever class that is."""
    module, name = namespace.class_path.rsplit(".", 1)
    init_args = namespace.init_args.as_dict() if namespace.get("init_args") else {}
    return getattr(importlib.import_module(module), name)(**init_args)


def selection(config: Namespace, val_images: int) -> dict[str, Any]:
    """What chooses or steers on validation metrics in a resolved config: checkpoint / early-stopping monitors and
    a plateau scheduler's monitor, with the number of validation images they would be computed on."""
    monitors = []
    for callback in config.trainer.get("callbacks") or []:
        name = str(callback.class_path).rsplit(".", 1)[-1]
        monitor = callback.get("init_args") and callback.init_args.get("monitor")
        if name in STEERING_CALLBACKS and monitor:
            monitors.append(f"{name}: {monitor}")
    model = config.model.get("init_args") or {}
    scheduler = model.get("scheduler") if hasattr(model, "get") else None
    if scheduler and str(scheduler.get("class_path", "")).endswith(PLATEAU):
        monitors.append(f"{PLATEAU}: {model.get('monitor')}")
    return {"val_images": val_images, "monitors": monitors}


def main(argv: list[str]) -> None:
    """Run ``dermlab audit``: print the split audit of a config's datamodule as JSON and exit 2 if anything leaks.

    Args:
        argv: the arguments after ``audit``: ``--near-duplicates``, ``--no-pixels``, and the config(s) and
            overrides (``-c CONFIG``, ``--data.init_args.root DIR``) as ``dermlab fit`` takes them.

    Raises:
        SystemExit: status 1 without ``-c`` or when the config or the data cannot be read; status 2 when the
            splits share lesions, images or pixels (a clean audit returns).
    """
    parser = argparse.ArgumentParser(
        prog="dermlab audit", description="Check a config's splits for leakage: shared lesion / patient ids, shared "
        "image ids and pixel-identical images between train, val, test and extra training images. Prints JSON; exit "
        "status 2 when anything leaks. Other arguments (-c CONFIG, --data.init_args.root DIR, ...) are those of "
        "`dermlab fit`.")
    parser.add_argument("--near-duplicates", action="store_true", help="also report perceptual-hash near duplicates")
    parser.add_argument("--no-pixels", action="store_true", help="compare ids and lesion ids only (no decoding)")
    args, cli_args = parser.parse_known_args(argv)
    if not any(a in ("-c", "--config") or a.startswith(("--config=", "-c")) for a in cli_args):
        print("dermlab audit: error: give the run's config(s) with -c CONFIG, as for `dermlab fit`", file=sys.stderr)
        sys.exit(1)
    from dermlab.commands.trainer import config_parser
    from dermlab.errors import clean_message

    try:
        config = config_parser().parse(cli_args)
        data = instantiate(config.data)
        data.near_duplicates = data.near_duplicates or args.near_duplicates
        data.audit_pixels = data.audit_pixels and not args.no_pixels
        audit = data.audit(screened=False)
    except (DataError, ValueError) as error:
        print(f"dermlab audit: error: {clean_message(error)}", file=sys.stderr)
        sys.exit(1)
    try:
        val_images = len(data.raw_table("val"))
    except DataError:
        val_images = 0
    report = {"datamodule": type(data).__name__, "root": str(data.root), **audit.to_json(),
              "selection": selection(config, val_images)}
    print(json.dumps(report, indent=1))
    if report["leak"]:
        sys.exit(2)
