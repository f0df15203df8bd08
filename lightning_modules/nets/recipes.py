"""Every classifier network of the suite, built by name from plain arguments: the one place a method's ``net`` is made.

A recipe is a builder name of :data:`BUILDERS` and the keyword arguments it takes (JSON values only), e.g.
``{"builder": "timm", "arguments": {"backbone": "resnet18", "num_classes": 2, ...}}``. The LightningModules build their
``net`` from their recipe (:meth:`lightning_modules.base.LesionClassifier.net_recipe`), and an exported model package
(:mod:`lightning_modules.nets.package`) rebuilds the same network from the recipe in its ``config.json`` — so a
package needs neither Lightning nor the training config. Free of Lightning.

Builders (the methods they serve):

* ``timm``: a timm classifier (the plain classifier, ``arl``'s ARL-CNN, RAN, EfficientNet, ...);
* ``deep_supervision``: ``dds``'s base network with the main head and auxiliary branches
  (:class:`~lightning_modules.nets.deep_supervision.DeepSupervision`);
* ``crop_net``: ``patch``'s backbone over ordered crops (:class:`~lightning_modules.nets.patch_attention.CropNet`);
* ``flat_cbam`` / ``hierarchical_cbam``: ``weighting``'s VGG16 + CBAM models (:mod:`lightning_modules.nets.cbam`);
* ``embedding``: ``isic2018``'s triplet network (:class:`~lightning_modules.nets.embedding.EmbeddingClassifier`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import timm
from timm.models.vgg import VGG, ConvMlp
from torch import nn

from datamodules.metadata import MetadataEncoding
from dermlab.errors import DataError
from lightning_modules.nets.backbone import checkpoint_net_state, create_backbone, run_checkpoint
from lightning_modules.nets.cbam import FlatCBAMClassifier, HierarchicalCBAMClassifier, features_only
from lightning_modules.nets.deep_supervision import DeepSupervision, use_gap_fc_head
from lightning_modules.nets.embedding import EmbeddingClassifier
from lightning_modules.nets.metadata_branch import attach_metadata_branch, branch_options
from lightning_modules.nets.patch_attention import CropNet

log = logging.getLogger(__name__)


def timm_classifier(backbone: str, num_classes: int, pretrained_weights: str | None = None, drop_rate: float = 0.0,
                    backbone_args: dict | None = None) -> nn.Module:
    """The timm model ``backbone`` with ``num_classes`` outputs
    (:func:`~lightning_modules.nets.backbone.create_backbone`)."""
    return create_backbone(backbone, num_classes, pretrained_weights, drop_rate, **(backbone_args or {}))


def set_vgg_dropout(net: nn.Module, p: float) -> None:
    """Set the dropout after fc6 and fc7 of a timm VGG head (``pre_logits.drop`` and ``head.drop``).

    timm's VGG classifier is fc6 (7×7 conv) → ReLU → Dropout → fc7 (1×1 conv) → ReLU → pool → Dropout → fc8,
    i.e. VGG's FC–ReLU–Dropout, FC–ReLU–Dropout, FC, with both dropouts set by ``drop_rate`` (default 0). A VGG
    with the ``gap_fc`` head (no fc6/fc7) and other networks are left untouched. Raises ValueError unless 0 ≤ p < 1.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"vgg_dropout must be in [0, 1), got {p}")
    if isinstance(net, VGG) and isinstance(net.pre_logits, ConvMlp):
        net.pre_logits.drop.p = p
        net.head.drop.p = p


def is_run_checkpoint(weights: str | None) -> bool:
    """Whether ``pretrained_weights`` names a run of this suite (a ``.ckpt`` or a run / grid cell folder)."""
    return bool(weights) and (Path(weights).expanduser().is_dir() or str(weights).endswith(".ckpt"))


