"""Render dermoscopy-like images whose diagnosis is learnable but not trivial.

Each diagnosis is a *style*: a distribution over lesion shape, colours, texture and dermoscopic
structures that mimics the clues clinicians use (the ABCD rule and pattern analysis):

* ``nv`` nevus: round, regular border, uniform brown, often a pigment network;
* ``mel`` melanoma: irregular, asymmetric, two or three colours (black, blue-grey, red), streaks,
  negative network;
* ``bkl`` / ``sk`` benign keratosis / seborrheic keratosis: lighter tan, waxy texture, milia-like cysts;
* ``bcc`` basal cell carcinoma: pinkish, arborizing red vessels, blue-grey ovoid globules;
* ``akiec`` actinic keratosis / intraepithelial carcinoma: red, ill-defined, white scale;
* ``scc`` squamous cell carcinoma (ISIC 2019): larger, pink, white keratin mass and scale, some vessels;
* ``df`` dermatofibroma: small, central white patch, faint peripheral network;
* ``vasc`` vascular lesion: red-purple lacunae.

Styles overlap on purpose (``look_alike``), so a classifier has to combine clues. Every image has
the nuisances of dermoscopy: skin-toned background with uneven light, a dark vignette, hairs and
air bubbles. The returned masks are consistent with what was drawn: the lesion mask is the drawn
lesion and each ISIC 2018 task 2 attribute mask covers exactly the pixels where that structure
was painted. :func:`render_vitiligo` draws clinical photos of vitiligo (sharp, milky-white
depigmentation) or a look-alike (ill-defined, partial hypopigmentation).
Rendering is deterministic given the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

ATTRIBUTES = ("globules", "milia_like_cyst", "negative_network", "pigment_network", "streaks")
BROWN, DARK_BROWN, BLACK = (150, 90, 55), (95, 55, 35), (45, 30, 28)
BLUE_GREY, RED, TAN = (105, 115, 140), (170, 70, 70), (190, 145, 105)
PINK, PURPLE, LIGHT_TAN = (205, 140, 140), (120, 50, 90), (175, 130, 95)


@dataclass(frozen=True)
class LesionStyle:
    """Distribution of one diagnosis' appearance (ranges are uniform draws)."""

    radius: tuple[float, float]  # mean radius as a fraction of the shorter image side
    border_irregularity: tuple[float, float]  # amplitude of the high-frequency border harmonics
    asymmetry: tuple[float, float]  # amplitude of the low-frequency (k = 1, 2) harmonics
    palette: tuple[tuple[int, int, int], ...]  # colours the lesion mixes
    n_colours: tuple[int, int]  # how many palette colours are used (inclusive range)
    texture: float  # strength of the fine-grained texture
    darkness: tuple[float, float]  # 0 keeps the palette colour, 1 makes it twice as dark
    border_blur: float = 1.0  # 1 = sharp; larger = ill-defined border
    structures: dict[str, float] = field(default_factory=dict)  # structure -> probability it is drawn
    look_alike: str | None = None  # diagnosis this one is confused with
    look_alike_p: float = 0.0  # chance that the border, and independently the colours, come from it


