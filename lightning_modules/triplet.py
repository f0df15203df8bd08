"""Disease classification with a triplet loss and nearest-class-mean prediction, ``isic2018`` paper (002) §3.

ResNet-101 → FC to a 256-d embedding f(x) → FC to the 7 classes. Training alternates the cross-entropy and the
triplet loss of Eq. 4 on f(x): the paper trains "by the cross-entropy loss as well as the triplet loss ...
alternately" and generates triplets "in an online fashion every 10 epochs" — read here as: every
``triplet_every``-th epoch (epochs 9, 19, … for 10) trains with the triplet loss on triplets mined online in each
batch (anchor and positive from one minority class, the hardest NV negative,
:func:`lightning_modules.nets.embedding.minority_triplets`), the other epochs with cross-entropy.
``triplet_every: 0`` is Table 3's "CE loss only".

Eq. 4 is Σ (‖f(a) − f(p)‖² + α − ‖f(a) − f(n)‖²)₊ — squared Euclidean distances (the paper's ‖·‖₀ in the
negative term is a typo of Eq. 3's ‖·‖²₂), margin α; pytorch-metric-learning's ``TripletMarginLoss`` with a
squared L2 distance computes it, averaged over the triplets (``triplet_reduction: sum`` gives the paper's sum).

Prediction (§3 Results): "draw 100 samples for each class from the labeled training data", embed them, and
predict the class with the lowest mean Euclidean distance (:func:`nearest_class_mean`). The reference
embeddings are computed once per evaluation (at its start, fixed seed), not per batch. Both rules are
logged — the softmax one as ``<split>/<metric>``, the nearest-class-mean one as ``<split>/ncm_<metric>`` — and
``dermlab predict`` writes both official submission CSVs (``submission_<split>.csv``, ``…_ncm.csv``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.losses import TripletMarginLoss
from pytorch_metric_learning.reducers import MeanReducer, SumReducer
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassRecall
from torchmetrics.wrappers import ClasswiseWrapper

from lightning_modules.base import LesionClassifier
from lightning_modules.evaluation import EVAL_SPLITS
from lightning_modules.nets.backbone import create_backbone
from lightning_modules.nets.embedding import EmbeddingClassifier, minority_triplets, nearest_class_mean


def ncm_metrics(class_names) -> MetricCollection:
    n, labels = len(class_names), [str(c) for c in class_names]
    return MetricCollection({
        "ncm_balanced_accuracy": MulticlassRecall(num_classes=n, average="macro"),
        "ncm_accuracy": MulticlassAccuracy(num_classes=n, average="micro"),
        "ncm_recall": ClasswiseWrapper(MulticlassRecall(num_classes=n, average=None), labels=labels,
                                       prefix="ncm_recall_"),
    }, compute_groups=False)


class TripletClassifier(LesionClassifier):
    """Embedding classifier trained with CE and (every ``triplet_every``-th epoch) the minority triplet loss.

    Args:
        embed_dim: size of f(x) (paper: 256).
        margin: α of Eq. 3–4.
        triplet_every: every this-many-th epoch is a triplet epoch; 0 trains with cross-entropy only.
        majority_class: the class negatives come from (NV).
        reference_per_class: training images per class embedded for nearest-class-mean prediction (paper: 100).
        reference_seed: seed of their draw (fixed, so every evaluation uses the same images).
        triplet_reduction: ``mean`` over the mined triplets, or the paper's ``sum``.
    """

    def __init__(self, embed_dim: int = 256, margin: float = 0.2, triplet_every: int = 10,
                 majority_class: str = "NV", reference_per_class: int = 100, reference_seed: int = 0,
                 triplet_reduction: Literal["mean", "sum"] = "mean", **kwargs):
        super().__init__(**kwargs)
        if majority_class not in self.class_names:
            raise ValueError(f"majority_class {majority_class!r} is not one of the classes {self.class_names}")
        self.majority = self.class_names.index(majority_class)
        reducer = SumReducer() if triplet_reduction == "sum" else MeanReducer()
        squared_l2 = LpDistance(normalize_embeddings=False, p=2, power=2)
        self.triplet_loss = TripletMarginLoss(margin=margin, distance=squared_l2, reducer=reducer)
        self.ncm = nn.ModuleDict({s: ncm_metrics(self.class_names) for s in EVAL_SPLITS})
        self.references: torch.Tensor | None = None

    def build_net(self) -> nn.Module:
        hp = self.hparams
        features = create_backbone(hp.backbone, 0, hp.pretrained_weights, **(hp.backbone_args or {}))
        return EmbeddingClassifier(features, hp.num_classes, hp.embed_dim)

    def triplet_epoch(self) -> bool:
        every = self.hparams.triplet_every
        return bool(every) and (self.current_epoch + 1) % every == 0

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor | None:
        if not self.triplet_epoch():
            return super().training_step(batch, batch_idx)
        embeddings = self.net.embed(batch["image"])
        triplets = minority_triplets(embeddings, batch["label"], self.majority)
        self.log("train/triplets", float(len(triplets[0])), on_step=False, on_epoch=True,
                 batch_size=len(batch["label"]))
        if not len(triplets[0]):
            return None  # no minority pair or no NV image in this batch: nothing to learn from it
        loss = self.triplet_loss(embeddings.float(), batch["label"], indices_tuple=triplets)
        self.log("train/triplet_loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=len(batch["label"]))
        return loss

    # --- nearest-class-mean prediction ---------------------------------------------------------------
    @torch.no_grad()
    def reference_embeddings(self) -> torch.Tensor:
        """(C, R, d): the embeddings of R = ``reference_per_class`` random training images per class (fewer
        where a class has fewer; then its available images are repeated to fill R)."""
        data = self.trainer.datamodule
        dataset = data.dataset("train", augment=False, views=1)
        labels = np.asarray(data.table("train").labels)
        rng = np.random.default_rng(self.hparams.reference_seed)
        per_class = self.hparams.reference_per_class
        chosen = []
        for c in range(self.hparams.num_classes):
            members = np.flatnonzero(labels == c)
            if not len(members):
                raise ValueError(f"class {self.class_names[c]} has no training image to embed for nearest-class-mean")
            picked = rng.choice(members, min(per_class, len(members)), replace=False)
            chosen.append(np.resize(picked, per_class))
        order = np.concatenate(chosen)
        loader = DataLoader(Subset(dataset, order.tolist()), batch_size=data.batch_size, num_workers=data.num_workers)
        was_training = self.training
        self.eval()
        embedded = torch.cat([self.net.embed(b["image"].to(self.device)).float() for b in loader])
        self.train(was_training)
        return embedded.view(self.hparams.num_classes, per_class, -1)

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self.references = self.reference_embeddings()

    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self.references = self.reference_embeddings()

    def on_predict_epoch_start(self) -> None:
        self.references = self.reference_embeddings()

    def _evaluation_step(self, batch: dict, split: str, probabilities: torch.Tensor | None = None) -> None:
        embeddings = self.net.embed(batch["image"])  # once: for the softmax and the nearest-class-mean rule
        super()._evaluation_step(batch, split, self.net.classifier(embeddings).float().softmax(1))
        self.ncm[split].update(nearest_class_mean(embeddings, self.references), batch["label"])

    def _log_split(self, split: str) -> None:
        super()._log_split(split)
        self._log_collection(self.ncm[split], split)

    def logged_metric_names(self) -> list[str]:
        names = [*super().logged_metric_names(), "train/triplets", "train/triplet_loss"]
        ncm = ["ncm_balanced_accuracy", "ncm_accuracy", *(f"ncm_recall_{c}" for c in self.class_names)]
        return names + [f"{split}/{name}" for split in EVAL_SPLITS for name in ncm]

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        embeddings = self.net.embed(batch["image"])
        predicted = nearest_class_mean(embeddings, self.references)
        return {"image_id": batch["image_id"], "probabilities": self.net.classifier(embeddings).float().softmax(1),
                "ncm": nn.functional.one_hot(predicted, self.hparams.num_classes).float()}
