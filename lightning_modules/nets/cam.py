"""Class activation maps for any timm CNN classifier.

CAM (Zhou et al., CVPR 2016; the ``dds`` paper §2.2) of class c is A_c = Σ_k w_k^c f_k over the
last feature maps f_k, with w^c the classifier row of c. Computing the weights as the spatial
mean of ∂y_c/∂f_k (Grad-CAM, Selvaraju et al., ICCV 2017) gives exactly w_k^c / (h·w) when the
head is global-average-pooling + linear, so after the [0, 1] normalisation both are the same
map; the gradient form also works for heads that are not GAP + FC.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FLAT_RTOL = 1e-5  # a map whose range is below this fraction of its magnitude is float round-off of a constant


def class_activation_maps(model: nn.Module, images: torch.Tensor, classes: torch.Tensor | None = None,
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """CAMs of ``classes`` (default: the predicted class), upsampled bicubically to the input size.

    ``model`` must offer timm's ``forward_features`` / ``forward_head``. Returns maps of shape
    (B, H, W) normalised to [0, 1] per image, and the classes they explain.
    """
    with torch.inference_mode(False), torch.enable_grad():
        images = images.clone()  # inference-mode tensors cannot enter autograd
        features = model.forward_features(images)
        return activation_maps(features, model.forward_head(features), images.shape[-2:], classes)


def activation_maps(features: torch.Tensor, logits: torch.Tensor, size: tuple[int, int],
                    classes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """CAMs over ``features`` (B, K, h, w) of the classes scored by ``logits`` (computed from them), each scaled to
    [0, 1]; a constant map (e.g. a tiny untrained network whose features are all zero, or a 1×1 feature map, up to
    float round-off) comes back as all ones, so
    the object box of :mod:`lightning_modules.nets.object_size` is then the whole image instead of an error.

    Shared by the main head and any auxiliary head reading an inner layer (dds Fig. 4).
    """
    classes = logits.argmax(1) if classes is None else classes.clone()
    score = logits.gather(1, classes[:, None]).sum()
    (gradients,) = torch.autograd.grad(score, features)
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    cams = (weights * features.detach()).sum(1, keepdim=True)
    cams = F.interpolate(cams, size=tuple(size), mode="bicubic", align_corners=False)[:, 0]
    low = cams.flatten(1).min(1).values[:, None, None]
    high = cams.flatten(1).max(1).values[:, None, None]
    # A constant map locates nothing: every pixel is at its maximum, so it is all 1. "Constant" is relative to the
    # map's size: a 1×1 feature map (a 32 px image through a stride-32 net) upsamples to a constant plus float
    # round-off (~1e-7 of its value), which the [0, 1] scaling would otherwise blow up into a random pattern.
    flat = (high - low) <= FLAT_RTOL * torch.maximum(high.abs(), low.abs()).clamp_min(1e-12)
    return torch.where(flat, torch.ones_like(cams), (cams - low) / (high - low).clamp_min(1e-12)), classes.detach()
