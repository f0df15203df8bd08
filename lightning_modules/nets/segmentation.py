"""Segmentation networks of the ``isic2018`` paper (002) §1, built on segmentation-models-pytorch (smp).

* **SE-VGG U-Net** (the SegAN segmentor): smp's U-Net over a VGG19(-BN) encoder, with a squeeze-and-excitation
  block (timm's ``SEModule``, Hu et al.) on the last activation of every VGG stage — "we applied SE blocks to
  the feature extractor". The SE output is both the skip feature and the next stage's input, as in SENets.
* **DeepLabV3+** (the paper's baseline, trained "from scratch"): smp's DeepLabV3+.

Both return one logit map per class at the input's resolution; inputs of any size are reflect-padded to the
encoder's stride and the output cropped back (:class:`StridePadded`), so the paper's 336 × 296 evaluation
input works although 296 is not a multiple of 32.

Pretrained encoder weights come from a local file (``pretrained_weights``: torchvision's / timm's VGG19-BN
or ResNet state dict, ``.pth`` or ``.safetensors``); the classifier keys are dropped, and without a file the
encoder starts from random init with a log line saying so. ``vgg_tiny_bn`` (VGG-A at 1/8 width) is the CPU
stand-in the synthetic grids use.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from segmentation_models_pytorch.encoders import encoders as smp_encoders
from segmentation_models_pytorch.encoders.vgg import VGGEncoder
from timm.layers import SEModule
from torch import nn
from typing_extensions import override

from dermlab.errors import DataError

log = logging.getLogger(__name__)
#: The segmentation network (``unet``, the SE-VGG U-Net, or ``deeplabv3plus``, see above).
Architecture = Literal["unet", "deeplabv3plus"]

# A VGG-A layout at 1/8 width: the synthetic CPU stand-in for VGG19 (same stage structure, 61 k parameters).
TINY_VGG = [8, "M", 16, "M", 32, 32, "M", 64, 64, "M", 64, 64, "M"]
smp_encoders.setdefault("vgg_tiny_bn", {"encoder": VGGEncoder, "pretrained_settings": {},
                                        "params": {"out_channels": [8, 16, 32, 64, 64, 64], "config": TINY_VGG,
                                                   "batch_norm": True}})


class StridePadded(nn.Module):
    """Runs ``net`` on the input reflect-padded to a multiple of ``stride`` and crops its output back."""

    def __init__(self, net: nn.Module, stride: int):
        super().__init__()
        self.net, self.stride = net, stride

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % self.stride, -width % self.stride
        if pad_h or pad_w:
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        out = self.net(x)
        if isinstance(out, tuple):  # (masks, image-level logits) with a presence head
            return out[0][..., :height, :width], out[1]
        return out[..., :height, :width]


def add_se_blocks(encoder: VGGEncoder, reduction: int = 16) -> list[int]:
    """Put an SE block after the last ReLU of each VGG stage (before its max-pool); returns the channels."""
    channels, last_conv = [], None
    for index, module in enumerate(encoder.features):
        if isinstance(module, nn.Conv2d):
            last_conv = module.out_channels
        if index in encoder._out_indexes and isinstance(module, nn.ReLU):
            encoder.features[index] = nn.Sequential(module, SEModule(last_conv, rd_ratio=1.0 / reduction))
            channels.append(last_conv)
    return channels


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a local ``.safetensors`` / ``.pth`` file (never unpickling objects)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"pretrained weights '{path}' do not exist; pass a local .safetensors/.pth file "
                        "(e.g. torchvision's vgg19_bn-c79401a0.pth) or null for random init.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def load_encoder_weights(encoder: nn.Module, path: str | Path) -> None:
    """Load ImageNet classifier weights into an smp encoder; every encoder weight must be found in the file."""
    state = read_state_dict(path)
    for prefix in ("module.", "encoder.", "backbone."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    own = encoder.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing = [k for k in own if k not in usable and not k.endswith("num_batches_tracked")]
    if missing:
        raise DataError(f"weights '{path}' do not fit the encoder: {len(missing)} of its tensors are missing or of "
                        f"another shape (e.g. {missing[0]}); give the ImageNet weights of the same architecture.")
    encoder.load_state_dict(usable, strict=False)
    log.info("segmentation encoder: loaded pretrained weights from %s", path)


def build_segmentor(architecture: Architecture = "unet", encoder: str = "vgg19_bn", classes: int = 1,
                    pretrained_weights: str | None = None, se_blocks: bool = True,
                    decoder_channels: tuple[int, ...] | int | None = None, head_kernel: int = 3,
                    presence_head: bool = False) -> StridePadded:
    """A segmentation network with ``classes`` logit maps; ``se_blocks`` applies to VGG encoders.

    ``decoder_channels``: the U-Net's five decoder widths (smp default 256…16) or DeepLabV3+'s ASPP / decoder
    width (default 256); smaller values make the CPU stand-ins. ``head_kernel``: side of the final convolution
    (smp's 3, or the ``isic2018`` task 2 "1×1×5" filter). ``presence_head``: also an FC layer on the encoder's
    deepest features (global average pooled) giving one image-level logit per class — the network then returns
    (mask logits, presence logits).
    """
    extra: dict = {"aux_params": {"classes": classes, "pooling": "avg", "dropout": None}} if presence_head else {}
    if architecture == "unet":
        extra |= {"decoder_channels": tuple(decoder_channels)} if decoder_channels else {}
        net = smp.Unet(encoder_name=encoder, encoder_weights=None, classes=classes, **extra)
    elif architecture == "deeplabv3plus":
        extra |= {"decoder_channels": int(decoder_channels)} if decoder_channels else {}
        net = smp.DeepLabV3Plus(encoder_name=encoder, encoder_weights=None, classes=classes, **extra)
    else:
        raise ValueError(f"architecture must be 'unet' or 'deeplabv3plus', got {architecture!r}")
    if head_kernel != 3:
        head = net.segmentation_head[0]
        net.segmentation_head[0] = nn.Conv2d(head.in_channels, classes, head_kernel, padding=head_kernel // 2)
    if pretrained_weights:
        load_encoder_weights(net.encoder, pretrained_weights)
    else:
        log.warning("segmentation encoder %s: no pretrained_weights given, starting from RANDOM initialisation",
                    encoder)
    if se_blocks:
        if not isinstance(net.encoder, VGGEncoder):
            raise ValueError(f"se_blocks are placed on VGG stages; encoder {encoder!r} is not a VGG "
                             "(set se_blocks: false)")
        add_se_blocks(net.encoder)
    return StridePadded(net, net.encoder.output_stride)


def encoder_of(segmentor: StridePadded) -> nn.Module:
    """The encoder (feature extractor) of a segmentor from :func:`build_segmentor`, SE blocks included."""
    return segmentor.net.encoder


def backbone_modules(encoder: nn.Module) -> list[nn.Module]:
    """The encoder's own layers — the pre-trained VGG / ResNet — without the SE blocks that
    :func:`add_se_blocks` inserted (those start from random init and belong to "the other parts").

    §1: "we first fix the weights of the pre-trained VGG net for 50 epochs and only train other parts of the
    segmentor": these are the modules to fix. Returns the leaf modules (convolutions, BatchNorms, ReLUs, pools)
    outside every ``SEModule``, in order.
    """
    inside_se = {id(m) for se in encoder.modules() if isinstance(se, SEModule) for m in se.modules()}
    return [m for m in encoder.modules() if not list(m.children()) and id(m) not in inside_se]
