"""timm backbones with local pretrained weights (no hub access at run time).

``pretrained_weights`` is a local ``.safetensors`` or torch state-dict file. timm reads it
through ``pretrained_cfg_overlay={"file": path}`` (with ``torch.load(weights_only=True)``, never
unpickling objects) and re-initialises the classifier when the number of classes differs, so
ImageNet weights fine-tune to any task. Without a path the network starts from random init and
one log line says so.
"""

from __future__ import annotations

import logging
from pathlib import Path

import timm
from torch import nn

from dermlab.errors import DataError

log = logging.getLogger(__name__)


def create_backbone(name: str, num_classes: int, pretrained_weights: str | None = None,
                    drop_rate: float = 0.0) -> nn.Module:
    """A timm classifier ``name`` with ``num_classes`` outputs, weights from a local file or random."""
    if not pretrained_weights:
        log.warning("backbone %s: no pretrained_weights given, starting from RANDOM initialisation", name)
        return timm.create_model(name, pretrained=False, num_classes=num_classes, drop_rate=drop_rate)
    path = Path(pretrained_weights).expanduser()
    if not path.is_file():
        raise DataError(f"pretrained weights '{path}' do not exist; pass a local .safetensors/.pth file "
                        "(e.g. timm's model.safetensors for this backbone) or null for random init.")
    try:
        model = timm.create_model(name, pretrained=True, num_classes=num_classes, drop_rate=drop_rate,
                                  pretrained_cfg_overlay={"file": str(path)})
    except RuntimeError as error:  # size/key mismatch or a pickle needing unsafe loading
        raise DataError(f"cannot load weights '{path}' into {name}: {str(error).splitlines()[0]}") from None
    log.info("backbone %s: loaded pretrained weights from %s", name, path)
    return model
