"""A trained classifier as a self-contained model package, and the model it loads back to. Free of Lightning.

The layout is the one the Hugging Face Hub uses for timm models::

    PKG_DIR/
      config.json          the network recipe, class names, evaluation preprocessing, prediction rule, provenance
      model.safetensors    the network's weights (no pickle)
      README.md            the model card (:mod:`dermlab.files.model_card`)
      model.onnx           optional: the network and its view / crop fusion, dynamic batch

:func:`write_package` writes ``config.json`` and ``model.safetensors``; :meth:`ModelPackage.load` reads them back:
the network is rebuilt from its recipe (:mod:`lightning_modules.nets.recipes`) and the weights load strictly, so a
package whose weights do not fit its recipe is refused with the tensor named. ``config.json`` records the SHA-256
of ``model.safetensors`` and ``model.onnx``: a missing or altered file is refused by name. The model card may be
edited freely (it is not hashed).

:meth:`ModelPackage.predict` gives the class probabilities of image files or arrays through the run's evaluation
preprocessing (:mod:`datamodules.datasets.image_files`) and its prediction rule (:mod:`lightning_modules.nets.fusion`);
a model with a patient-metadata branch takes each image's metadata beside it, encoded as its training split was
(:mod:`lightning_modules.nets.package_metadata`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import nn
from torch.utils.data import DataLoader

from datamodules.datasets.image_files import ImageInput, ImageInputsDataset, skip_unreadable
from datamodules.metadata import MetadataEncoding
from datamodules.transforms import Normalisation, build_transforms
from dermlab.errors import DataError
from dermlab.files.io import file_sha256
from dermlab.files.model_card import views_at_test
from lightning_modules.nets.fusion import evaluated_probabilities, fused_probabilities
from lightning_modules.nets.metadata_branch import fed
from lightning_modules.nets.package_metadata import MetadataValues, encoded_metadata, package_encoding
from lightning_modules.nets.recipes import build_from_recipe

log = logging.getLogger(__name__)

FORMAT = "dermlab-model"  #: ``config.json``'s ``format``
FORMAT_VERSION = 1  #: raised when the layout changes incompatibly
CONFIG, WEIGHTS, ONNX, CARD = "config.json", "model.safetensors", "model.onnx", "README.md"


class Predictor(nn.Module):
    """The network and its prediction rule as one plain module: (B, V, C, H, W) views (or (B, N_C, C, s, s) crops)
    → (B, K) fused probabilities (:func:`~lightning_modules.nets.fusion.fused_probabilities`), before D4 averaging
    and temperature scaling (which :meth:`ModelPackage.predict` applies after it, for PyTorch and ONNX alike). A
    network with a metadata branch takes the images' encoded metadata (B, F) as a second input, fed to its branch
    for the call (:func:`~lightning_modules.nets.metadata_branch.fed`).

    Args:
        net: the classifier network.
        fusion: ``views`` or ``crops``.
        crop_fusion: what the ``crops`` fusion averages (``logits`` or ``probabilities``).
    """

    def __init__(self, net: nn.Module, fusion: str = "views", crop_fusion: str | None = "logits"):
        super().__init__()
        self.net, self.fusion, self.crop_fusion = net, fusion, crop_fusion or "logits"

    def forward(self, images: torch.Tensor, metadata: torch.Tensor | None = None) -> torch.Tensor:
        """(B, K) probabilities of a batch of views or crops, with its (B, F) encoded metadata for a metadata
        network.

        Raises:
            ValueError: metadata for an image-only network, none for a metadata network, or not (B, F).
        """
        if metadata is not None:
            torch._check(metadata.shape[0] == images.shape[0])  # one row per image (one batch size under export)
            if self.fusion == "views" and images.ndim == 5:  # each view's row, image-major as the views are flattened
                # (a gather, not expand: expanding a size-1 dimension would pin the exported views to the example's)
                rows = torch.arange(images.shape[0] * images.shape[1], device=metadata.device) // images.shape[1]
                metadata = metadata.index_select(0, rows)
        with fed(self.net, metadata):
            return fused_probabilities(self.net, images, self.fusion, self.crop_fusion)


def write_package(folder: Path, net: nn.Module, config: dict[str, Any]) -> Path:
    """Write ``net``'s weights (``model.safetensors``) and ``config`` (with the format, the weights' SHA-256 and
    the file list) as ``config.json`` into ``folder`` (created). Returns ``folder``.

    ``config`` holds ``architecture`` (``{"builder", "arguments"}``), ``class_names``, ``preprocessing`` and
    ``prediction`` (see :class:`ModelPackage`) and whatever provenance the caller adds.
    """
    folder.mkdir(parents=True, exist_ok=True)
    save_model(net, str(folder / WEIGHTS))
    (folder / WEIGHTS).chmod(0o644)  # safetensors creates it private; a package is made to be shared
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, **config,
              "files": {WEIGHTS: file_sha256(folder / WEIGHTS), **config.get("files", {})}}
    write_config(folder, config)
    return folder


def write_config(folder: Path, config: dict[str, Any]) -> None:
    """``config.json``, indented, keys in the given order."""
    (folder / CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def read_config(folder: Path) -> dict[str, Any]:
    """``config.json`` of a package, checked for the format and every hashed file.

    Raises:
        DataError: no folder, no or unreadable ``config.json``, another format, a newer format version, or a listed
            file missing or altered (its SHA-256 differs) — each naming the file and what to do.
    """
    if not folder.is_dir():
        raise DataError(f"'{folder}' is not a model package folder (dermlab export RUN_DIR --out PKG_DIR writes one)")
    path = folder / CONFIG
    if not path.is_file():
        raise DataError(f"'{path}' is missing: '{folder}' is not a complete model package (export it again)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(f"'{path}' is not valid JSON ({error}); the package was altered or damaged: export it again"
                        ) from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise DataError(f"'{path}' is not a dermlab model package's config (no \"format\": \"{FORMAT}\")")
    if int(config.get("format_version", 0)) > FORMAT_VERSION:
        raise DataError(f"'{path}' is of package format {config['format_version']}, newer than this dermlab reads "
                        f"({FORMAT_VERSION}): update dermlab")
    for name, expected in config.get("files", {}).items():
        file = folder / name
        if not file.is_file():
            raise DataError(f"'{file}' is missing from the model package (config.json lists it): copy the whole "
                            "folder, or export it again")
        if file_sha256(file) != expected:
            raise DataError(f"'{file}' was altered: its SHA-256 differs from the one config.json records. Use the "
                            "package as exported (export it again from the run)")
    return config


@dataclass
class ModelPackage:
    """A loaded model package: the plain network and what it takes to predict as the run evaluated.

    ``folder`` is the package folder, ``config`` its ``config.json``, ``net`` the classifier network (a plain
    ``torch.nn.Module``, in eval mode, on the CPU).
    """

    folder: Path
    config: dict[str, Any]
    net: nn.Module

    @classmethod
    def load(cls, folder: str | Path, channels_last: bool = True) -> ModelPackage:
        """Read and check a package (:func:`read_config`), rebuild its network and load its weights strictly.

        Args:
            folder: the package folder.
            channels_last: keep the network's 4-D weights in channels-last (NHWC) layout, the one oneDNN's CPU
                convolutions read (faster for every backbone ``benchmarks/channels_last.py`` measures; results differ
                by float round-off only); False keeps PyTorch's default NCHW.

        Raises:
            DataError: see :func:`read_config`; weights that do not fit the recipe (the first tensor named).
        """
        folder = Path(folder).expanduser()
        config = read_config(folder)
        recipe = config["architecture"]
        net = build_from_recipe(recipe["builder"], recipe["arguments"], weights_follow=True,
                                metadata=recipe.get("metadata"))
        try:
            missing, unexpected = load_model(net, str(folder / WEIGHTS), strict=False)
        except (SafetensorError, RuntimeError) as error:
            raise DataError(f"'{folder / WEIGHTS}' does not fit the network config.json describes: {error}") from None
        if missing or unexpected:
            raise DataError(f"'{folder / WEIGHTS}' does not fit the network config.json describes: "
                            f"{'missing ' + sorted(missing)[0] if missing else 'unexpected ' + sorted(unexpected)[0]}")
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        return cls(folder, config, net.eval())

    # --- what the package says -------------------------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        """The classes, in the order of the probability columns."""
        return list(self.config["class_names"])

    @property
    def preprocessing(self) -> dict[str, Any]:
        """The run's evaluation preprocessing, with ``image_size``, ``eval_transforms``, ``resize_to``, ``max_side``,
        ``mean`` / ``std``, ``views`` / ``crops`` / ``crop_size`` / ``crop_positions`` and ``seed``."""
        return self.config["preprocessing"]

    @property
    def prediction(self) -> dict[str, Any]:
        """The run's prediction rule, with ``fusion``, ``crop_fusion``, ``tta`` and ``temperature``."""
        return self.config["prediction"]

    @property
    def metadata_encoding(self) -> MetadataEncoding | None:
        """The encoding of the patient metadata the model takes beside each image, or None for an image-only model."""
        return package_encoding(self.config)

    def has_test_time_views(self) -> bool:
        """Whether the run was tested with more than the one view classify uses by default (several
        ``views``, or D4 averaging)."""
        return views_at_test(self.config)

    def predictor(self) -> Predictor:
        """The network with its view / crop fusion (:class:`Predictor`), what ``model.onnx`` holds."""
        return Predictor(self.net, self.prediction["fusion"], self.prediction.get("crop_fusion")).eval()

    def dataset(self, images: Sequence[ImageInput], tta: bool = False) -> ImageInputsDataset:
        """``images`` through the evaluation pipeline: one view (the crops a crop model takes), or with ``tta`` the
        run's test-time views."""
        pre = self.preprocessing
        transform = build_transforms(pre["eval_transforms"], pre["image_size"], train=False,
                                     resize_to=pre.get("resize_to"),
                                     normalisation=Normalisation(tuple(pre["mean"]), tuple(pre["std"])))
        return ImageInputsDataset(images, transform, pre.get("max_side"), views=pre.get("views", 1) if tta else 1,
                                  crops=pre.get("crops", 0), crop_size=pre.get("crop_size") or pre["image_size"],
                                  crop_positions=pre.get("crop_positions", "ordered"), seed=pre.get("seed", 0))

    # --- prediction ------------------------------------------------------------------------------------------
    def batches(self, images: Sequence[ImageInput], tta: bool = False, batch_size: int = 16, workers: int = 0,
                fused: Callable[..., torch.Tensor] | None = None, metadata: MetadataValues | None = None
                ) -> Iterator[tuple[np.ndarray, Any]]:
        """(indices (B,), probabilities (B, K) float64, unreadable [(index, message)]) per batch of ``images``.

        Args:
            images: paths or (H, W, 3) uint8 arrays.
            tta: the run's test-time views (several views, D4) instead of one view.
            batch_size: images per forward pass.
            workers: DataLoader worker processes decoding images.
            fused: the backend from (B, V | N_C, C, H, W) (and (B, F) metadata) to fused probabilities (default:
                :meth:`predictor` in PyTorch; ``dermlab classify --onnx`` passes an onnxruntime session's).
            metadata: for a model with a metadata branch, each image's patient fields: a pandas DataFrame or a mapping
                of column → values, one row per image in the order of ``images``
                (:func:`~lightning_modules.nets.package_metadata.encoded_metadata`).

        Raises:
            DataError: metadata missing for a metadata model or given to an image-only one, or unusable (named).
        """
        names = [str(image) if isinstance(image, (str, Path)) else f"image {i}" for i, image in enumerate(images)]
        encoded = encoded_metadata(self.metadata_encoding, metadata, names)
        fused = self.predictor() if fused is None else fused
        dihedral = tta and self.prediction.get("tta") == "dihedral"
        temperature = self.prediction.get("temperature")
        loader = DataLoader(self.dataset(images, tta), batch_size=batch_size, num_workers=workers,
                            collate_fn=skip_unreadable)
        with torch.inference_mode():
            for batch in loader:
                if batch["image"] is None:
                    yield np.zeros(0, dtype=int), np.zeros((0, len(self.class_names))), batch["errors"]
                    continue
                inputs = batch["image"]
                if inputs.ndim == 4:  # one view, or a crop model's whole image (eval_crops: 0, ``patch``'s
                    inputs = inputs[:, None]  # Downsampling / Single-Crop): (B, 1, C, H, W), the one input form
                if encoded is not None:  # the batch's metadata beside every view of its images
                    rows = torch.from_numpy(encoded[batch["index"].numpy()])
                    backend = (lambda views, rows=rows: fused(views, rows))  # noqa: E731
                else:
                    backend = fused
                probabilities = evaluated_probabilities(backend, inputs, dihedral, temperature)
                yield batch["index"].numpy(), probabilities.double().numpy(), batch["errors"]

    def predict(self, images: Sequence[ImageInput] | ImageInput, tta: bool = False, batch_size: int = 16,
                metadata: MetadataValues | None = None) -> np.ndarray:
        """(N, K) class probabilities of ``images``, columns in :attr:`class_names` order.

        Args:
            images: paths, PIL images or arrays ((H, W, 3) uint8 RGB; grayscale, RGBA and 16-bit are converted as
                such files are, :func:`dermlab.files.io.rgb_array`); one alone counts as a list of one, an
                (N, H, W, 3) array as N images.
            tta: the run's test-time views (see :meth:`batches`).
            batch_size: images per forward pass.
            metadata: a metadata model's patient fields, one row per image in order (see :meth:`batches`), e.g.
                ``pd.DataFrame({"age": [55, None], "sex": ["male", ""], "localization": ["back", "unknown"]})``.

        Raises:
            DataError: an image cannot be read or is of an unusable kind (named; ``dermlab classify`` skips and
                counts unreadable files instead); metadata missing for a metadata model, given to an image-only one,
                or unusable (named).
        """
        if isinstance(images, (str, Path, Image.Image)) or (isinstance(images, np.ndarray) and images.ndim in (2, 3)):
            images = [images]
        out = np.zeros((len(images), len(self.class_names)))
        for indices, probabilities, errors in self.batches(images, tta, batch_size, metadata=metadata):
            if errors:
                raise DataError(errors[0][1])
            out[indices] = probabilities
        return out
