"""timm backbones with local pretrained weights (no hub access at run time).

``pretrained_weights`` is a local ``.safetensors`` or torch state-dict file. timm reads it
through ``pretrained_cfg_overlay={"file": path}`` (with ``torch.load(weights_only=True)``, never
unpickling objects) and re-initialises the classifier when the number of classes differs, so
ImageNet weights fine-tune to any task. A ``.ckpt`` of one of this suite's classifiers also works
(transfer from an earlier run: its backbone loads, a classifier of another size is re-initialised).
``pkg:NAME`` (e.g. ``pkg:efficientnet-lite0``) names weights shipped in an installed package (the
``weights`` extra): they are converted once into a cached timm file (:mod:`.packaged_weights`). Another
project's checkpoint (``efficientnet_pytorch``, torchvision naming) is converted with
``dermlab weights import``. Without a path the network starts from random init and one log line says so.

timm loads a file non-strictly whenever the class count differs from the file's (it drops the classifier and then
ignores every name that does not match), so a file of another layout would load "successfully" with layers left
at random init. :func:`create_backbone` therefore checks that the file holds every tensor of the network outside
its classifier (BatchNorm's ``num_batches_tracked`` counters and the name prefixes a module lists in
``not_in_pretrained_files``, ARL's α and RAN's attention modules, aside) and stops naming the first one it lacks.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import timm
import torch
from safetensors import SafetensorError
from torch import nn

from dermlab.errors import DataError
from dermlab.files.checkpoints import read_checkpoint
from lightning_modules.nets.packaged_weights import is_packaged
from lightning_modules.nets.packaged_weights import resolve as resolve_packaged

log = logging.getLogger(__name__)


def create_backbone(name: str, num_classes: int, pretrained_weights: str | None = None,
                    drop_rate: float = 0.0, **backbone_args: Any) -> nn.Module:
    """A timm classifier ``name`` with ``num_classes`` outputs, weights from a local file or random.

    ``backbone_args`` go to the model's constructor (e.g. ``normalisation: channel`` for ``arl_cnn50``).
    """
    if not pretrained_weights:
        log.warning("backbone %s: no pretrained_weights given, starting from RANDOM initialisation", name)
        return timm.create_model(name, pretrained=False, num_classes=num_classes, drop_rate=drop_rate,
                                 **backbone_args)
    if is_packaged(pretrained_weights):
        pretrained_weights = str(resolve_packaged(pretrained_weights, name))
    path = Path(pretrained_weights).expanduser()
    if not path.is_file() and not path.is_dir():
        raise DataError(f"pretrained weights '{path}' do not exist; put the file there (docs/weights.md lists each "
                        "paper's files and how to fetch them once) or pass --model.init_args.pretrained_weights null "
                        "to start from random initialisation.")
    if path.is_dir() or path.suffix == ".ckpt":
        return _from_run_checkpoint(name, num_classes, run_checkpoint(path), drop_rate, **backbone_args)
    try:
        model = timm.create_model(name, pretrained=True, num_classes=num_classes, drop_rate=drop_rate,
                                  pretrained_cfg_overlay={"file": str(path)}, **backbone_args)
    except (RuntimeError, SafetensorError) as error:  # size mismatch, a pickle, a damaged file
        raise DataError(f"cannot load weights '{path}' into {name}: {load_error_reason(error)} (another project's "
                        f"checkpoint? convert it: dermlab weights import {path} --arch {name} --out FILE.safetensors)"
                        ) from None
    check_every_layer_loaded(model, name, path)
    log.info("backbone %s: loaded pretrained weights from %s", name, path)
    if num_classes != model.pretrained_cfg.get("num_classes"):
        small_head_init(model)
    return model


def load_error_reason(error: Exception) -> str:
    """The line of a loading error that says what is wrong: torch's first "size mismatch for …" / "Missing
    key(s) …" line rather than its header, or that a ``.safetensors`` file is damaged."""
    if isinstance(error, SafetensorError):
        return f"the file is damaged or not a safetensors file ({error}); copy it again"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    detail = [line for line in lines[1:] if not line.startswith("Error(s) in loading")]
    return (detail or lines or ["unreadable"])[0]


def check_every_layer_loaded(model: nn.Module, name: str, path: Path) -> None:
    """Raise a DataError naming the first tensor of ``model`` outside its classifier that the weights file at
    ``path`` does not hold by name (timm's non-strict load would have left it at random init)."""
    held = _tensor_names(path)
    classifiers = model.pretrained_cfg.get("classifier") or ()
    heads = tuple(f"{c}." for c in ((classifiers,) if isinstance(classifiers, str) else classifiers))
    exempt = new_by_design(model)
    absent = [k for k in model.state_dict() if k not in held and not k.startswith(heads)
              and not k.endswith("num_batches_tracked") and not (exempt and k.startswith(exempt))]
    prefixed = next((k for k in sorted(held) if k.endswith("." + absent[0])), None) if absent else None
    if prefixed:
        prefix = prefixed[: -len(absent[0])]
        raise DataError(f"cannot load weights '{path}' into {name}: the file holds the network's tensors under the "
                        f"prefix '{prefix}' ('{prefixed}' for '{absent[0]}'); save them without it, e.g. python -c "
                        f"\"from safetensors.torch import load_file, save_file; s = load_file('{path}'); "
                        f"save_file({{k.removeprefix('{prefix}'): v for k, v in s.items()}}, 'FILE.safetensors')\"")
    if absent:
        raise DataError(f"cannot load weights '{path}' into {name}: the file has no '{absent[0]}' ({len(absent)} of "
                        f"the network's tensors outside the classifier are absent), so those layers would stay at "
                        f"random init. Is it {name} in timm's layout? Another project's checkpoint converts with: "
                        f"dermlab weights import {path} --arch {name} --out FILE.safetensors")


