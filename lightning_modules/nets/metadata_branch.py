"""The metadata branch of the ISIC 2019 winners, on any classifier network of the suite. Free of Lightning.

Gessert et al., MethodsX 7 (2020) 100864, doi:10.1016/j.mex.2020.100864, §"Meta data" (first place in ISIC 2019
task 2), and their published configurations: the encoded patient metadata (:mod:`datamodules.metadata`) goes
through a dense network of two layers of 256 units, each FC → batch norm → ReLU → dropout 0.4; its output is
concatenated with the CNN's feature vector (after global average pooling), followed by one more layer of 1024
units (FC → BN → ReLU → dropout) and the classifier. During training each field of each image is set to missing
with probability 0.1 (their ``drop_augment``), so the network learns to predict without it.

Here the branch is attached to a built network in place (:func:`attach_metadata_branch`): each layer that maps the
network's final image features to class scores (a timm model's ``get_classifier()``; ``dds``'s main head, whose
auxiliary branches stay image-only; the ``patch`` model's per-crop classifier or its GRU's; ``weighting``'s FC or
every node head of its tree) becomes a :class:`FusedClassifier` reading one shared :class:`MetadataBranch`.
The network keeps its call, ``net(images)``: the batch's metadata is fed to the branch first (:func:`fed`), and a
classifier that sees V views or N_C crops per image repeats each image's embedding that often (views and crops
are flattened image-major everywhere in the suite).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from typing_extensions import override

from datamodules.metadata import MetadataEncoding
from dermlab.errors import DataError

#: The branch's defaults, the winners' ``fc_layers_before`` [256, 256], ``fc_layers_after`` [1024],
#: ``dropout_meta`` 0.4 and ``drop_augment`` 0.1.
DEFAULTS: dict[str, Any] = {"hidden": [256, 256], "fusion": 1024, "dropout": 0.4, "field_dropout": 0.1}


def dense_block(inputs: int, outputs: int, dropout: float) -> nn.Sequential:
    """FC → BN → ReLU → dropout, the winners' dense layer."""
    return nn.Sequential(nn.Linear(inputs, outputs), nn.BatchNorm1d(outputs), nn.ReLU(inplace=True),
                         nn.Dropout(dropout))