def load_run_weights(net: nn.Module, path: Path) -> None:
    """Load a dermlab checkpoint's network into a VGG with the ``gap_fc`` head (transfer from an earlier run).

    The conv features must match; a source's fc6/fc7 (``pre_logits.*``, a ``vgg_mlp`` run) have no place in
    GAP + FC and are skipped; an FC of another shape (other classes, or a ``vgg_mlp`` source) is re-initialised
    N(0, 0.01²). Raises DataError for a checkpoint of another backbone.
    """
    _, state = checkpoint_net_state(path)
    state = {k: v for k, v in state.items() if not k.startswith("pre_logits.")}
    own = net.state_dict()
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if any(not k.startswith("head.fc.") for k in mismatched):
        raise DataError(f"cannot load '{path}': {mismatched[0]} has another shape; was it trained with this backbone?")
    missing, unexpected = net.load_state_dict({k: v for k, v in state.items() if k not in mismatched}, strict=False)
    if unexpected or [k for k in missing if not k.startswith("head.fc.")]:
        raise DataError(f"cannot load '{path}': it was trained with another backbone "
                        f"({(unexpected or missing)[0]} does not match).")
    if mismatched or missing:
        use_gap_fc_head(net, net.head.drop.p)  # a fresh FC
    log.info("backbone: loaded weights from run checkpoint %s%s", path,
             " (classifier re-initialised)" if mismatched or missing else "")


def deep_supervision(backbone: str, num_classes: int, pretrained_weights: str | None = None, drop_rate: float = 0.0,
                     backbone_args: dict | None = None, main_head: str = "gap_fc", vgg_dropout: float = 0.5,
                     aux_layers: Sequence[str] = (), aux_classifier: str = "resnet") -> nn.Module:
    """``dds``: the base network (``main_head`` on a VGG: ``gap_fc`` = GAP + FC, §2.2 Fig. 2(f), or ``vgg_mlp`` =
    timm's fc6/fc7/fc8; ``vgg_dropout`` in fc6/fc7) in a
    :class:`~lightning_modules.nets.deep_supervision.DeepSupervision` with branches at ``aux_layers``. A
    ``pretrained_weights`` run of a VGG with ``gap_fc`` loads through :func:`load_run_weights`.

    Raises:
        ValueError: ``vgg_mlp`` on a backbone that is not a VGG.
    """
    args = backbone_args or {}
    if main_head == "gap_fc" and is_run_checkpoint(pretrained_weights) and \
            timm.models.is_model_in_modules(backbone, ["vgg"]):
        base = use_gap_fc_head(timm.create_model(backbone, pretrained=False, num_classes=num_classes,
                                                 drop_rate=drop_rate, **args), drop_rate)
        load_run_weights(base, run_checkpoint(pretrained_weights))
    else:  # ImageNet weights load into timm's VGG as they are; use_gap_fc_head then drops fc6/fc7
        base = create_backbone(backbone, num_classes, pretrained_weights, drop_rate, **args)
        if main_head == "gap_fc":
            use_gap_fc_head(base, drop_rate)
        elif not isinstance(base, VGG):
            raise ValueError(f"main_head: vgg_mlp is timm's VGG head; {backbone} is not a VGG (use gap_fc)")
    set_vgg_dropout(base, vgg_dropout)
    return DeepSupervision(base, num_classes, list(aux_layers), aux_classifier, dropout=vgg_dropout)


def crop_net(backbone: str, num_classes: int, pretrained_weights: str | None = None, drop_rate: float = 0.0,
             backbone_args: dict | None = None, n_crops: int = 9, attention: str = "end", aggregation: str = "mean",
             crop_dropout: float = 0.1, gru_hidden: int = 1024) -> nn.Module:
    """``patch``: the backbone (without its classifier for the GRU) over the crops of each image
    (:class:`~lightning_modules.nets.patch_attention.CropNet`)."""
    net = create_backbone(backbone, 0 if aggregation == "gru" else num_classes, pretrained_weights, drop_rate,
                          **(backbone_args or {}))
    return CropNet(net, n_crops, num_classes, attention, aggregation, crop_dropout, gru_hidden)


