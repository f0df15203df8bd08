"""The learned crop weights drawn on test images, ``patch`` paper Fig. 4.

After testing, the first ``n_images`` test images go through the model once more; the weights of its
end attention block (else the initial one) are drawn as the borders of the ordered crops, brighter for
a higher weight. Saved as ``plots/test_crop_weights.png`` (and to W&B). The mean weight per crop position
over the whole test set is logged by the module as ``test/crop_weight_<k>``.
"""

from __future__ import annotations

from typing import cast

import lightning.pytorch as L
import numpy as np
import torch
from typing_extensions import override

from callbacks.plots import save_figure, split_class_names
from callbacks.protocols import CropData, CropWeightsModule, WeighsCrops
from datamodules.crops import ordered_crop_boxes
from datamodules.transforms import denormalise
from dermlab.figures import crop_weights
from lightning_modules.nets.metadata_branch import fed


class CropWeightsFigure(L.Callback):
    """Fig. 4 after testing: the crop weights of the first ``n_images`` test images (module docstring).
    :class:`~lightning_modules.patch.PatchAttentionClassifier` brings it along when it has an attention block.

    Needs a :class:`~callbacks.protocols.CropWeightsModule` whose ``net`` :class:`~callbacks.protocols.WeighsCrops`
    and a :class:`~callbacks.protocols.CropData` data module; draws nothing without ``eval_crops`` or weights.
    """

    def __init__(self, n_images: int = 8):
        self.n_images = n_images

    @override
    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        data = cast("CropData | None", trainer.datamodule)
        if not trainer.is_global_zero or data is None or not getattr(data, "eval_crops", 0):
            return
        module = cast(CropWeightsModule, pl_module)
        crops, whole = data.dataset("test"), data.dataset("test", views=1)
        n = min(self.n_images, len(crops))
        items = [crops[i] for i in range(n)]
        was_training = module.net.training
        module.net.eval()
        try:
            metadata = (torch.stack([x["metadata"] for x in items]).to(pl_module.device)
                        if all("metadata" in x for x in items) else None)  # a metadata branch's input
            with torch.no_grad(), fed(module.net, metadata):
                probabilities = module.probabilities(torch.stack([x["image"] for x in items]).to(pl_module.device))
        finally:
            module.net.train(was_training)
        weights = cast(WeighsCrops, module.net).crop_weights()
        if weights is None:
            return
        images = denormalise(torch.stack([whole[i]["image"] for i in range(n)]), data.normalisation)
        boxes = ordered_crop_boxes(images.shape[1], images.shape[2], data.eval_crops, data.crop_size)
        # the truth in the test split's classes (another data set's evaluation classes under test_on), the
        # prediction in the model's own
        truth, predicted = split_class_names(pl_module, "test"), module.class_names
        titles = [f"T:{truth[x['label']]} P:{predicted[int(p.argmax())]}" for x, p in zip(items, probabilities,
                                                                                        strict=True)]
        figure = crop_weights(list(images), boxes, data.crop_size, weights.cpu().numpy().astype(np.float64), titles,
                              suptitle="learned crop weights (brighter border: higher weight)")
        save_figure(trainer, figure, "test_crop_weights")
