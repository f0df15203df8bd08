"""A tiny trained and tested classifier run, and its exported model package, for the export / classify tests."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import tiny_args


def trained_and_tested(root: Path, run: Path, *extra: str) -> Path:
    """``dermlab fit`` for 2 epochs on the tiny ISIC 2017 twin ``root`` (``tiny_args``: test_resnet, 32 px), then
    ``dermlab test`` of ``last.ckpt`` (which writes ``predictions_test.csv`` and ``predictions_test.json``). Returns
    the run folder."""
    from dermlab.cli import main

    arguments = tiny_args(root, run, "--trainer.max_epochs", "2", *extra)
    main(["fit", *arguments])
    main(["test", *arguments, "--ckpt_path", str(run / "checkpoints" / "last.ckpt")])
    return run


def shared_package(root: Path, base: Path) -> tuple[Path, Path]:
    """(run, package): :func:`trained_and_tested` on ``root``, exported with ``--checkpoint last --onnx``, made
    once per test session under ``base`` (pytest's base temporary folder, which every xdist worker shares: the first
    worker makes it under a file lock, the others wait and read it), so ``make test`` trains it once."""
    from filelock import FileLock

    from dermlab.commands.export import main

    folder = base / "export-run"
    with FileLock(str(base / "export-run.lock")):
        if not (folder / "done").is_file():
            run = trained_and_tested(root, folder / "run")
            main([str(run), "--out", str(folder / "pkg"), "--checkpoint", "last", "--onnx"])
            (folder / "done").write_text("")
    return folder / "run", folder / "pkg"


METADATA_RUN = """\
seed_everything: 0
trainer: {{accelerator: cpu, devices: 1, max_epochs: 1, log_every_n_steps: 1,
          callbacks: {callbacks}}}
data:
  class_path: datamodules.HAM10000DataModule
  init_args: {{root: '{root}', image_size: 32, batch_size: 8, num_workers: 0}}
model:
  class_path: lightning_modules.LesionClassifier
  init_args: {{backbone: test_resnet, pretrained_weights: null}}
"""


def shared_metadata_package(root: Path, base: Path) -> tuple[Path, Path]:
    """(run, package) of a classifier with the patient-metadata branch (``-c experiments/base/metadata.yaml``: age,
    sex, localization) trained for one epoch on the tiny HAM10000 twin ``root`` (test_resnet, 32 px), tested with
    ``last.ckpt`` and exported with ``--onnx``; made once per test session under ``base`` behind a file lock, as
    :func:`shared_package`."""
    from filelock import FileLock

    from dermlab.cli import main as cli
    from dermlab.commands.export import main as export
    from tests.conftest import REPO

    folder = base / "export-metadata-run"
    with FileLock(str(base / "export-metadata-run.lock")):
        if not (folder / "done").is_file():
            folder.mkdir(parents=True, exist_ok=True)
            config = folder / "run.yaml"
            callbacks = REPO / "experiments" / "base" / "callbacks" / "default.yaml"
            config.write_text(METADATA_RUN.format(root=root, callbacks=callbacks))
            arguments = ["-c", str(config), "-c", str(REPO / "experiments/base/metadata.yaml"), "--run.wandb",
                         "disabled", "--trainer.default_root_dir", str(folder / "run")]
            cli(["fit", *arguments])
            cli(["test", *arguments, "--ckpt_path", str(folder / "run" / "checkpoints" / "last.ckpt")])
            export([str(folder / "run"), "--out", str(folder / "pkg"), "--checkpoint", "last", "--onnx"])
            (folder / "done").write_text("")
    return folder / "run", folder / "pkg"