def flat_cbam(backbone: str, num_classes: int, pretrained_weights: str | None = None,
              backbone_args: dict | None = None, cbam_dropout: float = 0.5) -> nn.Module:
    """``weighting``'s flat model (§4.1): the backbone's features → CBAM → FC
    (:class:`~lightning_modules.nets.cbam.FlatCBAMClassifier`)."""
    net = create_backbone(backbone, num_classes, pretrained_weights, **(backbone_args or {}))
    return FlatCBAMClassifier(features_only(net), num_classes, cbam_dropout)


def hierarchical_cbam(backbone: str, num_classes: int, pretrained_weights: str | None = None,
                      backbone_args: dict | None = None, lstm_hidden: int = 512, cbam_dropout: float = 0.5
                      ) -> nn.Module:
    """``weighting``'s hierarchical model (§4.1, Eq. 10): the backbone's features in a
    :class:`~lightning_modules.nets.cbam.HierarchicalCBAMClassifier`, whose ``forward`` gives the leaves'
    log-probabilities."""
    net = create_backbone(backbone, num_classes, pretrained_weights, **(backbone_args or {}))
    return HierarchicalCBAMClassifier(features_only(net), lstm_hidden, cbam_dropout)


def embedding(backbone: str, num_classes: int, pretrained_weights: str | None = None,
              backbone_args: dict | None = None, embed_dim: int = 256) -> nn.Module:
    """``isic2018`` task 3: the backbone's pooled features → FC to f(x) → FC to the classes
    (:class:`~lightning_modules.nets.embedding.EmbeddingClassifier`)."""
    features = create_backbone(backbone, 0, pretrained_weights, **(backbone_args or {}))
    return EmbeddingClassifier(features, num_classes, embed_dim)


#: Builder name → function of the recipe's arguments.
BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "timm": timm_classifier, "deep_supervision": deep_supervision, "crop_net": crop_net, "flat_cbam": flat_cbam,
    "hierarchical_cbam": hierarchical_cbam, "embedding": embedding,
}


@contextmanager
def quiet_random_init() -> Iterator[None]:
    """Silence the backbone's "starting from RANDOM initialisation" warning (weights are loaded right after)."""
    logger = logging.getLogger("lightning_modules.nets.backbone")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def build_from_recipe(builder: str, arguments: dict[str, Any], weights_follow: bool = False,
                      metadata: dict[str, Any] | None = None) -> nn.Module:
    """The network of recipe (``builder``, ``arguments``), with a patient-metadata branch when ``metadata`` is given.

    Args:
        builder: a key of :data:`BUILDERS`.
        arguments: the builder's keyword arguments.
        weights_follow: the caller loads trained weights next (an exported package): ``pretrained_weights`` is
            dropped and the random-initialisation warning silenced.
        metadata: the recipe's ``metadata`` entry: ``encoding`` (:meth:`datamodules.metadata.MetadataEncoding.to_json`)
            and the branch's options (:func:`~lightning_modules.nets.metadata_branch.attach_metadata_branch`).

    Raises:
        DataError: an unknown builder, or arguments the builder does not take (both named).
    """
    function = BUILDERS.get(builder)
    if function is None:
        raise DataError(f"unknown network builder {builder!r}; known: {', '.join(BUILDERS)} (a package of a newer "
                        "dermlab? update dermlab)")
    if weights_follow:
        arguments = {**arguments, "pretrained_weights": None}
        with quiet_random_init():
            net = _call(function, builder, arguments)
    else:
        net = _call(function, builder, arguments)
    if metadata is not None:
        options = branch_options({k: v for k, v in metadata.items() if k != "encoding"})
        attach_metadata_branch(net, MetadataEncoding.from_json(metadata["encoding"]), **options)
    return net


def _call(function: Callable[..., nn.Module], builder: str, arguments: dict[str, Any]) -> nn.Module:
    import inspect

    accepted = inspect.signature(function).parameters
    unknown = sorted(set(arguments) - set(accepted))
    if unknown:
        raise DataError(f"network builder {builder!r} takes no argument {', '.join(unknown)} (it takes "
                        f"{', '.join(accepted)})")
    return function(**arguments)
