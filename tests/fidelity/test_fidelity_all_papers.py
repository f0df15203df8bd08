"""#17, all papers: images are normalised with the backbone's own pretrained statistics (timm ``pretrained_cfg``)."""

from __future__ import annotations

import lightning as L
import pytest
import timm
import torch
from torch import nn

from datamodules import ISIC2017DataModule
from datamodules.transforms import IMAGENET, Normalisation, denormalise, renormalise
from lightning_modules.base import LesionClassifier
from lightning_modules.normalisation import backbone_normalisation
from lightning_modules.segmentation import LesionSegmenter

HALF = Normalisation((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


@pytest.mark.parametrize(("name", "expected"), [("resnet18", IMAGENET), ("inception_v3", HALF),
                                                ("tf_efficientnet_lite0", HALF), ("efficientnet_lite0", IMAGENET)])
def test_each_timm_backbone_brings_its_own_mean_and_std(name, expected):
    with torch.device("meta"):  # only the config matters: no weights are allocated
        net = timm.create_model(name, pretrained=False, num_classes=2)
    assert backbone_normalisation(net) == expected


def test_a_network_without_pretrained_cfg_gets_imagenet_statistics():
    assert backbone_normalisation(nn.Sequential(nn.Conv2d(3, 4, 3))) == IMAGENET


def test_every_suite_module_reports_its_backbone_statistics():
    half = {"pretrained_cfg_overlay": {"mean": HALF.mean, "std": HALF.std}}
    classifier = LesionClassifier(backbone="test_resnet", num_classes=2, backbone_args=half)
    assert classifier.input_normalisation == HALF
    assert LesionClassifier(backbone="resnet18", num_classes=2).input_normalisation == IMAGENET
    segmenter = LesionSegmenter(architecture="unet", encoder="resnet18", se_blocks=False)
    assert segmenter.input_normalisation == IMAGENET


def test_renormalise_maps_one_convention_onto_the_other():
    pixels = torch.tensor([0.0, 0.25, 1.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)  # R, G, B in [0, 1]
    in_imagenet = (pixels - torch.tensor(IMAGENET.mean).view(1, 3, 1, 1)) / torch.tensor(IMAGENET.std).view(1, 3, 1, 1)
    # (0 − 0.5) / 0.5 = −1, (0.25 − 0.5) / 0.5 = −0.5, (1 − 0.5) / 0.5 = 1
    expected = torch.tensor([-1.0, -0.5, 1.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    assert torch.allclose(renormalise(in_imagenet, IMAGENET, HALF), expected, atol=1e-6)
    assert torch.allclose(torch.as_tensor(denormalise(expected, HALF)).permute(0, 3, 1, 2), pixels, atol=1e-6)


def test_the_datamodule_normalises_with_the_attached_models_statistics(isic2017_root, tmp_path):
    """Under a Trainer the datamodule follows the model: a 0.5 / 0.5 backbone gets (x − 0.5) / 0.5 inputs."""
    def datamodule():
        return ISIC2017DataModule(str(isic2017_root), image_size=32, batch_size=4, num_workers=0,
                                  audit_pixels=False)

    half = {"pretrained_cfg_overlay": {"mean": HALF.mean, "std": HALF.std}}
    model = LesionClassifier(backbone="test_resnet", num_classes=2, backbone_args=half, monitor=None)
    data = datamodule()
    trainer = L.Trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path)
    trainer.fit(model, datamodule=data)
    assert data.normalisation == HALF

    reference = datamodule()  # no model attached: ImageNet statistics
    reference.setup("fit")
    followed, imagenet = data.dataset("val")[0]["image"], reference.dataset("val")[0]["image"]
    pixels = imagenet * torch.tensor(IMAGENET.std).view(3, 1, 1) + torch.tensor(IMAGENET.mean).view(3, 1, 1)
    assert torch.allclose(followed, (pixels - 0.5) / 0.5, atol=1e-4)
    assert not torch.allclose(followed, imagenet, atol=1e-2)