class MetadataBranch(nn.Module):
    """The dense network over the encoded metadata (B, F) → embedding (B, hidden[-1]), and the batch it was fed.

    Args:
        encoding: the fields' encoding (its width and each field's missing vector).
        hidden: the widths of the dense layers.
        dropout: dropout after each dense layer.
        field_dropout: in training, the probability that a field of an image is replaced by its missing value.
    """

    def __init__(self, encoding: MetadataEncoding, hidden: Sequence[int] = (256, 256), dropout: float = 0.4,
                 field_dropout: float = 0.1):
        super().__init__()
        if not hidden or any(int(h) < 1 for h in hidden):
            raise ValueError(f"metadata hidden widths must be positive, got {list(hidden)}")
        if not 0.0 <= field_dropout < 1.0 or not 0.0 <= dropout < 1.0:
            raise ValueError(f"metadata dropout and field_dropout must lie in [0, 1), got {dropout}, {field_dropout}")
        widths = [encoding.width, *(int(h) for h in hidden)]
        self.mlp = nn.Sequential(*(dense_block(a, b, dropout) for a, b in zip(widths, widths[1:], strict=False)))
        self.width, self.features = encoding.width, widths[-1]
        self.field_dropout = field_dropout
        self.fields = [part.name for part in encoding.layout]
        for part in encoding.layout:  # each field's columns as a 0/1 mask and its missing encoding (not saved)
            mask = torch.zeros(encoding.width)
            mask[part.start:part.stop] = 1.0
            missing = torch.zeros(encoding.width)
            missing[part.start:part.stop] = torch.tensor(part.missing)
            self.register_buffer(f"mask_{part.name}", mask, persistent=False)
            self.register_buffer(f"missing_{part.name}", missing, persistent=False)
        self.fed: torch.Tensor | None = None

    def drop_fields(self, metadata: torch.Tensor) -> torch.Tensor:
        """Each field of each row replaced by its missing encoding with probability ``field_dropout``."""
        for name in self.fields:
            drop = (torch.rand(len(metadata), 1, device=metadata.device) < self.field_dropout).to(metadata.dtype)
            mask = getattr(self, f"mask_{name}") * drop
            metadata = metadata * (1 - mask) + getattr(self, f"missing_{name}") * mask
        return metadata

    def feed(self, metadata: torch.Tensor) -> None:
        """Hold (B, F) encoded metadata for the next forward passes (field dropout applied once here in training).

        Raises:
            ValueError: not (B, F) with F the encoding's width.
        """
        if metadata.ndim != 2 or metadata.shape[1] != self.width:
            raise ValueError(f"expected (B, {self.width}) encoded metadata, got {tuple(metadata.shape)}")
        metadata = metadata.float()
        self.fed = self.drop_fields(metadata) if self.training and self.field_dropout > 0 else metadata

    def clear(self) -> None:
        """Forget the fed batch."""
        self.fed = None

    def embedding(self, rows: int) -> torch.Tensor:
        """The fed batch's embedding (B, hidden[-1]), each row repeated ``rows // B`` times (views, crops).

        Raises:
            ValueError: nothing fed, or ``rows`` not a multiple of the fed batch.
        """
        if self.fed is None:
            raise ValueError("this network takes patient metadata beside each image; none was given (feed it "
                             "with lightning_modules.nets.metadata_branch.fed(net, metadata))")
        batch = self.fed.shape[0]  # not len(): a symbolic size stays symbolic under torch.export
        if rows % batch:
            raise ValueError(f"the classifier sees {rows} rows but {batch} images' metadata was fed")
        fed = self.fed
        if torch.is_grad_enabled() and fed.is_inference():
            fed = fed.clone()  # Grad-CAM outside inference mode: a test batch's tensor cannot enter autograd
        embedded = self.mlp(fed)
        # each row ``rows // batch`` times, image-major (expand + reshape rather than a branch on the count: one graph
        # for any number of views when the network is exported with a dynamic batch, lightning_modules.nets.onnx_export)
        return embedded[:, None].expand(-1, rows // batch, -1).reshape(rows, embedded.shape[1])

    @override
    def forward(self, metadata: torch.Tensor) -> torch.Tensor:
        """(B, F) → (B, hidden[-1]) (no field dropout)."""
        return self.mlp(metadata.float())


class FusedClassifier(nn.Module):
    """[image features ; metadata embedding] → FC(``fusion``) → BN → ReLU → dropout → FC to ``out_features``.

    The branch is shared by every fused classifier of a network and registered once, on the network
    (``net.metadata_branch``); this module only reads it.
    """

    def __init__(self, in_features: int, out_features: int, branch: MetadataBranch, fusion: int = 1024,
                 dropout: float = 0.4):
        super().__init__()
        self.fuse = dense_block(in_features + branch.features, fusion, dropout)
        self.classifier = nn.Linear(fusion, out_features)
        self.in_features, self.out_features = in_features, out_features
        object.__setattr__(self, "branch", branch)  # not a submodule: saved once, as net.metadata_branch

    @override
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        embedded = self.branch.embedding(features.shape[0]).to(features.dtype)
        return self.classifier(self.fuse(torch.cat([features, embedded], 1)))


def classifier_slots(net: nn.Module) -> list[tuple[nn.Module, str]]:
    """(parent, attribute) of each layer of ``net`` that maps its final image features to class scores.

    Raises:
        DataError: a network with no such single layer (the ``isic2018`` triplet network, whose embedding is the
            method) or a classifier that is not a linear layer.
    """
    from lightning_modules.nets.cbam import FlatCBAMClassifier, HierarchicalCBAMClassifier
    from lightning_modules.nets.deep_supervision import DeepSupervision
    from lightning_modules.nets.embedding import EmbeddingClassifier
    from lightning_modules.nets.patch_attention import CropNet

    if isinstance(net, EmbeddingClassifier):
        raise DataError("the isic2018 triplet network takes no metadata branch (its embedding is the method); use "
                        "the branch with the plain, dds, arl, patch or weighting classifiers")
    if isinstance(net, CropNet):
        return [(net, "classifier")] if net.aggregation == "gru" else classifier_slots(net.backbone)
    if isinstance(net, DeepSupervision):
        return classifier_slots(net.base)  # the main head; the auxiliary branches stay image-only
    if isinstance(net, FlatCBAMClassifier):
        return [(net, "fc")]
    if isinstance(net, HierarchicalCBAMClassifier):
        return [(net.heads, node) for node in net.heads]
    classifier = net.get_classifier() if hasattr(net, "get_classifier") else None
    for name, module in net.named_modules():
        if module is classifier and name and isinstance(module, nn.Linear):
            parent_name, _, attribute = name.rpartition(".")
            return [(net.get_submodule(parent_name) if parent_name else net, attribute)]
    raise DataError(f"{type(net).__name__} has no linear classifier to fuse patient metadata with "
                    f"(its get_classifier() is {type(classifier).__name__})")


def attach_metadata_branch(net: nn.Module, encoding: MetadataEncoding, hidden: Sequence[int] = (256, 256),
                           fusion: int = 1024, dropout: float = 0.4, field_dropout: float = 0.1) -> nn.Module:
    """Give ``net`` a :class:`MetadataBranch` (``net.metadata_branch``) and fuse it into each classifier
    (:func:`classifier_slots`); in place, on the network's device. Returns ``net``.

    Raises:
        DataError: see :func:`classifier_slots`; a network that already has a branch.
    """
    if metadata_branch_of(net) is not None:
        raise DataError("this network already has a metadata branch")
    slots = classifier_slots(net)
    device = next(net.parameters()).device
    branch = MetadataBranch(encoding, hidden, dropout, field_dropout).to(device)
    net.add_module("metadata_branch", branch)
    for parent, attribute in slots:
        old = getattr(parent, attribute)
        fused = FusedClassifier(old.in_features, old.out_features, branch, fusion, dropout).to(device)
        setattr(parent, attribute, fused)
    net.train(net.training)
    return net


def metadata_branch_of(net: nn.Module) -> MetadataBranch | None:
    """``net``'s metadata branch, or None for an image-only network."""
    branch = getattr(net, "metadata_branch", None)
    return branch if isinstance(branch, MetadataBranch) else None


@contextmanager
def fed(net: nn.Module, metadata: torch.Tensor | None) -> Iterator[None]:
    """Within the block, ``net``'s classifiers read ``metadata`` (B, F); nothing happens for an image-only network
    or when ``metadata`` is None.

    Raises:
        ValueError: metadata for an image-only network.
    """
    branch = metadata_branch_of(net)
    if branch is None or metadata is None:
        if metadata is not None:
            raise ValueError("metadata given to a network without a metadata branch")
        yield
        return
    branch.feed(metadata)
    try:
        yield
    finally:
        branch.clear()


def branch_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """:data:`DEFAULTS` updated with ``options`` (``hidden``, ``fusion``, ``dropout``, ``field_dropout``).

    Raises:
        DataError: an unknown option (named).
    """
    options = dict(options or {})
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise DataError(f"metadata_branch takes no option {unknown[0]!r} (it takes {', '.join(DEFAULTS)})")
    return {**DEFAULTS, **options}
