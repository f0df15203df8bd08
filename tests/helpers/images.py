"""Image files of every kind, written over images of the tiny synthetic sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from datamodules import ISIC2017DataModule


def gradient(height: int = 24, width: int = 32) -> np.ndarray:
    """(H, W, 3) uint8 test pixels with distinct channels."""
    g = np.linspace(0, 1, height * width).reshape(height, width)
    return (np.stack([g, g[::-1], 0.5 * g], axis=2) * 255).astype(np.uint8)


def first_val_image(root: Path) -> Path:
    return sorted((root / "ISIC-2017_Validation_Data").glob("ISIC_???????.jpg"))[0]


def replace_image(victim: Path, suffix: str, write) -> Path:
    """``victim`` replaced by a file of the same id with ``suffix`` that ``write(path)`` writes."""
    victim.unlink()
    path = victim.with_suffix(suffix)
    write(path)
    return path


def data(root: Path, **kwargs) -> ISIC2017DataModule:
    return ISIC2017DataModule(str(root), image_size=32, batch_size=8, num_workers=0, **kwargs)


def gray(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).convert("L"))


# kind -> (suffix, writer of the file given the pixels, the RGB pixels the suite must read from it)
KINDS = {
    "grayscale JPEG": (".jpg", lambda p, a: Image.fromarray(gray(a)).save(p, quality=95),
                       lambda p, a: np.repeat(np.asarray(Image.open(p))[..., None], 3, axis=2)),
    "CMYK JPEG": (".jpg", lambda p, a: Image.fromarray(a).convert("CMYK").save(p, quality=95),
                  lambda p, a: np.asarray(Image.open(p).convert("RGB"))),
    "palette PNG": (".png", lambda p, a: Image.fromarray(a).convert("P").save(p),
                    lambda p, a: np.asarray(Image.open(p).convert("RGB"))),
    "grayscale + alpha PNG": (".png", lambda p, a: Image.fromarray(gray(a)).convert("LA").save(p),
                              lambda p, a: np.repeat(gray(a)[..., None], 3, axis=2)),
    "16-bit grayscale PNG": (".png", lambda p, a: Image.fromarray(gray(a).astype(np.uint16) * 257).save(p),
                             lambda p, a: np.repeat(gray(a)[..., None], 3, axis=2)),
    "PNG bytes under a .jpg name": (".jpg", lambda p, a: Image.fromarray(a).save(p, format="PNG"),
                                    lambda p, a: a),
}