STYLES: dict[str, LesionStyle] = {
    "nv": LesionStyle((0.15, 0.30), (0.00, 0.08), (0.00, 0.12), (BROWN, DARK_BROWN, TAN), (1, 2), 0.04,
                      (0.0, 0.45), structures={"pigment_network": 0.6, "globules": 0.3, "negative_network": 0.05},
                      look_alike="mel", look_alike_p=0.1),
    "mel": LesionStyle((0.16, 0.34), (0.03, 0.14), (0.04, 0.20), (DARK_BROWN, BLACK, BLUE_GREY, RED, BROWN), (2, 3),
                       0.07, (0.1, 0.6), structures={"pigment_network": 0.5, "globules": 0.4, "streaks": 0.35,
                                                     "negative_network": 0.2},
                       look_alike="nv", look_alike_p=0.25),
    "sk": LesionStyle((0.15, 0.32), (0.02, 0.10), (0.02, 0.14), (TAN, BROWN, LIGHT_TAN), (1, 2), 0.14, (0.0, 0.3),
                      structures={"milia_like_cyst": 0.8}, look_alike="nv", look_alike_p=0.3),
    "bcc": LesionStyle((0.13, 0.28), (0.02, 0.10), (0.02, 0.14), (PINK, RED, BLUE_GREY), (1, 2), 0.06, (0.0, 0.3),
                       structures={"globules": 0.5, "vessels": 0.85}, look_alike="akiec", look_alike_p=0.2),
    "akiec": LesionStyle((0.14, 0.30), (0.04, 0.14), (0.04, 0.16), (RED, PINK, LIGHT_TAN), (1, 2), 0.12,
                         (0.0, 0.3), border_blur=3.0, structures={"scale": 0.8},
                         look_alike="bcc", look_alike_p=0.2),
    "scc": LesionStyle((0.18, 0.34), (0.03, 0.12), (0.02, 0.12), (PINK, LIGHT_TAN, RED), (1, 2), 0.10,
                       (0.0, 0.25), border_blur=2.0, structures={"central_patch": 0.8, "scale": 0.6, "vessels": 0.4},
                       look_alike="akiec", look_alike_p=0.2),
    "df": LesionStyle((0.10, 0.20), (0.00, 0.06), (0.00, 0.08), (BROWN, LIGHT_TAN), (1, 2), 0.05, (0.0, 0.3),
                      border_blur=2.0, structures={"central_patch": 0.9, "pigment_network": 0.3},
                      look_alike="nv", look_alike_p=0.2),
    "vasc": LesionStyle((0.10, 0.24), (0.00, 0.08), (0.00, 0.10), (RED, PURPLE), (1, 2), 0.05, (0.0, 0.4),
                        structures={"lacunae": 0.9}, look_alike="bcc", look_alike_p=0.1),
}
STYLES["bkl"] = STYLES["sk"]


