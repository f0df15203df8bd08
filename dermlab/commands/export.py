"""``dermlab export``: a trained classifier run as a self-contained model package (``--out PKG_DIR``).

The package (:mod:`lightning_modules.nets.package`) holds ``model.safetensors``, ``config.json`` (the network
recipe, class names, the evaluation preprocessing and prediction rule of the run's test, the calibration
temperature, provenance) and ``README.md``, the model card (:mod:`dermlab.files.model_card`) with the test metrics
and their 95 % intervals; ``--onnx`` adds ``model.onnx`` (:mod:`lightning_modules.nets.onnx_export`).

The card's numbers come from the run's ``predictions_test.csv``, so the checkpoint exported must be the one that
was tested: ``predictions_test.json`` records its SHA-256, and a mismatch stops the export with the command that
tests the right one. Every classifier method exports (the plain classifier, ``arl``, ``dds``, ``patch``,
``weighting`` flat and hierarchical, the ``isic2018`` triplet network); segmenters do not yet. A run with a
patient-metadata branch (``-c experiments/base/metadata.yaml``) exports with its fields' encoding, fitted on its
training split: ``config.json`` carries it in the network recipe and as a readable top-level ``metadata`` entry,
the card names the fields, and ``model.onnx`` takes a second input ``metadata``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch

from dermlab.errors import DataError
from dermlab.files.checkpoints import read_checkpoint, weights_fingerprint
from dermlab.files.io import file_sha256
from dermlab.files.model_card import model_card
from dermlab.files.test_record import read_test_record

log = logging.getLogger(__name__)


def checkpoint_of(run: Path, which: str) -> Path:
    """The checkpoint ``which`` (``best``, ``last`` or a path) of run folder ``run``.

    ``best``: the grid cell's ``result.json`` checkpoint, else the one ``checkpoints/best-*.ckpt``.

    Raises:
        DataError: no such checkpoint, or several best ones (listed: choose with ``--checkpoint PATH``).
    """
    if which not in ("best", "last"):
        path = Path(which).expanduser()
        if not path.is_file() and (run / "checkpoints" / which).is_file():
            path = run / "checkpoints" / which  # a name of the run's own checkpoints
        if not path.is_file():
            found = ", ".join(p.name for p in sorted((run / "checkpoints").glob("*.ckpt"))) or "none"
            raise DataError(f"checkpoint '{which}' does not exist (give best, last or a .ckpt file of the run; "
                            f"'{run / 'checkpoints'}' holds: {found})")
        return path
    folder = run / "checkpoints"
    if which == "last":
        if not (folder / "last.ckpt").is_file():
            raise DataError(f"'{folder / 'last.ckpt'}' does not exist; give --checkpoint best or a .ckpt file")
        return folder / "last.ckpt"
    result = run / "result.json"
    if result.is_file():
        recorded = json.loads(result.read_text(encoding="utf-8")).get("checkpoint")
        if recorded and Path(recorded).is_file():
            return Path(recorded)
    best = sorted(folder.glob("best-*.ckpt"))
    if len(best) == 1:
        return best[0]
    if not best:
        raise DataError(f"'{folder}' holds no best-*.ckpt (did the run monitor a validation metric?); give "
                        "--checkpoint last or a .ckpt file")
    raise DataError(f"'{folder}' holds {len(best)} best checkpoints ({', '.join(p.name for p in best)}); choose one "
                    "with --checkpoint PATH")


def tested_record(run: Path, checkpoint: Path, state_dict: dict[str, Any]) -> dict[str, Any]:
    """The run's test record, checked to be of the weights ``state_dict`` of ``checkpoint``.

    The weights' fingerprint is compared (:func:`dermlab.files.checkpoints.weights_fingerprint`), so a grid cell's
    checkpoint, slimmed after its test, still matches; a record from before fingerprints falls back to the file's
    SHA-256.

    Raises:
        DataError: the run was never tested (with this version), or tested with other weights — naming the command
            that tests this checkpoint.
    """
    config = sorted((run / "csv").glob("version_*/config.yaml"))
    command = f"dermlab test -c {config[0] if config else '<the run config>'} --ckpt_path {checkpoint}"
    record = read_test_record(run)
    if record is None or not (run / "predictions_test.csv").is_file():
        raise DataError(f"'{run}' has no test of its own (predictions_test.json is missing): the model card needs the "
                        f"test metrics of the checkpoint exported. Test it first:\n  {command}")
    tested = record.get("checkpoint") or {}
    same = (record["weights"] == weights_fingerprint(state_dict) if record.get("weights")
            else tested.get("sha256") == file_sha256(checkpoint))
    if not same:
        what = f"'{tested['path']}'" if tested.get("path") else "the model in memory right after training"
        elsewhere = run.resolve() not in checkpoint.resolve().parents
        hint = (f" '{checkpoint}' is not in this run's folder: if it is another run's, export that run instead." if
                elsewhere else "")
        raise DataError(f"'{run / 'predictions_test.csv'}' holds the test of {what}, whose weights differ from those "
                        f"of '{checkpoint}'.{hint} Test the checkpoint you export first:\n  {command}")
    if not record.get("preprocessing"):
        raise DataError(f"'{run / 'predictions_test.json'}' records no preprocessing; test again:\n  {command}")
    return record


def check_out(out: Path, run: Path, force: bool) -> None:
    """Make ``out`` ready for a package: refuse a file, the run folder itself or a folder holding it, and a
    non-empty folder unless ``force`` and it is an earlier package (which is then removed).

    Raises:
        DataError: naming ``out`` and what to choose instead.
    """
    from lightning_modules.nets.package import CONFIG, FORMAT

    if out.exists() and not out.is_dir():
        raise DataError(f"--out '{out}' is a file; give a folder for the package")
    resolved, run_folder = out.resolve(), run.resolve()
    if resolved == run_folder or resolved in run_folder.parents:
        raise DataError(f"--out '{out}' is the run folder or holds it; give a folder of its own for the package")
    if not out.exists() or not any(out.iterdir()):
        return
    if not force:
        raise DataError(f"'{out}' exists and is not empty; choose another --out or add --force to replace it")
    try:
        earlier = json.loads((out / CONFIG).read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError):
        earlier = False
    if not earlier:
        raise DataError(f"'{out}' is not a model package (no dermlab config.json): --force replaces only an earlier "
                        "package; choose an empty or new folder")
    shutil.rmtree(out)


#: Optimiser / scheduler arguments a card leaves out (implementation switches and their usual values).
_DEFAULT_NOISE = {"eps", "amsgrad", "maximize", "foreach", "capturable", "differentiable", "fused", "last_epoch",
                  "verbose", "dampening"}


def _described(entry: Any) -> str | None:
    """``AdamW (lr=0.0003, weight_decay=0.0001)`` of a config's ``{class_path, init_args}`` entry."""
    if not isinstance(entry, dict) or "class_path" not in entry:
        return None if entry is None else str(entry)
    arguments = ", ".join(f"{k}={v}" for k, v in (entry.get("init_args") or {}).items()
                          if v not in (None, False) and k not in _DEFAULT_NOISE)
    return f"{entry['class_path'].rsplit('.', 1)[-1]} ({arguments})" if arguments else entry["class_path"]


