"""A model package's network as ONNX, and onnxruntime as a prediction backend. Free of Lightning.

``model.onnx`` holds :class:`~lightning_modules.nets.package.Predictor`: input ``images``, (batch, views, 3, H, W)
— or (batch, N_C, 3, s, s) crops for a crop model — with the batch (and the number of views) dynamic and H × W the
size the package's evaluation pipeline gives (:func:`input_shape`; dynamic too where it keeps each image's own); output
``probabilities``, (batch, K), the views or crops fused, **before** D4 averaging and temperature scaling: apply
softmax(log p / T) with ``config.json``'s ``prediction.temperature`` where it is set (``dermlab classify --onnx`` and
:meth:`~lightning_modules.nets.package.ModelPackage.batches` do). A model with a patient-metadata branch has a second
input, ``metadata``: (batch, F) float32, each image's fields encoded as ``config.json``'s ``metadata`` says
(:func:`lightning_modules.nets.package_metadata.encoded_metadata` encodes them). The export goes through
``torch.onnx.export`` (the dynamo exporter, opset 18: ``torch.export`` traces the forward in Python, so the branch's
fed batch is an ordinary traced value of the ``metadata`` input); onnx, onnxruntime and onnxscript come with the
``export`` extra.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from dermlab.errors import DataError
from lightning_modules.nets.package import ModelPackage

OPSET = 18


def _require(module: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise DataError(f"ONNX needs the '{module}' package: pip install 'dermlab[export]' (or make install)") from None


#: Two grey images of different sizes that :func:`input_shape` sends through a package's evaluation pipeline.
PROBES = ((600, 800), (480, 640))


def input_shape(package: ModelPackage) -> tuple[tuple[int, ...], bool]:
    """The shape of one image's input as the package's evaluation pipeline gives it, (3, H, W) or (N_C, 3, s, s)
    crops, and whether H and W follow the image's own size (a pipeline that does not resize it).

    Read off the pipeline itself (two grey images of :data:`PROBES`' sizes through
    :meth:`~lightning_modules.nets.package.ModelPackage.dataset`), not ``image_size``: a pipeline may end in
    another size (the ``isic2018`` triplet network's ``CenterCrop`` of its own side).
    """
    dataset = package.dataset([np.full((*size, 3), 128, np.uint8) for size in PROBES])
    first, second = (tuple(dataset[i]["image"].shape) for i in range(len(PROBES)))
    return first, first[-2:] != second[-2:]


def example_input(package: ModelPackage, batch: int = 2) -> torch.Tensor:
    """A (batch, views or crops, 3, H, W) input of the package's evaluation shape (:func:`input_shape`; zeros)."""
    shape, _ = input_shape(package)
    return torch.zeros(batch, *shape) if len(shape) == 4 else torch.zeros(batch, 1, *shape)


def example_metadata(package: ModelPackage, batch: int = 2) -> torch.Tensor | None:
    """A (batch, F) encoded metadata input for a metadata package (every field missing), None for an image-only
    one."""
    encoding = package.metadata_encoding
    if encoding is None:
        return None
    missing = torch.zeros(encoding.width)
    for part in encoding.layout:
        missing[part.start:part.stop] = torch.tensor(part.missing)
    return missing.repeat(batch, 1)


def export_onnx(package: ModelPackage, path: Path) -> Path:
    """Write the package's :class:`~lightning_modules.nets.package.Predictor` to ``path`` as ONNX (dynamic batch;
    dynamic views for a views model; a second input ``metadata`` (batch, F) for a metadata model) and check it
    against PyTorch on a random batch (to 1e-4).

    Raises:
        DataError: onnx / onnxscript missing, the exporter fails on this network (its message), or the ONNX
            output differs from PyTorch's.
    """
    _require("onnx")
    _require("onnxscript")
    predictor = package.predictor()
    example, metadata = example_input(package), example_metadata(package)
    batch = torch.export.Dim("batch", min=1)
    dims = {0: batch}
    if package.prediction["fusion"] == "views":
        dims[1] = torch.export.Dim("views", min=1)
    if input_shape(package)[1]:  # images at their own size
        dims[3], dims[4] = torch.export.Dim("height", min=8), torch.export.Dim("width", min=8)
    inputs, names, shapes = (example,), ["images"], {"images": dims}
    if metadata is not None:  # the same batch dimension: one row of metadata per image
        inputs, names, shapes = (example, metadata), [*names, "metadata"], {**shapes, "metadata": {0: batch}}
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():  # the exporter's progress lines
        # tensors a network keeps for its figures (the patch attention's last crop weights, the hierarchical
        # model's node maps) or nn.GRU's weight list: not part of the exported graph
        warnings.filterwarnings("ignore", message="The tensor attributes? .* assigned during export")
        # the metadata input shares the images' batch dimension, which the exporter names once
        warnings.filterwarnings("ignore", message="# The axis name: .* will not be used")
        try:
            torch.onnx.export(predictor, inputs, str(path), input_names=names, output_names=["probabilities"],
                              dynamic_shapes=shapes, opset_version=OPSET, dynamo=True, external_data=False)
        except Exception as error:  # noqa: BLE001  (the exporter raises many kinds; the message says what)
            raise DataError(f"ONNX export of {type(package.net).__name__} failed: {str(error).splitlines()[0]}"
                            ) from None
    check = torch.rand_like(example.repeat(2, *([1] * (example.ndim - 1))))
    check_metadata = None if metadata is None else random_metadata(package, len(check))
    with torch.inference_mode():
        expected = predictor(check, check_metadata).numpy()
    got = onnx_backend(path)(check, check_metadata).numpy()
    difference = float(np.abs(expected - got).max())
    if difference > 1e-4:
        raise DataError(f"'{path}': the ONNX model differs from PyTorch by {difference:.2e} on a random batch")
    return path


def random_metadata(package: ModelPackage, batch: int, seed: int = 0) -> torch.Tensor:
    """(batch, F) valid encodings of random field values: a standard-normal age or its missing indicator, one
    category (or missing) per text field."""
    encoding = package.metadata_encoding
    generator = torch.Generator().manual_seed(seed)
    out = torch.zeros(batch, encoding.width)
    for part in encoding.layout:
        width = part.stop - part.start
        choice = torch.randint(0, width, (batch,), generator=generator)
        if part.name == "age":
            known = choice == 0
            out[known, part.start] = torch.randn(int(known.sum()), generator=generator)
            out[~known, part.start + 1] = 1.0
        else:
            out[torch.arange(batch), part.start + choice] = 1.0
    return out


def onnx_backend(path: Path, threads: int = 0) -> Callable[..., torch.Tensor]:
    """An onnxruntime session of ``model.onnx`` as a function of a (B, ..., H, W) tensor (and, for a metadata
    model, its (B, F) encoded metadata) to (B, K) probabilities.

    Args:
        path: the ONNX file.
        threads: intra-op threads (0: onnxruntime's default).

    Raises:
        DataError: onnxruntime missing, or the file cannot be loaded (named).
    """
    _require("onnxruntime")
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001  (onnxruntime's own exception types)
        raise DataError(f"'{path}' cannot be loaded by onnxruntime: {error}") from None

    takes_metadata = "metadata" in {node.name for node in session.get_inputs()}

    def run(images: torch.Tensor, metadata: torch.Tensor | None = None) -> torch.Tensor:
        if (metadata is not None) != takes_metadata:
            raise DataError(f"'{path}' takes {'images and metadata' if takes_metadata else 'images only'}, given "
                            f"{'images only' if metadata is None else 'metadata too'}")
        feeds = {"images": images.numpy().astype(np.float32)}
        if metadata is not None:
            feeds["metadata"] = metadata.numpy().astype(np.float32)
        (probabilities,) = session.run(["probabilities"], feeds)
        return torch.from_numpy(probabilities)

    return run