@dataclass
class Rendering:
    """One synthetic image with its ground truth masks (mode "L", 0/255)."""

    image: Image.Image
    mask: Image.Image
    attributes: dict[str, Image.Image]


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Smooth random field in [0, 1]: a grid of uniforms upsampled bicubically."""
    grid = (rng.random((cells, cells)) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(grid).resize((width, height), Image.BICUBIC), np.float32) / 255.0


def _border_radius(rng: np.random.Generator, theta: np.ndarray, style: LesionStyle, r0: float) -> np.ndarray:
    """Radius of the lesion border as a function of angle: r0 · (1 + Σ_k a_k cos(kθ + φ_k))."""
    radius = np.ones_like(theta)
    asym, irregular = rng.uniform(*style.asymmetry), rng.uniform(*style.border_irregularity)
    for k in (1, 2):
        radius += asym * rng.uniform(0.3, 1.0) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    for k in range(3, 12):
        radius += irregular * rng.uniform(0.0, 1.0) / np.sqrt(k - 2) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return r0 * np.clip(radius, 0.35, None)


#: Base sRGB skin tone of each Fitzpatrick type I–VI (the external sets' twins draw their skin by type), lightest
#: first; a drawn tone varies around it as the default tone does around (220, 170, 150).
TYPE_TONES = ((245, 215, 195), (232, 192, 165), (212, 166, 134), (182, 132, 100), (150, 102, 74), (118, 78, 56))


def _skin(rng: np.random.Generator, height: int, width: int, skin_type: int | None = None) -> np.ndarray:
    """Skin tone with uneven illumination, as float RGB in [0, 255]; ``skin_type`` 1–6 darkens it by Fitzpatrick
    type (:data:`TYPE_TONES`), None keeps the default light tone (the same draws either way)."""
    tone = np.array([rng.uniform(200, 240), rng.uniform(150, 190), rng.uniform(130, 170)], np.float32)
    if skin_type is not None:
        tone = np.array(TYPE_TONES[skin_type - 1], np.float32) * tone / np.array([220, 170, 150], np.float32)
    light = 0.85 + 0.25 * _smooth_noise(rng, height, width, 4)
    fine = 0.97 + 0.06 * _smooth_noise(rng, height, width, max(4, min(height, width) // 6))
    return tone[None, None, :] * (light * fine)[..., None]


def _lesion_colour(rng: np.random.Generator, height: int, width: int, style: LesionStyle) -> np.ndarray:
    """Per-pixel lesion colour: a soft mixture of a few palette colours plus texture."""
    n = int(rng.integers(style.n_colours[0], style.n_colours[1] + 1))
    chosen = rng.choice(len(style.palette), size=n, replace=False)
    colours = np.array([style.palette[i] for i in chosen], np.float32)
    weights = np.exp(8.0 * np.stack([_smooth_noise(rng, height, width, 5) for _ in range(n)]))
    colour = np.einsum("khw,kc->hwc", weights / weights.sum(0, keepdims=True), colours)
    colour *= 1.0 - 0.5 * rng.uniform(*style.darkness)
    texture = _smooth_noise(rng, height, width, max(8, min(height, width) // 3)) - 0.5
    return colour * (1.0 + style.texture * 2.0 * texture)[..., None]


class _Painter:
    """Draws structures on the image and records each attribute's pixels in its own mask."""

    def __init__(self, image: Image.Image, inside: np.ndarray, rng: np.random.Generator, unit: float):
        self.image, self.rng, self.unit = image, rng, unit
        self.draw = ImageDraw.Draw(image)
        self.lesion = np.argwhere(inside > 0)
        self.masks = {name: Image.new("L", image.size, 0) for name in ATTRIBUTES}
        self.inside = Image.fromarray((inside * 255).astype(np.uint8))

    def point(self) -> np.ndarray:
        y, x = self.lesion[self.rng.integers(len(self.lesion))]
        return np.array([x, y], np.float32)

    def lines(self, name: str | None, segments: Iterable[tuple[np.ndarray, np.ndarray]], colour: tuple[int, int, int],
              width: float) -> None:
        mask = ImageDraw.Draw(self.masks[name]) if name else None
        for a, b in segments:
            self.draw.line([tuple(a), tuple(b)], fill=colour, width=max(1, int(width)))
            if mask:
                mask.line([tuple(a), tuple(b)], fill=255, width=max(1, int(width)))

    def dots(self, name: str | None, count: int, colour: tuple[int, int, int], radius: tuple[float, float]) -> None:
        mask = ImageDraw.Draw(self.masks[name]) if name else None
        for _ in range(count):
            x, y = self.point()
            r = self.unit * self.rng.uniform(*radius)
            self.draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
            if mask:
                mask.ellipse([x - r, y - r, x + r, y + r], fill=255)

    def network(self, name: str, colour: tuple[int, int, int], spacing: float) -> None:
        """A reticular grid (pigment network dark, negative network light), clipped to the lesion."""
        layer = Image.new("L", self.image.size, 0)
        draw, step = ImageDraw.Draw(layer), max(3.0, spacing * self.unit)
        width, height = self.image.size
        offset = self.rng.uniform(0, step, 2)
        wobble = lambda: self.rng.uniform(-0.25, 0.25) * step  # noqa: E731
        for x in np.arange(offset[0], width, step):
            draw.line([(x + wobble(), 0), (x + wobble(), height)], fill=255, width=max(1, int(self.unit * 0.006)))
        for y in np.arange(offset[1], height, step):
            draw.line([(0, y + wobble()), (width, y + wobble())], fill=255, width=max(1, int(self.unit * 0.006)))
        shrunk = self.inside.filter(ImageFilter.MinFilter(3))
        layer = Image.fromarray(np.minimum(np.asarray(layer), np.asarray(shrunk)))
        self.image.paste(Image.new("RGB", self.image.size, colour), mask=layer)
        self.masks[name] = Image.fromarray(np.maximum(np.asarray(self.masks[name]), np.asarray(layer)))

    def radial(self, name: str, centre: np.ndarray, radius_at: Callable[[float], float], count: int,
               colour: tuple[int, int, int]) -> None:
        segments = []
        for angle in self.rng.uniform(0, 2 * np.pi, count):
            r = radius_at(angle)
            direction = np.array([np.cos(angle), np.sin(angle)])
            segments.append((centre + direction * r * 0.75, centre + direction * r * 1.08))
        self.lines(name, segments, colour, self.unit * 0.01)

    def branches(self, count: int, colour: tuple[int, int, int]) -> None:
        """Arborizing vessels: short random walks that fork."""
        for _ in range(count):
            start, angle = self.point(), self.rng.uniform(0, 2 * np.pi)
            for _ in range(3):
                end = start + self.unit * 0.06 * np.array([np.cos(angle), np.sin(angle)])
                self.lines(None, [(start, end)], colour, self.unit * 0.006)
                start, angle = end, angle + self.rng.uniform(-0.8, 0.8)


