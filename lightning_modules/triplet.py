"""Disease classification with a triplet loss and nearest-class-mean prediction, ``isic2018`` paper (002) §3.

ResNet-101 → FC to a 256-d embedding f(x) → FC to the 7 classes. The paper trains "by the cross-entropy loss as
well as the triplet loss ... alternately" and applies the triplet loss "alongside the cross-entropy loss";
triplets are generated "in an online fashion every 10 epochs". Two readings (``triplet_mode``):

* ``alternate`` (default, the word "alternately"): every ``triplet_every``-th epoch (epochs 9, 19, … for 10)
  trains with the triplet loss alone on triplets mined online in each batch (anchor and positive from one
  minority class, the hardest NV negative, :func:`lightning_modules.nets.embedding.minority_triplets`), the
  other epochs with cross-entropy alone;
* ``joint`` ("alongside"): every batch of every epoch trains CE + λ·triplet (λ = ``triplet_weight``).

``triplet_every: 0`` is Table 3's "CE loss only" in both readings. While the triplet loss is on, an
:class:`~datamodules.isic2018.ISIC2018Task3DataModule` with ``minority_pairs`` > 0 gives each batch pairs of every class
(:meth:`TripletClassifier.setup` hands it the epochs): natural batches of 64 hold DF or VASC twice too rarely
for Eq. 3's minority triplets.

Eq. 4 is Σ (‖f(a) − f(p)‖² + α − ‖f(a) − f(n)‖²)₊ — squared Euclidean distances (the paper's ‖·‖₀ in the
negative term is a typo of Eq. 3's ‖·‖²₂), margin α; pytorch-metric-learning's ``TripletMarginLoss`` with a
squared L2 distance computes it, averaged over the triplets (``triplet_reduction: sum`` gives the paper's sum).
The paper gives no α and cites FaceNet [13], whose α = 0.2 is a margin on L2-normalised embeddings (squared
distances in [0, 4]); on raw 256-d embeddings, whose squared distances grow with the weights, 0.2 is negligible.
``normalize_embeddings: true`` (default) therefore L2-normalises f(x) for the triplet loss, its hardest-negative
mining and the nearest-class-mean distances; ``false`` uses the raw f(x) (then scale ``margin`` yourself). The
classifier layer always sees the raw f(x).

Prediction (§3 Results): "draw 100 samples for each class from the labeled training data", embed them, and predict
the class with the lowest mean Euclidean distance (:func:`~lightning_modules.nets.embedding.nearest_class_mean`).
The reference embeddings are computed once per evaluation (at its start, fixed seed), not per batch. Both rules are
logged — the softmax one as ``<split>/<metric>``, the nearest-class-mean one as ``<split>/ncm_<metric>`` — and
``dermlab predict`` writes both official submission CSVs (``submission_<split>.csv``, ``…_ncm.csv``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.losses import TripletMarginLoss
from pytorch_metric_learning.reducers import MeanReducer, SumReducer
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchmetrics import MetricCollection
from typing_extensions import override

from dermlab.metrics.logged import DefinedMetrics
from lightning_modules.base import LesionClassifier
from lightning_modules.evaluation import EVAL_SPLITS
from lightning_modules.nets.embedding import minority_triplets, nearest_class_mean
from lightning_modules.predictions import scored_rows


def ncm_metrics(class_names: Sequence[str]) -> MetricCollection:
    """``ncm_balanced_accuracy``, ``ncm_accuracy`` and ``ncm_recall_<class>`` of the nearest-class-mean predictions,
    by the definitions of every other metric (:mod:`dermlab.metrics.definitions`), fed one-hot predictions."""
    return MetricCollection({"ncm": DefinedMetrics(class_names, keep=("balanced_accuracy", "accuracy", "recall"),
                                                   prefix="ncm_")})


class TripletClassifier(LesionClassifier):
    """Embedding classifier trained with CE and the minority triplet loss (alternately or jointly).

    Args:
        embed_dim: size of f(x) (paper: 256).
        margin: α of Eq. 3–4 (on the unit sphere with ``normalize_embeddings``: FaceNet's 0.2).
        triplet_every: the triplet period: in ``alternate`` mode every this-many-th epoch is a triplet epoch; in
            ``joint`` mode any value > 0 adds the triplet term to every batch; 0 trains with cross-entropy only.
        majority_class: the class negatives come from (NV).
        reference_per_class: training images per class embedded for nearest-class-mean prediction (paper: 100).
        reference_seed: seed of their draw (fixed, so every evaluation uses the same images).
        triplet_reduction: ``mean`` over the mined triplets, or the paper's ``sum``.
        normalize_embeddings: L2-normalise f(x) for the triplet loss, its mining and nearest class mean.
        triplet_mode: ``alternate`` (triplet epochs alone, default) or ``joint`` (CE + λ·triplet every batch).
        triplet_weight: λ of ``joint`` (unused in ``alternate``).

    Temperature scaling (``calibrate: temperature``) applies to the softmax head's probabilities; test-time
    augmentation does not apply (one embedding per image serves both the softmax and the nearest-class-mean rule).

    Raises:
        ValueError: an unknown ``majority_class``, ``triplet_mode`` or ``triplet_reduction``, λ < 0, or
            ``tta`` other than ``none``.
    """

    def __init__(self, embed_dim: int = 256, margin: float = 0.2, triplet_every: int = 10,
                 majority_class: str = "NV", reference_per_class: int = 100, reference_seed: int = 0,
                 triplet_reduction: Literal["mean", "sum"] = "mean", normalize_embeddings: bool = True,
                 triplet_mode: Literal["alternate", "joint"] = "alternate", triplet_weight: float = 1.0,
                 **kwargs: Any):
        if kwargs.get("tta", "none") != "none":
            raise ValueError("the triplet classifier has no test-time augmentation (its nearest-class-mean rule "
                             "uses one embedding per image); use tta: none")
        super().__init__(**kwargs)
        if majority_class not in self.class_names:
            raise ValueError(f"majority_class {majority_class!r} is not one of the classes {self.class_names}")
        if triplet_mode not in ("alternate", "joint") or triplet_reduction not in ("mean", "sum"):
            raise ValueError(f"triplet_mode must be alternate or joint and triplet_reduction mean or sum, got "
                             f"{triplet_mode!r}, {triplet_reduction!r}")
        if triplet_weight < 0:
            raise ValueError(f"triplet_weight must be ≥ 0, got {triplet_weight}")
        self.majority = self.class_names.index(majority_class)
        reducer = SumReducer() if triplet_reduction == "sum" else MeanReducer()
        squared_l2 = LpDistance(normalize_embeddings=False, p=2, power=2)  # normalised before, in metric_space
        self.triplet_loss = TripletMarginLoss(margin=margin, distance=squared_l2, reducer=reducer)
        self.ncm = nn.ModuleDict({s: ncm_metrics(self.class_names) for s in EVAL_SPLITS})
        self.references: torch.Tensor | None = None

    @override
    def setup(self, stage: str) -> None:
        """Besides the base class's set-up: tell the datamodule on which epochs the triplet loss runs, so a
        ``minority_pairs`` sampler pairs exactly those (natural batches on the cross-entropy epochs)."""
        super().setup(stage)
        data = getattr(self.trainer, "datamodule", None)
        if hasattr(data, "pair_every"):
            data.pair_every = self.triplet_period()

    def metric_space(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(N, d) f(x) as the triplet loss and nearest class mean see it: unit length with
        ``normalize_embeddings``, else as is; float32."""
        embeddings = embeddings.float()
        return nn.functional.normalize(embeddings, dim=1) if self.hparams.normalize_embeddings else embeddings

    net_builder = "embedding"

    @override
    def net_arguments(self) -> dict[str, Any]:
        """The backbone (its pooled features) and ``embed_dim``, the size of f(x)
        (:func:`lightning_modules.nets.recipes.embedding`; no ``drop_rate``)."""
        arguments = super().net_arguments()
        del arguments["drop_rate"]
        return {**arguments, "embed_dim": self.hparams.embed_dim}

    def triplet_period(self) -> int:
        """Epoch period of the triplet loss: 0 never, 1 every epoch (``joint``), else ``triplet_every``."""
        every = self.hparams.triplet_every
        return 0 if not every else 1 if self.hparams.triplet_mode == "joint" else every

    def triplet_epoch(self) -> bool:
        """Whether the current epoch (0-based e) trains the triplet loss: (e + 1) is a multiple of the period."""
        period = self.triplet_period()
        return bool(period) and (self.current_epoch + 1) % period == 0

    def training_loss(self, batch: dict[str, Any], triplet_epoch: bool
                      ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """This batch's training loss and its logged parts (``triplets``, ``triplet_loss``, ``ce_loss``).

        ``alternate``: the triplet loss on a triplet epoch (None when the batch has no triplet), cross-entropy
        otherwise; ``joint``: CE + λ·triplet (CE alone when the batch has no triplet) on a triplet epoch, which
        is every epoch unless ``triplet_every`` is 0.
        """
        joint = self.hparams.triplet_mode == "joint"
        embeddings = self.net.embed(batch["image"])
        parts: dict[str, torch.Tensor] = {}
        loss = None
        if not triplet_epoch or joint:
            loss = parts["ce_loss"] = self.compute_loss(self.net.classifier(embeddings), batch)
        if triplet_epoch:
            space = self.metric_space(embeddings)
            triplets = minority_triplets(space, batch["label"], self.majority)
            parts["triplets"] = space.new_tensor(float(len(triplets[0])))  # on the module's device
            if len(triplets[0]):  # else no minority pair or no NV image in this batch: nothing to learn from it
                parts["triplet_loss"] = self.triplet_loss(space, batch["label"], indices_tuple=triplets)
                loss = (loss + self.hparams.triplet_weight * parts["triplet_loss"] if joint
                        else parts["triplet_loss"])
        return loss, parts

    @override
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        """:meth:`training_loss` on this epoch's kind; None (Lightning skips the step) when it has none."""
        loss, parts = self.training_loss(batch, self.triplet_epoch())
        size = len(batch["label"])
        for name, value in parts.items():
            self.log(f"train/{name}", value, on_step=False, on_epoch=True, prog_bar=name == "triplet_loss",
                     batch_size=size)
        if loss is not None:
            self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=size)
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
        loader = DataLoader(Subset(dataset, order.tolist()), batch_size=data.batch_size,
                            num_workers=data.loader_workers())
        was_training = self.training
        self.eval()
        embedded = torch.cat([self.metric_space(self.net.embed(b["image"].to(self.device))) for b in loader])
        self.train(was_training)
        return embedded.view(self.hparams.num_classes, per_class, -1)

    @override
    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self.references = self.reference_embeddings()

    @override
    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self.references = self.reference_embeddings()

    @override
    def on_predict_epoch_start(self) -> None:
        self.references = self.reference_embeddings()

    @override
    def _evaluation_step(self, batch: dict[str, Any], split: str, probabilities: torch.Tensor | None = None) -> None:
        embeddings = self.net.embed(batch["image"])  # once: for the softmax and the nearest-class-mean rule
        embeddings, batch = scored_rows(embeddings, batch)  # without the official scorer's weight-0 images
        if len(batch["label"]) == 0:
            return
        super()._evaluation_step(batch, split, self.net.classifier(embeddings).float().softmax(1))
        if not self.ncm_skipped(split):
            predicted = nearest_class_mean(self.metric_space(embeddings), self.references)
            self.ncm[split].update(nn.functional.one_hot(predicted, len(self.class_names)).double(), batch["label"])

    def ncm_skipped(self, split: str) -> bool:
        """No nearest-class-mean metrics on another data set's test split (``test_on``): the rule picks one of the
        training classes, which the evaluation classes need not contain."""
        return split == "test" and self.test_mapping is not None

    @override
    def _log_split(self, split: str) -> None:
        super()._log_split(split)
        if not self.ncm_skipped(split):
            self._log_collection(self.ncm[split], split)

    @override
    def logged_metric_names(self) -> list[str]:
        """The base metrics, the triplet training parts and ``<split>/ncm_<metric>`` (not on a ``test_on`` test)."""
        names = [*super().logged_metric_names(), "train/triplets", "train/triplet_loss", "train/ce_loss"]
        ncm = ["ncm_balanced_accuracy", "ncm_accuracy", *(f"ncm_recall_{c}" for c in self.class_names)]
        return names + [f"{split}/{name}" for split in EVAL_SPLITS for name in ncm if not self.ncm_skipped(split)]

    @override
    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Softmax ``probabilities`` (temperature-scaled when set) and the one-hot nearest-class-mean prediction
        ``ncm``, (B, C) each: :class:`~callbacks.submission.SubmissionWriter` writes one submission per table."""
        embeddings = self.net.embed(batch["image"])
        predicted = nearest_class_mean(self.metric_space(embeddings), self.references)
        probabilities = self.calibrated(self.net.classifier(embeddings).float().softmax(1), "predict")
        return {"image_id": batch["image_id"], "probabilities": probabilities,
                "ncm": nn.functional.one_hot(predicted, self.hparams.num_classes).float()}