def training_summary(run: Path, saved: dict[str, Any]) -> dict[str, Any]:
    """How the exported weights were trained, from the run's first ``csv/version_*/config.yaml`` (the fit's) and
    the checkpoint: epochs, optimiser, schedule, batch size, image size, training augmentation, sampling, and the
    validation metric that chose the best checkpoint. Empty where the run has no saved config."""
    import yaml

    configs = sorted((run / "csv").glob("version_*/config.yaml"), key=lambda p: int(p.parent.name.split("_")[-1]))
    summary: dict[str, Any] = {"epoch": None if saved.get("epoch") is None else int(saved["epoch"]) + 1,
                               "global_step": saved.get("global_step")}
    if not configs:
        return summary
    config = yaml.safe_load(configs[0].read_text(encoding="utf-8")) or {}
    trainer = config.get("trainer") or {}
    data = (config.get("data") or {}).get("init_args") or {}
    model = (config.get("model") or {}).get("init_args") or {}
    monitors = [(c.get("init_args") or {}) for c in trainer.get("callbacks") or []
                if isinstance(c, dict) and str(c.get("class_path", "")).endswith("ModelCheckpoint")]
    summary.update({
        "max_epochs": trainer.get("max_epochs"), "precision": trainer.get("precision"),
        "optimizer": _described(model.get("optimizer")), "scheduler": _described(model.get("scheduler")),
        "batch_size": data.get("batch_size"), "image_size": data.get("image_size"),
        "train_transforms": data.get("train_transforms"), "sampling": data.get("sampling"),
        "loss": model.get("loss"), "class_weighting": model.get("class_weighting"),
        "selected_by": (f"{monitors[0].get('monitor')} ({monitors[0].get('mode', 'max')})"
                        if monitors and monitors[0].get("monitor") else None),
        "seed": config.get("seed_everything"),
    })
    return summary


