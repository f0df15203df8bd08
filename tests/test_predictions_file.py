"""The per-image test predictions file (dermlab.files.predictions) and what a classifier's test run writes."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from dermlab.commands.trainer import build_cli
from dermlab.errors import DataError
from dermlab.files.predictions import read_predictions, write_predictions
from dermlab.stats.calibration import expected_calibration_error, tempered
from lightning_modules.base import LesionClassifier
from tests.conftest import tiny_args


def test_write_then_read_round_trips_the_float32_values(tmp_path):
    probabilities = torch.tensor([[0.123456789, 0.876543211], [1e-9, 1.0], [0.5, 0.5]]).numpy()
    path = write_predictions(tmp_path / "p.csv", ["ISIC_1", "ISIC_2", "ISIC_3"], [0, 1, 1], probabilities,
                             ["benign", "melanoma"], [True, True, False])
    assert path.read_text().splitlines()[0] == "image,target,benign,melanoma,scored"
    frame = read_predictions(path, ["benign", "melanoma"])
    assert frame.image.tolist() == ["ISIC_1", "ISIC_2", "ISIC_3"] and frame.scored.tolist() == [1, 1, 0]
    assert (frame[["benign", "melanoma"]].to_numpy().astype("float32") == probabilities).all()  # exact


def test_reader_names_the_bad_row(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("image,target,a,b,scored\nx,0,0.4,0.6,1\ny,2,0.5,0.5,1\n")
    with pytest.raises(DataError, match=r"row 3 \(image y\): target 2"):
        read_predictions(path)
    path.write_text("image,target,a,b,scored\nx,0,0.4,1.6,1\n")
    with pytest.raises(DataError, match=r"row 2 \(image x\): probabilities"):
        read_predictions(path)
    path.write_text("image,target,a,b,scored\nx,0,0.4,0.6,1\n")
    with pytest.raises(DataError, match="expected"):
        read_predictions(path, ["a", "c"])
    with pytest.raises(DataError, match="no predictions file"):
        read_predictions(tmp_path / "missing.csv")


def test_writer_refuses_clashing_names_and_repeats(tmp_path):
    with pytest.raises(ValueError, match="clash"):
        write_predictions(tmp_path / "p.csv", ["a"], [0], [[0.5, 0.5]], ["target", "b"], [True])
    with pytest.raises(ValueError, match="repeated image"):
        write_predictions(tmp_path / "p.csv", ["a", "a"], [0, 0], [[0.5, 0.5]] * 2, ["x", "y"], [True] * 2)


def test_evaluation_step_keeps_every_image_with_its_scored_flag():
    """The weight-0 image is in the predictions (scored 0) but not in the metrics."""
    module = LesionClassifier(backbone="test_resnet", num_classes=3, monitor=None)
    probabilities = torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    batch = {"image": torch.zeros(3, 3, 8, 8), "label": torch.tensor([0, 1, 0]), "weight": torch.ones(3),
             "scored": torch.tensor([True, True, False]), "image_id": ["a", "b", "c"]}
    module._evaluation_step(batch, "test", probabilities)
    rows = module.gathered_predictions("test")
    assert rows.ids == ["a", "b", "c"] and rows.scored.tolist() == [True, True, False]
    assert torch.equal(rows.probabilities, probabilities)
    assert module.metrics["test"].compute()["accuracy"] == pytest.approx(1.0)  # the wrong row c is unscored


@pytest.mark.slow
def test_test_run_writes_predictions_that_reproduce_the_logged_auc_and_temperature_is_fitted_on_val(
        isic2017_root, tmp_path):
    run = tmp_path / "run"
    args = tiny_args(isic2017_root, run, "--model.init_args.calibrate", "temperature")
    fitted = build_cli(["fit", *args, "--trainer.max_epochs", "1"])
    best = fitted.trainer.checkpoint_callback.best_model_path
    temperature = float(torch.load(best, weights_only=False)["state_dict"]["temperature"])
    assert temperature != 1.0 and fitted.trainer.callback_metrics["val/temperature"] == pytest.approx(temperature)
    assert (run / "plots" / "val_reliability.png").stat().st_size > 1000

    tested = build_cli(["test", *args, "--ckpt_path", best])
    assert float(tested.model.temperature) == temperature  # loaded from the checkpoint; the test set left it alone
    frame = read_predictions(run / "predictions_test.csv", tested.model.class_names)
    assert len(frame) == 12 and frame.scored.eq(1).all() and frame.image.is_unique
    auc = roc_auc_score(frame.target, frame[tested.model.class_names[1]])
    assert auc == pytest.approx(float(tested.trainer.callback_metrics["test/auc"]), abs=1e-6)
    assert (run / "plots" / "test_reliability.png").stat().st_size > 1000
    # the reliability diagram's ECE (computed from these rows) is the logged `ece` metric
    probabilities = torch.tensor(frame[list(tested.model.class_names)].to_numpy(), dtype=torch.float32)
    ece = expected_calibration_error(probabilities, torch.tensor(frame.target.to_numpy()))
    assert ece == pytest.approx(float(tested.trainer.callback_metrics["test/ece"]), abs=1e-6)

    # the same checkpoint uncalibrated: same AUC and argmax, and the calibrated file is softmax(log p / T)
    calibrated = frame
    uncalibrated_run = tmp_path / "uncalibrated"
    plain = build_cli(["test", *tiny_args(isic2017_root, uncalibrated_run, "--model.init_args.calibrate", "none"),
                       "--ckpt_path", best])
    plain_frame = pd.read_csv(uncalibrated_run / "predictions_test.csv", dtype={"image": str})
    assert plain_frame.image.tolist() == calibrated.image.tolist()
    names = list(plain.model.class_names)
    assert float(plain.trainer.callback_metrics["test/auc"]) == pytest.approx(auc, abs=1e-6)
    expected = tempered(torch.tensor(plain_frame[names].to_numpy(), dtype=torch.float32), temperature)
    assert torch.allclose(torch.tensor(calibrated[names].to_numpy(), dtype=torch.float32), expected, atol=1e-6)
    assert (plain_frame[names].to_numpy().argmax(1) == calibrated[names].to_numpy().argmax(1)).all()

    # evaluation-time options are the test command's own, not the checkpoint's (Lightning's rule for the rest)
    with_tta = build_cli(["test", *tiny_args(isic2017_root, tmp_path / "tta", "--model.init_args.tta", "dihedral"),
                          "--ckpt_path", best])
    assert with_tta.model.hparams.tta == "dihedral" and with_tta.model.hparams.calibrate == "none"
    assert len(read_predictions(tmp_path / "tta" / "predictions_test.csv")) == 12
