"""A model package's network as ONNX, and onnxruntime as a prediction backend. Free of Lightning.

``model.onnx`` holds :class:`~lightning_modules.nets.package.Predictor`: input ``images``, (batch, views, 3, H, W)
— or (batch, N_C, 3, s, s) crops for a crop model — with the batch (and the number of views) dynamic and H × W the
size the package's evaluation pipeline gives (:func:`input_shape`; dynamic too where it keeps each image's own); output
``probabilities``, (batch, K), the views or crops fused, **before** D4 averaging and temperature scaling: apply
softmax(log p / T) with ``config.json``'s ``prediction.temperature`` where it is set (``dermlab classify --onnx`` and
:meth:`~lightning_modules.nets.package.ModelPackage.batches` do). The export goes through ``torch.onnx.export``
(the dynamo exporter, opset 18); onnx, onnxruntime and onnxscript come with the ``export`` extra.
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


def export_onnx(package: ModelPackage, path: Path) -> Path:
    """Write the package's :class:`~lightning_modules.nets.package.Predictor` to ``path`` as ONNX (dynamic batch;
    dynamic views for a views model) and check it against PyTorch on a random batch (to 1e-4).

    Raises:
        DataError: onnx / onnxscript missing, the exporter fails on this network (its message), or the ONNX
            output differs from PyTorch's.
    """
    _require("onnx")
    _require("onnxscript")
    predictor = package.predictor()
    example = example_input(package)
    dims = {0: torch.export.Dim("batch", min=1)}
    if package.prediction["fusion"] == "views":
        dims[1] = torch.export.Dim("views", min=1)
    if input_shape(package)[1]:  # images at their own size
        dims[3], dims[4] = torch.export.Dim("height", min=8), torch.export.Dim("width", min=8)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():  # the exporter's progress lines
        # tensors a network keeps for its figures (the patch attention's last crop weights, the hierarchical
        # model's node maps) or nn.GRU's weight list: not part of the exported graph
        warnings.filterwarnings("ignore", message="The tensor attributes? .* assigned during export")
        try:
            torch.onnx.export(predictor, (example,), str(path), input_names=["images"],
                              output_names=["probabilities"], dynamic_shapes={"images": dims}, opset_version=OPSET,
                              dynamo=True, external_data=False)
        except Exception as error:  # noqa: BLE001  (the exporter raises many kinds; the message says what)
            raise DataError(f"ONNX export of {type(package.net).__name__} failed: {str(error).splitlines()[0]}"
                            ) from None
    check = torch.rand_like(example.repeat(2, *([1] * (example.ndim - 1))))
    with torch.inference_mode():
        expected = predictor(check).numpy()
    got = onnx_backend(path)(check).numpy()
    difference = float(np.abs(expected - got).max())
    if difference > 1e-4:
        raise DataError(f"'{path}': the ONNX model differs from PyTorch by {difference:.2e} on a random batch")
    return path


def onnx_backend(path: Path, threads: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    """An onnxruntime session of ``model.onnx`` as a function of a (B, ..., H, W) tensor to (B, K) probabilities.

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

    def run(images: torch.Tensor) -> torch.Tensor:
        (probabilities,) = session.run(["probabilities"], {"images": images.numpy().astype(np.float32)})
        return torch.from_numpy(probabilities)

    return run
