"""Class activation maps for any timm CNN classifier.

CAM (Zhou et al., CVPR 2016; the ``dds`` paper §2.2) of class c is A_c = Σ_k w_k^c f_k over the
last feature maps f_k, with w^c the classifier row of c. A head that is global average pooling + one
FC (:func:`gap_fc_classifier`: the dds VGG's main head, a timm VGG whose fc6/fc7 were replaced by
average pooling + FC, or a ResNet-type auxiliary branch) gets exactly that, from the FC's weights.
Any other head gets the weights as the spatial mean of ∂y_c/∂f_k (Grad-CAM, Selvaraju et al.,
ICCV 2017), which for GAP + FC is w_k^c / (h·w), so after the [0, 1] normalisation both are the same
map (``tests/lightning_modules/nets/test_cam.py`` checks it on a ResNet, which takes the gradient path).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import ClassifierHead
from timm.models.vgg import VGG
from torch import nn

FLAT_RTOL = 1e-5  # a map whose range is below this fraction of its magnitude is float round-off of a constant


def gap_fc_classifier(model: nn.Module) -> nn.Linear | None:
    """The FC of a GAP + FC head, or None for any other head.

    ``model`` is a classifier (or a :class:`~lightning_modules.nets.deep_supervision.DeepSupervision` around one,
    read through its ``base``) that is a timm VGG whose ``pre_logits`` is the identity and whose ``head`` is a
    ``ClassifierHead`` with average pooling and a linear ``fc`` (the dds VGG head), or itself an auxiliary
    ``Sequential(AdaptiveAvgPool2d(1), Flatten, Linear)`` (the ResNet-type branch).
    """
    if isinstance(model, nn.Sequential):
        parts = list(model)
        pool_is_global = isinstance(parts[0], nn.AdaptiveAvgPool2d) and parts[0].output_size in (1, (1, 1))
        return parts[2] if (len(parts) == 3 and pool_is_global and isinstance(parts[1], nn.Flatten)
                            and isinstance(parts[2], nn.Linear)) else None
    base = getattr(model, "base", None)
    net = base if isinstance(base, nn.Module) else model
    head = getattr(net, "head", None)
    if (not isinstance(net, VGG) or not isinstance(net.pre_logits, nn.Identity) or not isinstance(head, ClassifierHead)
            or getattr(head.global_pool, "pool_type", None) != "avg" or not isinstance(head.fc, nn.Linear)):
        return None
    return head.fc


def class_activation_maps(model: nn.Module, images: torch.Tensor, classes: torch.Tensor | None = None,
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """CAMs of ``classes`` (default: the predicted class), upsampled bicubically to the input size.

    ``model`` must offer timm's ``forward_features`` / ``forward_head``. Returns maps of shape
    (B, H, W) normalised to [0, 1] per image, and the classes they explain. A GAP + FC head's map is
    Σ_k w_k^c f_k from its FC weights; any other head's is Grad-CAM (module docstring).
    """
    linear = gap_fc_classifier(model)
    if linear is not None:
        with torch.no_grad():
            features = model.forward_features(images)
            return activation_maps(features, model.forward_head(features), images.shape[-2:], classes, linear)
    with torch.inference_mode(False), torch.enable_grad():
        images = images.clone()  # inference-mode tensors cannot enter autograd
        features = model.forward_features(images)
        return activation_maps(features, model.forward_head(features), images.shape[-2:], classes)


def activation_maps(features: torch.Tensor, logits: torch.Tensor, size: tuple[int, int],
                    classes: torch.Tensor | None = None, linear: nn.Linear | None = None,
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """CAMs over ``features`` (B, K, h, w) of the classes scored by ``logits`` (B, classes), each scaled to [0, 1].

    With ``linear`` (the FC of a GAP + FC head over ``features``) the map is Σ_k w_k^c f_k, the paper's A_c;
    without, the weights are the spatial mean of ∂logit_c/∂f_k (``logits`` must then be computed from
    ``features`` with autograd on). A constant map (e.g. a tiny untrained network whose features are all zero, or a
    1×1 feature map, up to float round-off) comes back as all ones, so the object box of
    :mod:`lightning_modules.nets.object_size` is then the whole image instead of an error.

    Shared by the main head and any auxiliary head reading an inner layer (dds Fig. 4).
    """
    classes = logits.argmax(1) if classes is None else classes.clone()
    if linear is not None:
        weights = linear.weight.detach()[classes.to(linear.weight.device)][:, :, None, None]  # (B, K, 1, 1) = w^c
    else:
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
