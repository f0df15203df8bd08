"""The individual typology angle (dermlab.stats.skin_tone): hand-computed colours, category boundaries, what counts as
skin, and the real HAM10000 lesion masks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dermlab.stats.skin_tone import ITA_CATEGORIES, cielab, image_ita, ita_category, ita_degrees, skin_pixels
from tests.conftest import SHARED_DATA

SKIN = (200, 150, 100)  # sRGB of a tan skin colour
LESION = (80, 50, 30)  # a dark brown lesion
# Hand computation of SKIN by the CIE formulas (IEC 61966-2-1 sRGB, D65 white 0.95047 / 1 / 1.08883):
#   linear = ((c/255 + 0.055) / 1.055) ** 2.4 → R 0.57758, G 0.30499, B 0.12744
#   Y = 0.2126 R + 0.7152 G + 0.0722 B = 0.35012; Z = 0.0193 R + 0.1192 G + 0.9505 B = 0.16863
#   f(Y) = 0.35012 ** (1/3) = 0.70481; f(Z / 1.08883) = 0.15487 ** (1/3) = 0.53702
#   L* = 116 · 0.70481 − 16 = 65.758; b* = 200 · (0.70481 − 0.53702) = 33.558
#   ITA = atan((65.758 − 50) / 33.558) = atan(0.46958) = 25.154°  → tan (10, 28]
SKIN_L, SKIN_B, SKIN_ITA = 65.758, 33.558, 25.154


def uniform(colour, size=(48, 64)) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.uint8), (*size, 3)).copy()


def test_cielab_and_ita_of_a_uniform_colour_match_the_hand_computation():
    lab = cielab(uniform(SKIN))
    # OpenCV's float conversion is within 0.15 of the exact formulas (it interpolates the sRGB curve)
    assert lab[..., 0].mean() == pytest.approx(SKIN_L, abs=0.15)
    assert lab[..., 2].mean() == pytest.approx(SKIN_B, abs=0.15)
    assert float(ita_degrees(SKIN_L, SKIN_B)) == pytest.approx(SKIN_ITA, abs=1e-3)
    tone = image_ita(uniform(SKIN))  # no mask, a uniform image: no darker class; only the central ellipse is left out
    assert tone.ita == pytest.approx(SKIN_ITA, abs=0.3) and tone.category == "tan"
    assert tone.lesion == "otsu+ellipse"
    ellipse = math.pi * (0.3 * 48) * (0.3 * 64)  # semi-axes 0.3 H and 0.3 W
    assert tone.pixels == pytest.approx(48 * 64 - ellipse, rel=0.03)


def test_b_star_zero_and_negative():
    # sRGB white: L* = 100, b* = 0 → (L* − 50) / b* = +inf → 90°; black L* = 0 → −90°; L* = 50, b* = 0 → no angle
    white = image_ita(uniform((255, 255, 255)))
    assert white.ita == pytest.approx(90.0, abs=1e-6) and white.category == "very light" and white.no_yellow == 1.0
    assert ita_degrees(0.0, 0.0) == -90.0 and ita_degrees(100.0, -0.0) == 90.0
    assert np.isnan(ita_degrees(50.0, 0.0)) and np.isnan(ita_degrees(50.0, -3.0))
    # pale skin under a bluish white balance (HAM10000 ISIC_0027800: L* 87.6, b* −14): b* is floored at 0, so the
    # angle is the bound +90° (very light); the unfloored arctan(37.6 / −14) would be −69.6°, "dark"
    assert float(ita_degrees(87.6, -14.0)) == 90.0 and ita_category(90.0) == "very light"
    assert float(ita_degrees(40.0, -5.0)) == -90.0  # below L* = 50 the bound is −90°
    # monotone: a lighter pixel never gets a lower angle at the same b*, a yellower one never a higher angle
    lightness = np.linspace(0, 100, 41)
    for b_star in (-10.0, 0.0, 0.5, 20.0):
        angles = ita_degrees(lightness, b_star)
        assert (np.diff(angles[np.isfinite(angles)]) >= 0).all()
    assert (np.diff(ita_degrees(80.0, np.linspace(-10, 40, 51))) <= 0).all()


@pytest.mark.parametrize(("angle", "category"), [
    (90.0, "very light"), (55.0001, "very light"), (55.0, "light"), (41.0001, "light"), (41.0, "intermediate"),
    (28.0001, "intermediate"), (28.0, "tan"), (10.0001, "tan"), (10.0, "brown"), (-29.9999, "brown"),
    (-30.0, "dark"), (-120.0, "dark"), (150.0, "very light"), (float("nan"), "unknown")])
def test_del_bino_categories_at_their_boundaries(angle, category):
    assert ita_category(angle) == category


def test_categories_are_the_six_of_del_bino():
    assert ITA_CATEGORIES == ("very light", "light", "intermediate", "tan", "brown", "dark")


def lesion_image(hair: bool = False, vignette: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A 90 × 120 skin image with a dark disc of radius 20 in the middle; optional 2-px black hairs and corners."""
    image = uniform(SKIN, (90, 120))
    rows, columns = np.ogrid[:90, :120]
    lesion = (rows - 45) ** 2 + (columns - 60) ** 2 <= 20 ** 2
    image[lesion] = LESION
    if hair:
        image[10:12, :] = 20  # a horizontal hair near the top
        image[:, 100:102] = 20  # a vertical one on the right
    if vignette:
        corner = (rows - 45) ** 2 / 45 ** 2 + (columns - 60) ** 2 / 60 ** 2 > 1.3
        image[corner] = 5
    return image, lesion


