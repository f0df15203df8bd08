"""Render dermoscopy-like images whose diagnosis is learnable but not trivial.

Each diagnosis is a *style*: a distribution over lesion shape, colours and texture that
mimics the dermoscopic clues clinicians use (the ABCD rule: Asymmetry, Border irregularity,
Colour variegation, Diameter). Styles overlap on purpose, so a classifier has to combine
several clues and cannot reach perfect AUC from one pixel statistic:

* ``nv`` (nevus): round, regular border, one uniform brown;
* ``mel`` (melanoma): irregular border, asymmetric, two to four colours (dark brown, black,
  blue-grey, red);
* ``sk`` (seborrheic keratosis): lighter tan, sharp but lumpy border, waxy "cerebriform"
  texture with milia-like bright dots.

Every image also has the nuisances of real dermoscopy: skin-toned background with uneven
illumination, a dark circular vignette from the dermatoscope, hairs and air bubbles.
Rendering is deterministic given the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SUPERSAMPLE = 2  # draw at 2x and downsample, so borders and hairs are anti-aliased


@dataclass(frozen=True)
class LesionStyle:
    """Distribution of one diagnosis' appearance (all ranges are uniform draws)."""

    radius: tuple[float, float]  # mean radius as a fraction of the image size
    border_irregularity: tuple[float, float]  # amplitude of the high-frequency border harmonics
    asymmetry: tuple[float, float]  # amplitude of the low-frequency (k = 1, 2) harmonics
    palette: tuple[tuple[int, int, int], ...]  # colours the lesion mixes
    n_colours: tuple[int, int]  # how many palette colours are used (inclusive range)
    texture: float  # strength of the fine-grained texture
    milia: tuple[int, int]  # bright milia-like dots (inclusive range)
    darkness: tuple[float, float]  # 0 keeps the palette colour, 1 makes it twice as dark
    look_alike: str | None = None  # diagnosis this one is confused with (featureless melanoma, atypical nevus)
    look_alike_p: float = 0.0  # chance that the border, and independently the colours, come from it


BROWN, DARK_BROWN, BLACK = (150, 90, 55), (95, 55, 35), (45, 30, 28)
BLUE_GREY, RED, TAN = (105, 115, 140), (170, 70, 70), (190, 145, 105)

