"""What one grid cell's process does (``dermlab grid _cell``): fit, resuming from ``last.ckpt``; test the best
checkpoint; write the classifier's per-image predictions (:mod:`dermlab.files.predictions`) and ``result.json``;
keep the best checkpoint without its optimiser state. :func:`dermlab.grid.runner.run_one` starts it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dermlab.commands.trainer import DermlabCLI


def run_cell_command(argv: list[str]) -> None:
    """``dermlab grid _cell RESULT [--predict] [--val-predictions] -- ARGS``: fit (resuming from last.ckpt), test
    the best checkpoint, optionally write the test set's submission CSV (``predict``), write the classifier's
    ``predictions_test.csv`` (and ``predictions_val.csv`` with ``--val-predictions``), then write RESULT. Under DDP
    every process fits and tests; only global rank 0 slims the checkpoint and writes RESULT."""
    from dermlab.commands.trainer import build_cli
    from dermlab.files.checkpoints import resume_arguments

    split = argv.index("--")
    result_path, flags, args = Path(argv[0]), argv[1:split], argv[split + 1:]
    start = time.perf_counter()
    last = result_path.parent / "checkpoints" / "last.ckpt"
    resume = resume_arguments(last)  # [] for a fresh cell; a damaged last.ckpt stops here, naming the others
    cli = build_cli(["fit", *args, *resume])
    trainer = cli.trainer
    best = trainer.checkpoint_callback.best_model_path or None
    tested = trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=best or "last", verbose=False)[0]
    if "--predict" in flags:  # writers that score their files (callbacks.MaskWriter.scores) add to the metrics
        trainer.predict(cli.model, datamodule=cli.datamodule, ckpt_path=best or "last", return_predictions=False)
        tested = {**tested, **{k: v for c in trainer.callbacks for k, v in (getattr(c, "scores", None) or {}).items()}}
    # after-test scores of callbacks (callbacks.SubgroupMetrics: per skin-type group and the gap)
    tested = {**tested, **{k: v for c in trainer.callbacks for k, v in (getattr(c, "test_scores", None) or {}).items()}}
    for split in ("test", *(["val"] if "--val-predictions" in flags else [])):
        if not (result_path.parent / f"predictions_{split}.csv").is_file():
            write_split_predictions(cli, split, result_path.parent / f"predictions_{split}.csv")
    score = trainer.checkpoint_callback.best_model_score
    if not trainer.is_global_zero:  # a DDP cell (one process per GPU of its job): rank 0 writes the cell's files
        return
    if best:
        slim_checkpoint(Path(best))
        last.unlink(missing_ok=True)
    audit = cli.datamodule.split_audit
    result = {"metrics": {k: float(v) for k, v in tested.items()}, "checkpoint": best,
              "best_monitor": None if score is None else float(score), "wall_time_s": time.perf_counter() - start,
              "resumed": bool(resume),
              "split_audit": None if audit is None else {"leak": audit.leak, "leaks": audit.leaks},
              "test_on": None if audit is None else audit.cross_test}  # the test metrics' data set, if another
    result_path.write_text(json.dumps(result, indent=2))


def write_split_predictions(cli: DermlabCLI, split: str, path: Path) -> Path | None:
    """Write ``path`` (:mod:`dermlab.files.predictions` format) with the model as it stands — after
    ``trainer.test(ckpt_path=best)``, the tested checkpoint's weights — on ``split``'s evaluation pipeline
    (views, crops, test-time augmentation), through a one-device Trainer of the run's accelerator and precision
    without callbacks (no submission or mask writer fires) and without a ``limit_predict_batches``. The validation
    split is predicted as validation sees it: a ``calibrate: temperature`` model's T, fitted on those images, is
    not applied. Only for classifiers and splits with images and known labels; returns the path, or None when
    nothing was written. Under DDP only rank 0 writes."""
    import lightning.pytorch as L
    import torch

    from dermlab.files.predictions import write_predictions
    from lightning_modules.base import LesionClassifier

    datamodule, model = cli.datamodule, cli.model
    if not isinstance(model, LesionClassifier) or not cli.trainer.is_global_zero or not hasattr(datamodule, "table"):
        return None
    table = datamodule.table(split)
    if not len(table) or (table.labels < 0).any():  # no images, or a split without ground truth
        return None
    predictor = L.Trainer(accelerator=cli.trainer.accelerator, devices=1, precision=cli.trainer.precision,
                          logger=False, callbacks=[], enable_progress_bar=False, enable_model_summary=False,
                          default_root_dir=cli.trainer.default_root_dir)
    previous, datamodule.predict_split = datamodule.predict_split, split
    calibrate = model.hparams.get("calibrate")
    if split == "val" and calibrate is not None:  # as validation sees them: without the T fitted on these images
        model.hparams["calibrate"] = "none"
    try:
        batches = predictor.predict(model, datamodule=datamodule, return_predictions=True)
    finally:
        datamodule.predict_split = previous
        if calibrate is not None:
            model.hparams["calibrate"] = calibrate
    images = [i for batch in batches for i in batch["image_id"]]
    probabilities = torch.cat([batch["probabilities"] for batch in batches]).float().cpu()
    mapping = getattr(model, "test_mapping", None) if split == "test" else None
    probabilities = (probabilities if mapping is None else mapping.merge(probabilities)).numpy()
    row = {image: index for index, image in enumerate(table.ids)}
    order = [row[i] for i in images]
    weights = table.extra.get("score_weight")
    scored = None if weights is None else [weights[i] != 0 for i in order]
    return write_predictions(path, images, table.labels[order], probabilities, model.split_class_names(split),
                             scored)


def slim_checkpoint(path: Path) -> None:
    """Keep a finished cell's best checkpoint as weights + hyper-parameters (no optimiser state): a VGG13 cell's
    checkpoint shrinks from ~1.6 GB to ~0.5 GB, which is what lets a paper's grid fit on a disk."""
    import torch

    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    for key in ("optimizer_states", "lr_schedulers", "loops"):
        checkpoint.pop(key, None)
    tmp = path.with_suffix(".tmp")
    torch.save(checkpoint, tmp)
    tmp.replace(path)
