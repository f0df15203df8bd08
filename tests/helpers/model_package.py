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
