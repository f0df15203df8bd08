"""Segmentation post-processing (``isic2018`` paper 002 §1): a dense CRF, then morphology.

"We leverage the Conditional Random Fields (CRFs) [Krähenbühl & Koltun] with morphological operations to
refine the generated segmentation masks and remove the isolated small regions." The paper gives no
parameters; the defaults here (stated, and all settable) are:

* **dense CRF** (``pydensecrf2``): unary −log p from the lesion probability (clipped to [0.01, 0.99]), a
  Gaussian smoothness kernel (σ_xy = 3 px, weight 3) and an appearance kernel on the image colours
  (σ_xy = 50 px, σ_rgb = 10, weight 5), 5 mean-field iterations — the values of the CRF paper's
  segmentation experiments and DeepLab's. σ_xy is in pixels of the map it runs on.
* **morphology** (scipy.ndimage) on the CRF's mask: remove islands smaller than ``min_island`` of the image
  area (0.5 %) — the paper's "remove the isolated small regions" — and fill holes. ``keep_largest: true``
  (off by default) keeps only the largest component instead, which also drops large lesion parts the CRF
  split apart: more than the paper says.

Works on numpy arrays, so it refines any model's output: in a LightningModule's test / predict step
(``postprocess:`` of :class:`lightning_modules.segmentation.LesionSegmenter`) or on written mask files with
``dermlab postprocess``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class PostProcess:
    """Settings of :func:`postprocess` (CRF kernels as in the module docstring; ``crf: false`` skips it).

    ``min_island``: components smaller than this fraction of the image area are removed (the paper's reading,
    on by default); ``keep_largest``: keep only the largest component (an option, off by default)."""

    crf: bool = True
    iterations: int = 5
    gaussian_sxy: float = 3.0
    gaussian_compat: float = 3.0
    bilateral_sxy: float = 50.0
    bilateral_srgb: float = 10.0
    bilateral_compat: float = 5.0
    min_island: float = 0.005
    fill_holes: bool = True
    keep_largest: bool = False


DEFAULTS = PostProcess()


def dense_crf(image: np.ndarray, probability: np.ndarray, settings: PostProcess = DEFAULTS) -> np.ndarray:
    """P(lesion) after mean-field inference of a two-label dense CRF on an (H, W, 3) uint8 image."""
    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import unary_from_softmax

    height, width = probability.shape
    if image.shape[:2] != (height, width):
        raise ValueError(f"image {image.shape[:2]} and probability map {probability.shape} differ in size")
    p = np.clip(probability.astype(np.float32), 0.01, 0.99)
    crf = dcrf.DenseCRF2D(width, height, 2)
    crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(np.stack([1 - p, p]))))
    crf.addPairwiseGaussian(sxy=settings.gaussian_sxy, compat=settings.gaussian_compat)
    crf.addPairwiseBilateral(sxy=settings.bilateral_sxy, srgb=settings.bilateral_srgb,
                             rgbim=np.ascontiguousarray(image.astype(np.uint8)), compat=settings.bilateral_compat)
    return np.asarray(crf.inference(settings.iterations), dtype=np.float32).reshape(2, height, width)[1]


def clean_mask(mask: np.ndarray, settings: PostProcess = DEFAULTS) -> np.ndarray:
    """Morphology on a boolean (H, W) mask: drop islands < ``min_island`` × H·W pixels (or, with
    ``keep_largest``, every component but the largest), then fill holes."""
    mask = mask.astype(bool)
    labels, count = ndimage.label(mask)
    if count:
        sizes = np.bincount(labels.ravel())[1:]
        keep = sizes >= settings.min_island * mask.size
        if settings.keep_largest:
            keep = np.zeros_like(keep)
            keep[sizes.argmax()] = True
        mask = keep[labels - 1] & (labels > 0)
    if settings.fill_holes:
        mask = ndimage.binary_fill_holes(mask)
    return mask


def postprocess(image: np.ndarray, probability: np.ndarray, settings: PostProcess = DEFAULTS) -> np.ndarray:
    """The refined boolean mask of an (H, W) lesion probability map and its (H, W, 3) uint8 image."""
    if settings.crf:
        probability = dense_crf(image, probability, settings)
    return clean_mask(probability > 0.5, settings)
