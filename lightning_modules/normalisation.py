"""The input normalisation a network was pretrained with, taken from its timm ``pretrained_cfg``.

Each timm model carries the mean / std its weights expect: ImageNet's for most, 0.5 / 0.5 for Inception-v3 and
the TensorFlow ports (``tf_efficientnet_lite0``, ``inception_v3.tf_in1k``). Images normalised with another
model's statistics are shifted by up to ~0.1 and scaled by up to ~2.2× before the first convolution, which a
fine-tuned network partly learns away and a frozen or briefly trained one does not. The datamodule asks the
attached LightningModule (:meth:`InputNormalisation.input_normalisation`) and normalises with that, so the
statistics always follow the backbone (:meth:`datamodules.base.SkinDataModule.setup`).
"""

from __future__ import annotations

from torch import nn

from datamodules.transforms import IMAGENET, Normalisation


def backbone_normalisation(net: nn.Module) -> Normalisation:
    """The (mean, std) of the first submodule of ``net`` (itself included) whose ``pretrained_cfg`` names them.

    Networks built by this suite (``arl_cnn*``, ``ran*``, the segmentation encoders, the CBAM VGGs) register a
    ``pretrained_cfg`` like every timm model. A network without one (a plain ``nn.Module``) gets ImageNet's
    statistics, the convention of torchvision and of most of timm.
    """
    for module in net.modules():
        config = getattr(module, "pretrained_cfg", None)
        if isinstance(config, dict) and config.get("mean") is not None and config.get("std") is not None:
            return Normalisation(tuple(float(v) for v in config["mean"]), tuple(float(v) for v in config["std"]))
    return IMAGENET


class InputNormalisation:
    """Mixin for the suite's LightningModules: ``input_normalisation`` is the mean / std of ``self.net``'s
    pretrained weights (see :func:`backbone_normalisation`)."""

    @property
    def input_normalisation(self) -> Normalisation:
        """The (mean, std) the data module normalises this module's images with (the backbone's pretrained ones)."""
        return backbone_normalisation(self.net)