def test_the_lesion_is_left_out_with_and_without_a_mask():
    image, lesion = lesion_image()
    with_mask, without = image_ita(image, lesion), image_ita(image)
    assert with_mask.lesion == "mask" and not (skin_pixels(image, lesion) & lesion).any()
    assert not (skin_pixels(image) & lesion).any()  # the dark disc is the darker Otsu class (and in the ellipse)
    assert with_mask.ita == pytest.approx(SKIN_ITA, abs=0.3) and without.ita == pytest.approx(SKIN_ITA, abs=0.3)
    lab = cielab(image)
    lesion_ita = float(np.median(ita_degrees(lab[..., 0][lesion], lab[..., 2][lesion])))
    assert lesion_ita < with_mask.ita - 20  # the lesion alone would read much darker


def test_hair_and_vignette_are_not_skin():
    image, lesion = lesion_image(hair=True, vignette=True)
    skin = skin_pixels(image, lesion)
    assert not skin[10:12, :].any() and not skin[:, 100:102].any()  # the hairs
    assert not skin[0, 0] and not skin[-1, -1]  # the black corners
    assert skin[30, 20] and skin[70, 30]  # plain skin away from all of them
    assert image_ita(image, lesion).ita == pytest.approx(SKIN_ITA, abs=0.3)


def test_mask_of_another_size_is_refused():
    image, lesion = lesion_image()
    with pytest.raises(ValueError, match="lesion mask of shape"):
        skin_pixels(image, lesion[:-1])


HAM = SHARED_DATA / "ham10000"
MASKS = HAM / "HAM10000_segmentations_lesion_tschandl"


@pytest.mark.real_data
@pytest.mark.skipif(not MASKS.is_dir(), reason="../shared/data/ham10000 (the 5 real HAM10000 masks) not present")
def test_real_ham10000_masks_the_skin_reads_lighter_than_the_lesion():
    import cv2  # read directly: importing the datamodules package would load Lightning (seconds)

    def read(path, flags):
        pixels = cv2.imread(str(path), flags)
        return cv2.resize(pixels, (300, 225), interpolation=cv2.INTER_AREA if pixels.ndim == 3 else cv2.INTER_NEAREST)

    masks = sorted(MASKS.glob("*_segmentation.png"))
    assert len(masks) == 5
    clearly_darker = []
    for path in masks:
        image_id = path.name.removesuffix("_segmentation.png")
        image = cv2.cvtColor(read(next(HAM.glob(f"HAM10000_images_part_*/{image_id}.jpg")), cv2.IMREAD_COLOR),
                             cv2.COLOR_BGR2RGB)  # 600 × 450 → 300 × 225
        mask = read(path, cv2.IMREAD_GRAYSCALE) > 127
        skin = skin_pixels(image, mask)
        assert not (skin & mask).any(), image_id  # no lesion pixel is taken as skin
        tone = image_ita(image, mask)
        assert tone.pixels > 0.3 * mask.size and tone.category != "unknown", image_id
        lab = cielab(image)
        lesion = float(np.nanmedian(ita_degrees(lab[..., 0][mask], lab[..., 2][mask])))
        assert tone.ita >= lesion, (image_id, tone.ita, lesion)  # the lesion never reads lighter than the skin
        if tone.ita > lesion + 10:
            clearly_darker.append(image_id)
    # ISIC_0027533's mask is mostly pale pink around faint dots (median L* 55.8 vs the skin's 59.0, b* ≤ 0 on both):
    # skin and lesion are both at the +90° bound; in the other four the lesion reads 55–90° lower
    assert clearly_darker == ["ISIC_0024311", "ISIC_0027001", "ISIC_0027287", "ISIC_0027800"]