def _started_from(weights: str | None) -> dict[str, Any] | None:
    """The pretrained weights the run started from, with their licence where the suite knows it."""
    if not weights:
        return None
    if str(weights).startswith("pkg:"):
        from lightning_modules.nets.packaged_weights import lookup

        return {"weights": weights, "licence": lookup(weights).licence}
    return {"weights": str(weights), "licence": None}


def export(run: Path, out: Path, which: str = "best", onnx: bool = False, force: bool = False) -> Path:
    """Export ``run``'s ``which`` checkpoint to the package folder ``out`` (see the module docstring).

    Raises:
        DataError: ``out`` is unusable (:func:`check_out`), the run or its checkpoint is not a classifier's, or its
            test is not of this checkpoint.
    """
    from lightning_modules.base import LesionClassifier
    from lightning_modules.nets.package import CARD, ONNX, ModelPackage, write_config, write_package
    from lightning_modules.nets.package_metadata import metadata_summary
    from lightning_modules.nets.recipes import quiet_random_init

    if not run.is_dir():
        raise DataError(f"run folder '{run}' does not exist")
    check_out(out, run, force)
    checkpoint = checkpoint_of(run, which)
    saved = read_checkpoint(checkpoint, weights_only=False, advice="give another with --checkpoint")
    record = tested_record(run, checkpoint, saved.get("state_dict", {}))
    hparams = saved.get("hyper_parameters", {})
    class_path = hparams.get("_class_path", "lightning_modules.LesionClassifier")
    module_class = _class_of(class_path)
    if not issubclass(module_class, LesionClassifier):
        raise DataError(f"'{checkpoint}' is a {module_class.__name__}: only classifiers export to a model package "
                        "so far (segmenters do not yet)")
    with quiet_random_init():  # the trained weights load right after
        module = module_class.load_from_checkpoint(checkpoint, map_location="cpu", pretrained_weights=None,
                                                   compile=False, weights_only=False).eval()
    recipe = module.net_recipe()
    net = module.net.to(memory_format=torch.contiguous_format)
    encoding = module.metadata_encoding
    config = {
        "architecture": recipe, "class_names": list(module.class_names), "num_classes": len(module.class_names),
        **({} if encoding is None else {"metadata": metadata_summary(encoding)}),
        "preprocessing": {**record["preprocessing"],
                          "albumentations": serialised_pipeline(record["preprocessing"])},
        "prediction": module.prediction_recipe(),
        "started_from": _started_from(hparams.get("pretrained_weights")), "data": _data_of(record),
        "training": training_summary(run, saved),
        "source": {"method": module_class.__name__, "run_name": run.resolve().name,
                   "checkpoint": checkpoint.name, "checkpoint_sha256": file_sha256(checkpoint),
                   "weights_sha256": record.get("weights"),
                   "epoch": saved.get("epoch"), "global_step": saved.get("global_step"),
                   "dermlab_version": version("dermlab"), "torch_version": torch.__version__,
                   "timm_version": version("timm")},
    }
    write_package(out, net, config)
    # read back as a user will (the recipe and weights must rebuild the network), in the layout ONNX is exported from
    package = ModelPackage.load(out, channels_last=False)
    _check_same_network(module, package)
    if onnx:
        from lightning_modules.nets.onnx_export import export_onnx

        export_onnx(package, out / ONNX)
        package.config["files"][ONNX] = file_sha256(out / ONNX)
        write_config(out, package.config)
    (out / CARD).write_text(model_card(run, package.config), encoding="utf-8")
    return out


