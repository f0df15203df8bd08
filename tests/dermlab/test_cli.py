"""The ``dermlab`` CLI end to end on the tiny synthetic set: fit, resume, test, predict → score, and errors in one
line (no traceback)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from dermlab.challenge.scoring import score
from dermlab.cli import main
from dermlab.commands.trainer import build_cli
from lightning_modules import LesionClassifier
from tests.conftest import tiny_args
from tests.helpers.isic2017_files import first_image


def test_fast_dev_run_through_the_cli(isic2017_root, tmp_path):
    """``--trainer.fast_dev_run true``: one training and one validation batch, then stop, writing no checkpoint."""
    cli = build_cli(["fit", *tiny_args(isic2017_root, tmp_path / "run", "--trainer.fast_dev_run", "true")])
    assert cli.trainer.global_step == 1 and cli.trainer.state.finished
    assert cli.trainer.num_val_batches == [1] and "val/loss" in cli.trainer.callback_metrics
    assert not list((tmp_path / "run").rglob("*.ckpt"))


def test_config_resolves_classes_links_and_run_folder(isic2017_root, tmp_path):
    cli = build_cli([*tiny_args(isic2017_root, tmp_path / "run", "--data.init_args.task", "three_class")],
                    run=False)
    assert cli.model.hparams.num_classes == 3  # linked from the datamodule
    assert cli.model.class_names == ("nevus", "melanoma", "seborrheic_keratosis")
    assert isinstance(cli.model.optimizer(cli.model.parameters()), torch.optim.AdamW)
    checkpoint = next(c for c in cli.trainer.callbacks if type(c).__name__ == "ModelCheckpoint")
    assert checkpoint.dirpath == str(tmp_path / "run" / "checkpoints")
    assert [type(logger).__name__ for logger in cli.trainer.loggers] == ["CSVLogger"]  # W&B disabled


def test_resume_from_last_checkpoint(isic2017_root, tmp_path):
    run = tmp_path / "run"
    args = tiny_args(isic2017_root, run, "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1")
    first = build_cli(["fit", *args, "--trainer.max_epochs", "1"])
    assert first.trainer.global_step == 2 and (run / "checkpoints" / "last.ckpt").exists()
    second = build_cli(["fit", *args, "--trainer.max_epochs", "2", "--ckpt_path", "last"])
    assert second.trainer.current_epoch == 2 and second.trainer.global_step == 4  # continued, not restarted
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert state["global_step"] == 4


def test_test_and_predict_write_a_submission_that_scores(isic2017_root, tmp_path):
    run = tmp_path / "run"
    fitted = build_cli(["fit", *tiny_args(isic2017_root, run, "--trainer.max_epochs", "1")])
    best = fitted.trainer.checkpoint_callback.best_model_path
    reloaded = LesionClassifier.load_from_checkpoint(best).eval()  # rebuilt from the hparams alone
    batch = next(iter(fitted.datamodule.test_dataloader()))
    with torch.no_grad():
        assert torch.allclose(reloaded(batch["image"]), fitted.model.eval()(batch["image"]), atol=1e-5)
    main(["test", *tiny_args(isic2017_root, run), "--ckpt_path", best])
    main(["predict", *tiny_args(isic2017_root, run), "--ckpt_path", best])
    submission = pd.read_csv(run / "submission_test.csv")
    # the official layout's both columns; the unmodelled one holds the stated constant (issue #18, case 7)
    assert list(submission.columns) == ["image_id", "melanoma", "seborrheic_keratosis"] and len(submission) == 12
    assert submission.melanoma.between(0, 1).all() and submission.seborrheic_keratosis.eq(0.5).all()
    result = score(isic2017_root / "ISIC-2017_Test_v2_Part3_GroundTruth.csv", run / "submission_test.csv",
                   ["melanoma"])
    assert result["images"] == 12 and 0 <= result["macro"]["auc"] <= 1
    for name in ("test_roc", "test_confusion", "test_cams", "val_roc"):
        assert (run / "plots" / f"{name}.png").stat().st_size > 1000


def test_three_class_submission_has_both_official_columns(isic2017_root, tmp_path):
    run = tmp_path / "run"
    main(["predict", *tiny_args(isic2017_root, run, "--data.init_args.task", "three_class")])
    submission = pd.read_csv(run / "submission_test.csv")
    assert list(submission.columns) == ["image_id", "melanoma", "seborrheic_keratosis"]
    assert (submission.melanoma + submission.seborrheic_keratosis).le(1 + 1e-6).all()


def test_unknown_wandb_mode_is_a_clear_error(isic2017_root, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["fit", *tiny_args(isic2017_root, tmp_path / "run"), "--run.wandb", "sometimes"])
    assert "--run.wandb must be one of" in capsys.readouterr().err


def test_cli_prints_one_line_not_a_traceback(broken_root, tmp_path, capsys):
    broken = first_image(broken_root, "Validation")  # fast_dev_run validates one batch: all 8 images
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *tiny_args(broken_root, tmp_path / "run", "--trainer.fast_dev_run", "true",
                                "--data.init_args.num_workers", "1")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    error = [line for line in err.strip().splitlines() if not line.startswith(("INFO: ", "WARNING: "))]  # log lines
    assert len(error) == 1 and error[0].startswith("dermlab: error: cannot decode image")
    assert broken.name in error[0] and "Traceback" not in err


def test_the_cli_says_it_in_one_line(synthetic, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *tiny_args(synthetic("isic2018_task3"), tmp_path / "run", "--trainer.fast_dev_run", "true")])
    err = capsys.readouterr().err
    error = [line for line in err.strip().splitlines() if not line.startswith(("INFO: ", "WARNING: "))]  # log lines
    assert exit_info.value.code == 2 and len(error) == 1 and "Traceback" not in err
    assert error[0].startswith("dermlab: error: ground-truth file") and "its config is isic2018_task3" in error[0]
