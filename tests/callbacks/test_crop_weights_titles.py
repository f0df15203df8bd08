"""The crop-weights figure titles each image with its true class in the test split's classes (another data set's
evaluation classes under ``test_on``) and its predicted class in the model's own."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

import callbacks.crop_weights as crop_weights_module
from callbacks.crop_weights import CropWeightsFigure
from datamodules.transforms import IMAGENET


class WeighingNet(nn.Module):
    def crop_weights(self) -> torch.Tensor:
        return torch.full((2, 4), 0.25)


class ModelTestedElsewhere(nn.Module):
    """A model trained on four classes, tested on a data set scored in two (benign, malignant)."""

    class_names = ("MEL", "NV", "BCC", "BKL")
    device = torch.device("cpu")

    def __init__(self) -> None:
        super().__init__()
        self.net = WeighingNet()

    def split_class_names(self, split: str) -> tuple[str, ...]:
        return ("benign", "malignant") if split == "test" else self.class_names

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        return torch.tensor([[0.1, 0.2, 0.6, 0.1], [0.7, 0.1, 0.1, 0.1]])[: len(images)]


class CropData:
    eval_crops, crop_size, normalisation = 4, 8, IMAGENET

    def dataset(self, split: str, views: int | None = None) -> list[dict]:
        image = torch.zeros(3, 16, 16) if views == 1 else torch.zeros(4, 3, 8, 8)
        return [{"image": image, "label": label} for label in (0, 1)]


def test_titles_name_the_truth_in_the_test_classes_and_the_prediction_in_the_models(monkeypatch):
    drawn = {}
    monkeypatch.setattr(crop_weights_module, "crop_weights",
                        lambda *args, **kwargs: drawn.setdefault("titles", args[4]))
    monkeypatch.setattr(crop_weights_module, "save_figure", lambda *args: None)
    module = ModelTestedElsewhere().train()
    trainer = SimpleNamespace(is_global_zero=True, datamodule=CropData())
    CropWeightsFigure(n_images=2).on_test_end(trainer, module)
    assert drawn["titles"] == ["T:benign P:BCC", "T:malignant P:MEL"]
    assert module.net.training  # the net is back in the mode it was in