def new_by_design(model: nn.Module) -> tuple[str, ...]:
    """The state-dict name prefixes of the tensors a method adds to a pretrained network (each module's
    ``not_in_pretrained_files``: ARL's α, RAN's attention modules), which weights files of the plain network lack."""
    return tuple(f"{module_name}.{prefix}".lstrip(".") for module_name, module in model.named_modules()
                 for prefix in getattr(module, "not_in_pretrained_files", ()))


def _tensor_names(path: Path) -> set[str]:
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as file:  # reads the header only
            return set(file.keys())
    return set(timm.models.load_state_dict(str(path), weights_only=True))


def small_head_init(model: nn.Module) -> None:
    """Re-initialise a new linear classifier over pretrained features as N(0, 0.01²) weights and zero bias, so
    fine-tuning starts from near-uniform predictions. timm's own init depends on the family: EfficientNet draws
    U(±1/√num_classes), which for 2 classes over 1,280 pooled features gives logits of ±10 and a first-epoch
    cross-entropy near 5 (measured on the demo); VGG already uses N(0, 0.01²)."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if isinstance(head, nn.Linear):
        nn.init.normal_(head.weight, std=0.01)
        nn.init.zeros_(head.bias)


def run_checkpoint(source: str | Path) -> Path:
    """A classifier checkpoint from a ``.ckpt`` path or a finished run / grid cell folder (its result.json)."""
    path = Path(source)
    if path.is_dir():
        result = path / "result.json"
        if not result.is_file():
            failed = " It failed: see its cell.log." if (path / "failed.json").is_file() else ""
            raise DataError(f"run '{path}' has not finished (no result.json).{failed} Run it first, or give a .ckpt.")
        checkpoint = json.loads(result.read_text()).get("checkpoint")
        if not checkpoint:
            raise DataError(f"run '{path}' saved no best checkpoint.")
        path = Path(checkpoint)
    if not path.is_file():
        raise DataError(f"checkpoint '{path}' does not exist; give a .ckpt or a finished run folder.")
    return path


def checkpoint_net_state(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(hyper-parameters, the timm network's state dict) of a saved dermlab classifier checkpoint; a file that
    cannot be read stops with a DataError naming it and the other checkpoints of its folder."""
    checkpoint = read_checkpoint(path, weights_only=False, advice="give one of them as pretrained_weights instead")
    state = checkpoint.get("state_dict", {})
    prefix = "net.base." if any(k.startswith("net.base.") for k in state) else "net."
    net_state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not net_state:
        raise DataError(f"checkpoint '{path}' holds no classifier network (no '{prefix}' weights); "
                        "is it a dermlab run?")
    return checkpoint.get("hyper_parameters", {}), net_state


def _from_run_checkpoint(name: str, num_classes: int, path: Path, drop_rate: float,
                         **backbone_args: Any) -> nn.Module:
    model = timm.create_model(name, pretrained=False, num_classes=num_classes, drop_rate=drop_rate, **backbone_args)
    _, state = checkpoint_net_state(path)
    own = model.state_dict()
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if mismatched and not all(k.startswith(model.default_cfg.get("classifier", "fc")) for k in mismatched):
        raise DataError(f"cannot load '{path}' into {name}: {mismatched[0]} has another shape; was it trained "
                        "with this backbone?")
    missing, unexpected = model.load_state_dict({k: v for k, v in state.items() if k not in mismatched}, strict=False)
    exempt = new_by_design(model)
    if unexpected or [k for k in missing if k not in mismatched and not (exempt and k.startswith(exempt))]:
        raise DataError(f"cannot load '{path}' into {name}: it was trained with another backbone "
                        f"({(unexpected or missing)[0]} does not match).")
    log.info("backbone %s: loaded weights from run checkpoint %s%s", name, path,
             f" (classifier re-initialised for {num_classes} classes)" if mismatched else "")
    return model


def classifier_net_from_checkpoint(path: str | Path) -> nn.Module:
    """The timm network of a saved classifier of this suite (any method whose ``net`` is or wraps one).

    Rebuilt from the checkpoint's hyper-parameters (``backbone``, ``num_classes``, and ``main_head: gap_fc``, the
    dds VGG's GAP + FC head); extra branches are left out.
    """
    hp, state = checkpoint_net_state(path)
    if "backbone" not in hp or "num_classes" not in hp:
        raise DataError(f"checkpoint '{path}' has no backbone/num_classes hyper-parameters; "
                        "is it a dermlab classifier?")
    net = timm.create_model(hp["backbone"], pretrained=False, num_classes=hp["num_classes"],
                            **(hp.get("backbone_args") or {}))
    if hp.get("main_head") == "gap_fc":
        from lightning_modules.nets.deep_supervision import use_gap_fc_head

        use_gap_fc_head(net, hp.get("drop_rate", 0.0))
    net.load_state_dict(state)
    return net
