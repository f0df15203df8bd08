"""Skin-tone proxy of a dermoscopy image: the individual typology angle (ITA) of its non-lesion skin.

ITA = arctan((L* − 50) / b*) · 180/π, with L* and b* of CIELAB (D65), Chardon, Dupont & Evain 1991,
*Int J Cosmet Sci* 13:191–208 (b* floored at 0, see :func:`ita_degrees`); the six categories of
:data:`ITA_CATEGORIES` (very light > 55°, light 41–55°, intermediate 28–41°, tan 10–28°, brown −30–10°, dark < −30°)
as used by Del Bino & Bernerd 2013 (*Br J Dermatol* 169 Suppl 3:33–40). Computed on the non-lesion skin of
dermoscopy images for fairness audits by Kinyanjui et al. 2020 (MICCAI, "Fairness of classifiers across skin tones in
dermatology").

It is a **proxy**: the angle of the pixels' colour depends on the dermoscope's light, the camera's white balance,
polarisation and immersion fluid; it is not a Fitzpatrick skin type (ITA-derived types agreed with dermatologists
less than dermatologists with each other: Groh et al. 2022, arXiv:2207.02942; published ITA recipes disagree with
each other on ISIC 2018: Kalb et al. 2023, arXiv:2308.09640).

What counts as skin (:func:`skin_pixels`): pixels outside the lesion, which is the given mask (dilated by
:data:`MARGIN` of the shorter side, so its border's pixels stay out) or, without a mask, the darker Otsu class of
L* (none when L* spreads over less than :data:`OTSU_MIN_SPREAD`) together with a central ellipse (semi-axes
:data:`CENTRE` of the width and height: dermoscopy centres the lesion); minus near-black pixels (L* <
:data:`VIGNETTE_L`: the dermoscope's dark corners and frame, and a rim of :data:`MARGIN` around them) and hair-like
dark lines (black top-hat of L* — morphological closing minus L* — above :data:`HAIR_DEPTH`, with a structuring
element of :data:`HAIR_SIZE` of the shorter side: the closing step of DullRazor, Lee et al. 1997, *Comput Biol Med*
27:533). The image's ITA is the median of the per-pixel angles.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import ArrayLike

#: The six ITA skin-tone categories, lightest first.
ITA_CATEGORIES = ("very light", "light", "intermediate", "tan", "brown", "dark")
LOWER_BOUNDS = (55.0, 41.0, 28.0, 10.0, -30.0)  # degrees; a category holds angles above its bound, up to the one before
UNKNOWN = "unknown"
VIGNETTE_L = 20.0  #: L* below this is the dermoscope's black vignette or frame, not skin (dark skin has L* ≈ 30–45)
HAIR_DEPTH = 10.0  #: L* units a line must be darker than its closed surroundings to count as hair
HAIR_SIZE = 1 / 30  #: structuring element of the hair closing, as a fraction of the shorter side (≈ 15 px at 450)
MARGIN = 0.02  #: lesion masks and the vignette are grown by this fraction of the shorter side
CENTRE = 0.3  #: semi-axes of the central ellipse taken as lesion when there is no mask (fractions of W and H)
OTSU_MIN_SPREAD = 5.0  #: L* units; with less spread of the usable pixels' L* there is no darker (lesion) class
MIN_PIXELS = 50  #: with fewer skin pixels than this there is no ITA (NaN)


def ita_degrees(lightness: ArrayLike, b_star: ArrayLike) -> np.ndarray:
    """ITA in degrees of L* (0–100) and b* values (any shape, broadcast): arctan((L* − 50) / b*) · 180/π
    (Chardon et al. 1991), in [−90°, 90°].

    b* is floored at 0: a colour without a yellow component (b* ≤ 0) gets the angle's bound, +90° above L* = 50 and
    −90° below (the limit as b* → 0⁺), so the angle keeps growing with L* and falling with b*. Chardon's skin
    colours all have b* > 0; in dermoscopy a bluish white balance pushes the b* of pale skin to or below 0 (3 of the
    5 real HAM10000 images with masks), where the unfloored arctan would jump to about −70° and call very light skin
    dark. The grey point L* = 50, b* ≤ 0 has no angle: NaN.
    """
    lightness, b_star = np.asarray(lightness, dtype=np.float64), np.asarray(b_star, dtype=np.float64)
    angle = np.degrees(np.arctan2(lightness - 50.0, np.maximum(b_star, 0.0)))
    return np.where((lightness == 50.0) & (b_star <= 0), np.nan, angle)


def ita_category(angle: float) -> str:
    """The Del Bino category of an ITA in degrees: ``very light`` (> 55), ``light`` (41, 55], ``intermediate``
    (28, 41], ``tan`` (10, 28], ``brown`` (−30, 10], ``dark`` (≤ −30); ``unknown`` for NaN. A boundary angle belongs
    to the darker category (55° is light), as "very light" is defined as ITA > 55°."""
    if angle is None or not np.isfinite(angle):
        return UNKNOWN
    for name, bound in zip(ITA_CATEGORIES, LOWER_BOUNDS, strict=False):
        if angle > bound:
            return name
    return ITA_CATEGORIES[-1]


def cielab(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) CIELAB (L* 0–100, a*, b*; D65) of an (H, W, 3) uint8 sRGB image, by OpenCV's float conversion
    (within 0.1 L* / b* unit of the CIE formulas; the uint8 path would quantise a* and b* to whole units)."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def _ellipse(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)) if size > 1 else np.ones((1, 1), np.uint8)


def _odd(value: float) -> int:
    return max(3, int(round(value)) // 2 * 2 + 1)


@dataclass(frozen=True)
class SkinTone:
    """The ITA of one image: ``ita`` (degrees, NaN when too few skin pixels), ``category``, ``pixels`` (skin pixels
    used), ``lesion`` (``mask`` or ``otsu+ellipse``: how the lesion was left out) and ``no_yellow`` (the fraction of
    those pixels with b* ≤ 0, whose angle is the bound ±90°: near 1, the white balance, not the skin, sets the ITA)."""

    ita: float
    category: str
    pixels: int
    lesion: str
    no_yellow: float


def skin_pixels(image: np.ndarray, lesion_mask: np.ndarray | None = None) -> np.ndarray:
    """(H, W) bool: the pixels of ``image`` (H, W, 3 uint8 RGB) taken as non-lesion skin (rule: module docstring).

    ``lesion_mask`` (H, W), non-zero on the lesion, or None to find the lesion by Otsu's threshold and the central
    ellipse.

    Raises:
        ValueError: an image that is not (H, W, 3), or a mask of another size.
    """
    return _skin(cielab(image), lesion_mask)


def _skin(lab: np.ndarray, lesion_mask: np.ndarray | None) -> np.ndarray:
    lightness = lab[..., 0]
    height, width = lightness.shape
    side = min(height, width)
    margin = _ellipse(_odd(MARGIN * side))
    dark = cv2.dilate((lightness < VIGNETTE_L).astype(np.uint8), margin) > 0
    closed = cv2.morphologyEx(lightness, cv2.MORPH_CLOSE, _ellipse(_odd(HAIR_SIZE * side)))
    hair = (closed - lightness) > HAIR_DEPTH
    if lesion_mask is not None:
        lesion_mask = np.asarray(lesion_mask)
        if lesion_mask.shape != lightness.shape:
            raise ValueError(f"lesion mask of shape {lesion_mask.shape} for an image of {lightness.shape[::-1]}"
                             " (W, H): give the mask at the image's size")
        lesion = cv2.dilate((lesion_mask > 0).astype(np.uint8), margin) > 0
    else:
        usable = ~dark & ~hair
        values = np.clip(np.round(lightness[usable] * 2.55), 0, 255).astype(np.uint8)
        lesion = np.zeros_like(usable)
        if values.size and np.ptp(values) > OTSU_MIN_SPREAD * 2.55:  # a uniform image has no darker class
            threshold, _ = cv2.threshold(values.reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
            lesion = lightness * 2.55 <= threshold
        rows, columns = np.ogrid[:height, :width]
        centre = (((rows - (height - 1) / 2) / (CENTRE * height)) ** 2
                  + ((columns - (width - 1) / 2) / (CENTRE * width)) ** 2) <= 1
        lesion = lesion | centre
    return ~lesion & ~dark & ~hair


def image_ita(image: np.ndarray, lesion_mask: np.ndarray | None = None) -> SkinTone:
    """The ITA of ``image``'s non-lesion skin: the median over :func:`skin_pixels` of the per-pixel
    :func:`ita_degrees`, with its :func:`ita_category`; NaN / ``unknown`` with fewer than :data:`MIN_PIXELS` pixels.

    Args:
        image: (H, W, 3) uint8 sRGB.
        lesion_mask: (H, W) lesion mask (non-zero on the lesion) or None.
    """
    lab = cielab(image)
    skin = _skin(lab, lesion_mask)
    count = int(skin.sum())
    if count < MIN_PIXELS:
        return SkinTone(np.nan, UNKNOWN, count, "mask" if lesion_mask is not None else "otsu+ellipse", np.nan)
    lightness, b_star = lab[..., 0][skin], lab[..., 2][skin]
    angle = float(np.nanmedian(ita_degrees(lightness, b_star)))
    return SkinTone(angle, ita_category(angle), count, "mask" if lesion_mask is not None else "otsu+ellipse",
                    float((b_star <= 0).mean()))
