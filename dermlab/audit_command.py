"""``dermlab audit -c CONFIG [overrides]``: the split audit of a config's data, as JSON, without training.

It builds the run's datamodule exactly as ``dermlab fit`` would (same configs, same overrides), reads every
split as its files list them (images present or not, so a metadata-only copy can be audited) and prints
the :class:`~datamodules.audit.SplitAudit` plus what steers the run (``selection``: the metrics that choose
the checkpoint, stop early or drive a plateau scheduler, and how many validation images they see). The exit
status is 2 when anything leaks, 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys

from dermlab.errors import DataError

PLATEAU = "ReduceLROnPlateau"


def selection(cli) -> dict:
    """What chooses or steers on validation metrics in a built CLI: checkpoint / early-stopping monitors and a
    plateau scheduler's monitor, with the number of validation images they are computed on."""
    monitors = [f"{type(c).__name__}: {c.monitor}" for c in cli.trainer.callbacks
                if getattr(c, "monitor", None) and type(c).__name__ in ("ModelCheckpoint", "EarlyStopping")]
    model_config = cli.config.get("model", {}).get("init_args", {}) or {}
    scheduler = (model_config.get("scheduler") or {}) if hasattr(model_config, "get") else {}
    if scheduler and str(scheduler.get("class_path", "")).endswith(PLATEAU):
        monitors.append(f"{PLATEAU}: {getattr(cli.model, 'monitor', None)}")
    return {"val_images": len(cli.datamodule.table("val")) if _has_val(cli) else 0, "monitors": monitors}


def _has_val(cli) -> bool:
    try:
        return bool(len(cli.datamodule.raw_table("val")))
    except DataError:
        return False


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="dermlab audit", description="Check a config's splits for leakage: shared lesion / patient ids, shared "
        "image ids and pixel-identical images between train, val, test and extra training images. Prints JSON; exit "
        "status 2 when anything leaks. Other arguments (-c CONFIG, --data.init_args.root DIR, ...) are those of "
        "`dermlab fit`.")
    parser.add_argument("--near-duplicates", action="store_true", help="also report perceptual-hash near duplicates")
    parser.add_argument("--no-pixels", action="store_true", help="compare ids and lesion ids only (no decoding)")
    args, cli_args = parser.parse_known_args(argv)
    if "-c" not in cli_args and "--config" not in cli_args:
        parser.error("give the run's config(s) with -c CONFIG, as for `dermlab fit`")
    from dermlab.cli import build_cli

    cli = build_cli(cli_args + ["--run.wandb", "disabled", "--trainer.logger", "false"], run=False)
    data = cli.datamodule
    data.near_duplicates = data.near_duplicates or args.near_duplicates
    data.audit_pixels = data.audit_pixels and not args.no_pixels
    audit = data.audit(screened=False)
    report = {"datamodule": type(data).__name__, "root": str(data.root), **audit.to_json(),
              "selection": selection(cli)}
    print(json.dumps(report, indent=1))
    if report["leak"]:
        sys.exit(2)
