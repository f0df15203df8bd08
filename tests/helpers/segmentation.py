"""A tiny U-Net and a synthetic lesion picture for the segmentation tests."""

from __future__ import annotations

import numpy as np

TINY_UNET = {"architecture": "unet", "encoder": "vgg_tiny_bn", "se_blocks": True,
             "decoder_channels": [16, 8, 8, 8, 8]}


def lesion_picture(height: int = 48, width: int = 64):
    yy, xx = np.mgrid[:height, :width]
    disc = (yy - height // 2) ** 2 + (xx - width // 2) ** 2 < (height // 3) ** 2
    image = np.where(disc[..., None], [110, 60, 40], [215, 175, 150]).astype(np.uint8)
    return image, disc