def _draw_structures(painter: _Painter, style: LesionStyle, rng: np.random.Generator, centre: np.ndarray,
                     radius_at: Callable[[float], float]) -> None:
    drawn = {name for name, p in style.structures.items() if rng.random() < p}
    if "pigment_network" in drawn:
        painter.network("pigment_network", (70, 40, 25), rng.uniform(0.03, 0.05))
    if "negative_network" in drawn:
        painter.network("negative_network", (225, 200, 180), rng.uniform(0.04, 0.06))
    if "globules" in drawn:
        colour = BLUE_GREY if style.palette[0] in (PINK, RED) else (60, 35, 25)
        painter.dots("globules", int(rng.integers(3, 10)), colour, (0.008, 0.018))
    if "milia_like_cyst" in drawn:
        painter.dots("milia_like_cyst", int(rng.integers(2, 8)), (235, 225, 205), (0.006, 0.014))
    if "streaks" in drawn:
        painter.radial("streaks", centre, radius_at, int(rng.integers(5, 14)), (50, 30, 25))
    if "vessels" in drawn:
        painter.branches(int(rng.integers(2, 6)), (190, 40, 50))
    if "scale" in drawn:
        painter.dots(None, int(rng.integers(6, 20)), (240, 235, 230), (0.004, 0.012))
    if "central_patch" in drawn:
        r = painter.unit * rng.uniform(0.03, 0.06)
        painter.draw.ellipse([centre[0] - r, centre[1] - r * 0.8, centre[0] + r, centre[1] + r * 0.8],
                             fill=(235, 220, 210))
    if "lacunae" in drawn:
        painter.dots(None, int(rng.integers(4, 10)), PURPLE, (0.015, 0.03))


def _draw_hairs_and_bubbles(rng: np.random.Generator, image: Image.Image, unit: float) -> None:
    """Dark curved hairs and bright air bubbles, drawn in place (not part of any mask)."""
    width, height = image.size
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(0, 6))):
        start, angle = rng.uniform(0, 1, 2) * (width, height), rng.uniform(0, 2 * np.pi)
        length, bend = rng.uniform(0.3, 0.9) * unit, rng.uniform(-0.6, 0.6)
        points = [tuple(start + length * t * np.array([np.cos(angle + bend * t), np.sin(angle + bend * t)]))
                  for t in np.linspace(0, 1, 12)]
        shade = int(rng.integers(20, 70))
        draw.line(points, fill=(shade, max(0, shade - 5), shade), width=max(1, int(unit / 180) + 1))
    for _ in range(int(rng.integers(0, 3))):
        centre, r = rng.uniform(0, 1, 2) * (width, height), rng.uniform(0.02, 0.07) * unit
        draw.ellipse([centre[0] - r, centre[1] - r, centre[0] + r, centre[1] + r], outline=(250, 250, 250),
                     width=max(1, int(unit / 120)))


def _supersample(width: int, height: int) -> int:
    return 2 if max(width, height) <= 512 else 1  # anti-alias small images; large ones need no help


