"""CAMs of the main and of each auxiliary branch on test images, ``dds`` paper Fig. 4.

One row per image: the image, the main branch's CAM of its predicted class, then each auxiliary
branch's CAM of *its* predicted class over the activation the branch reads — which show whether the
inner layer has learned to look at the lesion. Saved as ``plots/test_branch_cams.png`` (and W&B).
GAP + FC heads (the main head of VGG13 with ``main_head: gap_fc``, a ResNet-type branch) give the
paper's CAM Σ_k w_k^c f_k from their FC weights; a ResNet backbone's head and a VGG-type branch give
Grad-CAM (:mod:`lightning_modules.nets.cam`).
"""

from __future__ import annotations

from typing import Any, cast

import lightning.pytorch as L
import torch
from lightning.pytorch.utilities.types import STEP_OUTPUT
from typing_extensions import override

from callbacks.plots import first_view, save_figure
from callbacks.protocols import AuxiliaryBranches, CAMModule
from datamodules.transforms import denormalise
from dermlab.figures import image_grid
from lightning_modules.nets.cam import activation_maps, class_activation_maps, gap_fc_classifier
from lightning_modules.nets.lerf import paper_name
from lightning_modules.nets.metadata_branch import fed


class BranchCAMs(L.Callback):
    """Fig. 4 after testing: the first ``n_images`` test images (first view), their main CAM and each auxiliary
    branch's CAM (module docstring). :class:`~lightning_modules.dds.DeeplySupervisedClassifier` brings it along.

    Needs a :class:`~callbacks.protocols.CAMModule` whose ``net`` has :class:`~callbacks.protocols.AuxiliaryBranches`;
    a net whose ``layers`` is missing or empty draws nothing.
    """

    def __init__(self, n_images: int = 6):
        self.n_images = n_images
        self.images: list[torch.Tensor] = []
        self.metadata: list[torch.Tensor] = []  # a metadata branch's input, beside the images

    @override
    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.images, self.metadata = [], []

    @override
    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: STEP_OUTPUT,
                          batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        if sum(len(b) for b in self.images) < self.n_images:
            self.images.append(first_view(batch["image"]))
            if batch.get("metadata") is not None:
                self.metadata.append(batch["metadata"])

    @override
    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        module = cast(CAMModule, pl_module)
        layers = getattr(module.net, "layers", [])
        if not trainer.is_global_zero or not self.images or not layers:
            return
        images = torch.cat(self.images)[: self.n_images]
        metadata = torch.cat(self.metadata)[: self.n_images] if len(self.metadata) == len(self.images) else None
        net = module.net
        branches = cast(AuxiliaryBranches, net)
        was_training = net.training
        net.eval()
        try:  # the net goes back to its mode even when a map fails
            # the whole net runs for a branch's features too: a metadata model reads each image's fields
            with fed(net, metadata):
                columns = {"main": class_activation_maps(net, images)}
            with fed(net, metadata), torch.inference_mode(False), torch.enable_grad():
                for layer in layers:
                    features, logits = branches.branch_features(images.clone(), layer)
                    linear = gap_fc_classifier(branches.branch(layer))
                    columns[f"aux {paper_name(layer)}"] = activation_maps(features, logits, images.shape[-2:],
                                                                          linear=linear)
        finally:
            net.train(was_training)
        names = module.class_names
        pictures, cams, titles = [], [], []
        for i, picture in enumerate(denormalise(images, module.input_normalisation)):
            pictures.append(picture), cams.append(None), titles.append("image")
            for label, (maps, predicted) in columns.items():
                pictures.append(picture), cams.append(maps[i].cpu().numpy())
                titles.append(f"{label}: {names[predicted[i]][:10]}")
        figure = image_grid(pictures, cams, titles, columns=1 + len(columns),
                            suptitle="CAMs of the main and auxiliary branches (dds Fig. 4)")
        save_figure(trainer, figure, "test_branch_cams")
