"""``lightning_modules/base.py``: what a classifier's evaluation keeps (every image, with its scored flag), its
``tta: dihedral`` option, and what its test run writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score
from torch import nn

from dermlab.commands.trainer import build_cli
from dermlab.files.predictions import read_predictions
from dermlab.stats.calibration import expected_calibration_error, tempered
from lightning_modules.base import LesionClassifier
from tests.conftest import tiny_args


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


def test_in_run_metrics_leave_out_the_weight_0_image_as_the_official_scorer(tmp_path):
    """The dataset marks a score-weight-0 image (``scored`` False) and the module's test metrics leave it out,
    as ``isic-challenge-scoring`` does: three right rows and one wrong unscored row give balanced accuracy 1."""
    from datamodules.datasets.image_dataset import ImageTableDataset
    from datamodules.datasets.table import ImageTable
    from datamodules.transforms import build_transforms
    from lightning_modules.base import LesionClassifier

    for name in ("a", "b"):
        Image.new("RGB", (8, 8)).save(tmp_path / f"{name}.jpg")
    table = ImageTable(ids=["a", "b"], paths=[tmp_path / "a.jpg", tmp_path / "b.jpg"], labels=np.array([0, 1]),
                       source=tmp_path, extra={"score_weight": [1.0, 0.0]})
    dataset = ImageTableDataset(table, build_transforms("none", 8, train=False))
    assert [dataset[i]["scored"] for i in range(2)] == [True, False]

    module = LesionClassifier(backbone="test_resnet", num_classes=3, monitor=None)
    probabilities = torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.1, 0.8, 0.1]])
    batch = {"image": torch.zeros(4, 3, 8, 8), "label": torch.tensor([0, 1, 2, 0]), "weight": torch.ones(4),
             "scored": torch.tensor([True, True, True, False])}
    module._evaluation_step(batch, "test", probabilities)
    assert module.metrics["test"].compute()["balanced_accuracy"] == pytest.approx(1.0)
    module.metrics["test"].reset()
    module._evaluation_step({k: v for k, v in batch.items() if k != "scored"}, "test", probabilities)
    assert module.metrics["test"].compute()["balanced_accuracy"] == pytest.approx((0.5 + 1 + 1) / 3)


class PooledLinear(nn.Module):
    """Global average pooling then a linear layer: unchanged by any flip or transpose of the input."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x.mean((-2, -1)))


class FirstPixels(nn.Module):
    """Logits = a linear map of the top-left 2×2 pixels of channel 0: every flip changes them."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x[:, 0, :2, :2].flatten(1))


class NetClassifier(LesionClassifier):
    def __init__(self, net_class, **kwargs):
        self.net_class = net_class
        super().__init__(backbone="test_resnet", num_classes=2, monitor=None, **kwargs)

    def build_net(self):
        return self.net_class()


def test_dihedral_tta_equals_plain_evaluation_on_an_invariant_model():
    torch.manual_seed(0)
    plain = NetClassifier(PooledLinear).eval()
    tta = NetClassifier(PooledLinear, tta="dihedral").eval()
    tta.load_state_dict(plain.state_dict())
    images = torch.randn(4, 3, 6, 6)
    for split in ("val", "test", "predict"):
        assert torch.allclose(tta.evaluated_probabilities(images, split), plain.evaluated_probabilities(images, split),
                              atol=1e-6)
    views = torch.randn(2, 3, 3, 6, 6)  # (B, V, C, H, W): still the view average
    assert torch.allclose(tta.evaluated_probabilities(views, "test"), plain.probabilities(views), atol=1e-6)


def test_dihedral_tta_is_the_mean_of_the_eight_hand_transformed_predictions():
    torch.manual_seed(0)
    module = NetClassifier(FirstPixels, tta="dihedral").eval()
    images = torch.randn(3, 3, 5, 5)
    # the 8 elements of D4 written with torch's own ops, independently of dermlab.imaging.tta
    by_hand = [images, images.flip(-1), images.flip(-2), images.rot90(2, (-2, -1)),
               images.transpose(-2, -1), images.rot90(-1, (-2, -1)), images.rot90(1, (-2, -1)),
               images.rot90(2, (-2, -1)).transpose(-2, -1)]
    with torch.no_grad():
        expected = torch.stack([module.net(x).softmax(1) for x in by_hand]).mean(0)
        plain = module.net(images).softmax(1)
        got = module.evaluated_probabilities(images, "test")
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(got, plain, atol=1e-3)  # the model is not invariant: TTA changed something
    assert torch.allclose(got.sum(1), torch.ones(3))
    # and it is what predict_step returns
    with torch.no_grad():
        out = module.predict_step({"image": images, "image_id": ["a", "b", "c"]}, 0)
    assert torch.allclose(out["probabilities"], expected, atol=1e-6)


def test_unknown_tta_is_refused():
    with pytest.raises(ValueError, match="tta"):
        LesionClassifier(backbone="test_resnet", tta="flips")
