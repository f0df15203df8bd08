"""Files of the tiny synthetic ISIC 2017 set."""

from __future__ import annotations


def first_image(root, folder="Training"):
    return sorted((root / f"ISIC-2017_{folder}_Data").glob("ISIC_???????.jpg"))[0]