def serialised_pipeline(preprocessing: dict[str, Any]) -> dict[str, Any] | None:
    """The evaluation pipeline as albumentations serialises it (``A.to_dict``; ``A.from_dict`` rebuilds it, the
    suite's own transforms once ``datamodules.transforms`` is imported): resize, transforms, normalisation, to
    tensor — the views and crops are cut after it. None where a transform cannot be serialised."""
    import albumentations as A

    from datamodules.transforms import Normalisation, build_transforms

    pipeline = build_transforms(preprocessing["eval_transforms"], preprocessing["image_size"], train=False,
                                resize_to=preprocessing.get("resize_to"),
                                normalisation=Normalisation(tuple(preprocessing["mean"]), tuple(preprocessing["std"])))
    try:
        return A.to_dict(pipeline)
    except (NotImplementedError, ValueError, TypeError) as error:
        log.info("the evaluation pipeline is not serialisable by albumentations (%s); config.json gives its spec",
                 error)
        return None


def _data_of(record: dict[str, Any]) -> dict[str, Any] | None:
    """The test record's data description, with ``synthetic``: whether its folder is a synthetic twin written by
    ``dermlab synth`` (its marker file)."""
    from datamodules.synthetic import DONE_MARKER

    data = record.get("data")
    if not data:
        return data
    return {**data, "synthetic": bool(data.get("root")) and (Path(data["root"]) / DONE_MARKER).is_file()}


def _class_of(class_path: str) -> type:
    import importlib

    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise DataError(f"the checkpoint's model class {class_path} does not exist in this dermlab") from None


def _check_same_network(module: Any, package: Any) -> None:
    """The package's network gives the LightningModule's outputs on a random batch (to 1e-5), with random
    metadata for a metadata network."""
    from lightning_modules.nets.metadata_branch import fed
    from lightning_modules.nets.onnx_export import example_input, random_metadata

    images = torch.rand_like(example_input(package))
    metadata = None if package.metadata_encoding is None else random_metadata(package, len(images))
    if package.prediction["fusion"] == "views":
        images = images.flatten(0, 1)  # the network sees the views as a batch (one view here)
    with torch.inference_mode():
        with fed(module.net, metadata):
            expected = module.net(images)
        with fed(package.net, metadata):
            got = package.net(images)
    if isinstance(expected, tuple):
        expected, got = expected[0], got[0]
    if not torch.allclose(expected.float(), got.float(), atol=1e-5):
        raise DataError("the exported network does not reproduce the checkpoint's outputs; please report this")


def size_text(folder: Path) -> str:
    """``name size`` of each file of ``folder``, e.g. ``model.safetensors 44.8 MB, config.json 1.7 kB``."""
    def size(n: int) -> str:
        return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"

    return ", ".join(f"{p.name} {size(p.stat().st_size)}" for p in sorted(folder.iterdir()) if p.is_file())


def main(argv: list[str] | None = None) -> Path:
    """Run ``dermlab export``; returns the package folder."""
    parser = argparse.ArgumentParser(prog="dermlab export", description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the run folder (runs/<name>, or a grid cell's folder)")
    parser.add_argument("--out", type=Path, required=True, help="the package folder to write")
    parser.add_argument("--checkpoint", default="best", help="best (default), last, or a .ckpt file of the run")
    parser.add_argument("--onnx", action="store_true", help="also write model.onnx (dynamic batch)")
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out folder")
    args = parser.parse_args(argv)
    out = export(args.run, args.out, args.checkpoint, args.onnx, args.force)
    print(f"model package written to {out}: {size_text(out)}")
    return out