STYLES: dict[str, LesionStyle] = {
    "nv": LesionStyle((0.15, 0.30), (0.00, 0.08), (0.00, 0.12), (BROWN, DARK_BROWN, TAN),
                      (1, 2), 0.04, (0, 0), (0.0, 0.45), look_alike="mel", look_alike_p=0.1),
    "mel": LesionStyle((0.16, 0.34), (0.03, 0.14), (0.04, 0.20), (DARK_BROWN, BLACK, BLUE_GREY, RED, BROWN),
                       (2, 3), 0.07, (0, 0), (0.1, 0.6), look_alike="nv", look_alike_p=0.25),
    "sk": LesionStyle((0.15, 0.32), (0.02, 0.10), (0.02, 0.14), (TAN, BROWN, (175, 130, 95)),
                      (1, 2), 0.14, (0, 6), (0.0, 0.3), look_alike="nv", look_alike_p=0.3),
}


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth random field in [0, 1]: a cells×cells grid of uniforms upsampled bicubically."""
    grid = (rng.random((cells, cells)) * 255).astype(np.uint8)
    field = Image.fromarray(grid).resize((size, size), Image.BICUBIC)
    return np.asarray(field, dtype=np.float32) / 255.0


def _border_radius(rng: np.random.Generator, theta: np.ndarray, style: LesionStyle, r0: float) -> np.ndarray:
    """Radius of the lesion border as a function of angle: r0 · (1 + Σ_k a_k cos(kθ + φ_k))."""
    radius = np.ones_like(theta)
    asym = rng.uniform(*style.asymmetry)
    irregular = rng.uniform(*style.border_irregularity)
    for k in (1, 2):
        radius += asym * rng.uniform(0.3, 1.0) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    for k in range(3, 12):
        radius += irregular * rng.uniform(0.0, 1.0) / np.sqrt(k - 2) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return r0 * np.clip(radius, 0.35, None)


def _skin_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Skin tone with uneven illumination, as float RGB in [0, 255]."""
    tone = np.array([rng.uniform(200, 240), rng.uniform(150, 190), rng.uniform(130, 170)], np.float32)
    light = 0.85 + 0.25 * _smooth_noise(rng, size, 4)
    fine = 0.97 + 0.06 * _smooth_noise(rng, size, max(4, size // 6))
    return tone[None, None, :] * (light * fine)[..., None]


def _lesion_colour(rng: np.random.Generator, size: int, style: LesionStyle, inside: np.ndarray) -> np.ndarray:
    """Per-pixel lesion colour: a soft mixture of a few palette colours plus texture."""
    n = int(rng.integers(style.n_colours[0], style.n_colours[1] + 1))
    chosen = rng.choice(len(style.palette), size=n, replace=False)
    colours = np.array([style.palette[i] for i in chosen], np.float32)
    # Colour blobs: each colour dominates where its smooth random field is largest.
    fields = np.stack([_smooth_noise(rng, size, 5) for _ in range(n)])
    weights = np.exp(8.0 * fields)
    weights /= weights.sum(0, keepdims=True)
    colour = np.einsum("khw,kc->hwc", weights, colours)
    colour *= 1.0 - 0.5 * rng.uniform(*style.darkness)
    texture = _smooth_noise(rng, size, max(8, size // 3)) - 0.5
    colour *= (1.0 + style.texture * 2.0 * texture)[..., None]
    return colour * inside[..., None]


def _draw_hairs_and_bubbles(rng: np.random.Generator, image: Image.Image) -> None:
    """Dark curved hairs and bright air bubbles, drawn in place."""
    size = image.size[0]
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(0, 6))):
        start = rng.uniform(0, size, 2)
        angle = rng.uniform(0, 2 * np.pi)
        length = rng.uniform(0.3, 0.9) * size
        bend = rng.uniform(-0.6, 0.6)
        points = []
        for t in np.linspace(0, 1, 12):
            a = angle + bend * t
            points.append(tuple(start + length * t * np.array([np.cos(a), np.sin(a)])))
        shade = int(rng.integers(20, 70))
        draw.line(points, fill=(shade, shade - 5 if shade > 5 else 0, shade), width=max(1, size // 180 + 1))
    for _ in range(int(rng.integers(0, 3))):
        centre = rng.uniform(0, size, 2)
        r = rng.uniform(0.02, 0.07) * size
        box = [centre[0] - r, centre[1] - r, centre[0] + r, centre[1] + r]
        draw.ellipse(box, outline=(250, 250, 250), width=max(1, size // 120))


def render_lesion(diagnosis: str, size: int, rng: np.random.Generator) -> tuple[Image.Image, Image.Image]:
    """Draw one synthetic dermoscopy image of ``diagnosis`` at ``size``×``size`` px.

    Returns the RGB image and its binary lesion mask (mode "L", values 0/255), the mask
    being what ISIC segmentation ground truth looks like.
    """
    if diagnosis not in STYLES:
        raise KeyError(f"no synthetic style for diagnosis {diagnosis!r}; known: {sorted(STYLES)}")
    style = STYLES[diagnosis]
    shape_style, colour_style = style, style
    if style.look_alike is not None:
        if rng.random() < style.look_alike_p:
            shape_style = STYLES[style.look_alike]
        if rng.random() < style.look_alike_p:
            colour_style = STYLES[style.look_alike]
    big = size * SUPERSAMPLE
    yy, xx = np.mgrid[0:big, 0:big].astype(np.float32) / big
    centre = 0.5 + rng.uniform(-0.08, 0.08, 2)
    dy, dx = yy - centre[0], xx - centre[1]
    rho, theta = np.hypot(dx, dy), np.arctan2(dy, dx)
    radius = _border_radius(rng, theta, shape_style, rng.uniform(*shape_style.radius))
    inside = (rho < radius).astype(np.float32)
    soft = np.asarray(Image.fromarray((inside * 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(radius=big / 150)), np.float32) / 255.0

    background = _skin_background(rng, big)
    lesion = _lesion_colour(rng, big, colour_style, np.ones_like(inside))
    pixels = background * (1 - soft[..., None]) + lesion * soft[..., None]
    # Dermatoscope vignette: dark outside a circle slightly larger than the image's inscribed one.
    radius_from_centre = np.hypot(yy - 0.5, xx - 0.5)
    vignette = np.clip((0.72 - radius_from_centre) / 0.08, 0.0, 1.0)
    pixels = pixels * vignette[..., None] + 10.0 * (1 - vignette[..., None])
    pixels += rng.normal(0, 3.0, pixels.shape)  # sensor noise
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")

    draw = ImageDraw.Draw(image)
    lesion_pixels = np.argwhere(inside > 0)
    for _ in range(int(rng.integers(style.milia[0], style.milia[1] + 1))):
        y, x = lesion_pixels[rng.integers(len(lesion_pixels))]
        r = big * rng.uniform(0.006, 0.014)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(235, 225, 205))
    _draw_hairs_and_bubbles(rng, image)

    mask = Image.fromarray((inside * 255).astype(np.uint8), "L")
    return image.resize((size, size), Image.LANCZOS), mask.resize((size, size), Image.NEAREST)


DiagnosisRenderer = Callable[[str, int, np.random.Generator], tuple[Image.Image, Image.Image]]