def render_lesion(diagnosis: str, size: int | tuple[int, int], rng: np.random.Generator,
                  skin_type: int | None = None) -> Rendering:
    """Draw one dermoscopy image of ``diagnosis``; ``size`` is a side or (width, height); ``skin_type`` 1–6 the
    Fitzpatrick type of the surrounding skin (None: the default light skin)."""
    if diagnosis not in STYLES:
        raise KeyError(f"no synthetic style for diagnosis {diagnosis!r}; known: {sorted(STYLES)}")
    width, height = (size, size) if isinstance(size, int) else size
    style = shape_style = colour_style = STYLES[diagnosis]
    if style.look_alike is not None:
        if rng.random() < style.look_alike_p:
            shape_style = STYLES[style.look_alike]
        if rng.random() < style.look_alike_p:
            colour_style = STYLES[style.look_alike]
    scale = _supersample(width, height)
    w, h = width * scale, height * scale
    unit = float(min(w, h))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    centre = np.array([w / 2, h / 2]) + rng.uniform(-0.08, 0.08, 2) * unit
    dx, dy = xx - centre[0], yy - centre[1]
    rho, theta = np.hypot(dx, dy) / unit, np.arctan2(dy, dx)
    r0 = rng.uniform(*shape_style.radius)
    inside = (rho < _border_radius(np.random.default_rng(rng.integers(2**32)), theta, shape_style, r0))
    inside = inside.astype(np.float32)
    blur = unit / 150 * shape_style.border_blur
    soft = np.asarray(Image.fromarray((inside * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(blur)),
                      np.float32)[..., None] / 255.0
    pixels = _skin(rng, h, w, skin_type) * (1 - soft) + _lesion_colour(rng, h, w, colour_style) * soft
    from_centre = np.hypot(yy - h / 2, xx - w / 2) / unit
    vignette = np.clip((0.72 * max(w, h) / unit - from_centre) / 0.08, 0.0, 1.0)[..., None]
    pixels = pixels * vignette + 10.0 * (1 - vignette) + rng.normal(0, 3.0, pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")

    painter = _Painter(image, inside, rng, unit)
    border = np.hypot(dx, dy) * inside
    radius_at = lambda angle: float(border[(np.abs(theta - angle) < 0.05) & (inside > 0)].max(initial=r0 * unit))  # noqa: E731
    _draw_structures(painter, style, rng, centre, radius_at)
    _draw_hairs_and_bubbles(rng, image, unit)

    mask = Image.fromarray((inside * 255).astype(np.uint8), "L")
    down = lambda m: m.resize((width, height), Image.NEAREST) if scale > 1 else m  # noqa: E731
    image = image.resize((width, height), Image.LANCZOS) if scale > 1 else image
    return Rendering(image, down(mask), {name: down(m) for name, m in painter.masks.items()})


def render_vitiligo(vitiligo: bool, size: int | tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """Clinical photo: vitiligo = sharp milky-white patches; look-alike = ill-defined partial hypopigmentation."""
    width, height = (size, size) if isinstance(size, int) else size
    unit = float(min(width, height))
    pixels = _skin(rng, height, width)
    patch = np.zeros((height, width), np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for _ in range(int(rng.integers(1, 4))):
        centre = rng.uniform(0.2, 0.8, 2) * (width, height)
        rho, theta = np.hypot(xx - centre[0], yy - centre[1]) / unit, np.arctan2(yy - centre[1], xx - centre[0])
        border = _border_radius(rng, theta, STYLES["mel"], rng.uniform(0.1, 0.25))
        patch = np.maximum(patch, (rho < border).astype(np.float32))
    sharpness = rng.uniform(0.5, 1.5) if vitiligo else rng.uniform(4.0, 8.0)
    patch = np.asarray(Image.fromarray((patch * 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(unit / 100 * sharpness)), np.float32)[..., None] / 255.0
    strength = rng.uniform(0.75, 0.95) if vitiligo else rng.uniform(0.35, 0.65)
    white = np.array([245, 235, 228], np.float32)
    pixels = pixels * (1 - strength * patch) + white * strength * patch + rng.normal(0, 3.0, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
