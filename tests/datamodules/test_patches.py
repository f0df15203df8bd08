"""``datamodules/patches.py``: the arl paper's multi-scale central patches (§IV-B), drawn online, 60 per image, 9
averaged at test time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datamodules import ISIC2017DataModule
from datamodules.patches import CentralScalePatch, patch_box
from tests.helpers.arl_patches import ARL, ARL_EVAL


def test_patch_box_by_hand():
    assert patch_box(100, 200, 0.4, 0.0, 0.0) == (15, 30, 40, 80)  # free 60 × 120; central half starts at 1/4
    assert patch_box(100, 200, 0.4, 1.0, 1.0) == (45, 90, 40, 80)  # …and ends at 3/4
    assert patch_box(100, 200, 0.8, 0.5, 0.5) == (10, 20, 80, 160)  # the centred patch


def test_patches_have_the_four_scales_and_stay_central():
    transform = CentralScalePatch()
    transform.set_random_seed(0)
    height, width = 450, 600
    sizes, centres = set(), []
    for _ in range(400):
        top, left, h, w = transform.get_params_dependent_on_data({"shape": (height, width, 3)}, {})["box"]
        sizes.add((h, w))
        centres.append((top + h / 2, left + w / 2, h, w))
    assert sizes == {(90, 120), (180, 240), (270, 360), (360, 480)}  # 1/5 … 4/5 of the image, its aspect
    for cy, cx, h, w in centres:
        assert abs(cy - height / 2) <= (height - h) / 4 + 0.5 and abs(cx - width / 2) <= (width - w) / 4 + 0.5
    image = np.arange(height * width, dtype=np.int64).reshape(height, width)
    assert np.array_equal(transform.apply(image, (10, 20, 3, 4)), image[10:13, 20:24])


@pytest.fixture
def arl_data(isic2017_root):
    return ISIC2017DataModule(str(isic2017_root), image_size=32, batch_size=4, num_workers=0, train_transforms=ARL,
                              eval_transforms=ARL_EVAL, train_repeats=60, eval_views=9)


def test_sixty_online_patches_per_training_image(arl_data):
    train = arl_data.dataset("train")
    n = len(arl_data.table("train"))
    assert len(train) == 60 * n
    first, again = train[0]["image"], train[n]["image"]  # the same image, drawn twice
    assert first.shape == (3, 32, 32) and not torch.equal(first, again)
    assert len(arl_data.train_dataloader().dataset) == 60 * n


def test_nine_test_patches_are_averaged(arl_data):
    from lightning_modules import LesionClassifier

    batch = next(iter(arl_data.test_dataloader()))
    assert batch["image"].shape == (4, 9, 3, 32, 32)
    model = LesionClassifier(backbone="test_resnet", num_classes=2).eval()
    with torch.no_grad():
        averaged = model.probabilities(batch["image"])
        by_hand = torch.stack([model(batch["image"][:, v]).softmax(1) for v in range(9)]).mean(0)
    assert torch.allclose(averaged, by_hand, atol=1e-6) and torch.allclose(averaged.sum(1), torch.ones(4))
    single = arl_data.dataset("test", views=1)[0]["image"]
    assert single.shape == (3, 32, 32)


def test_an_images_random_test_views_follow_its_name_not_its_place(arl_data):
    """The evaluation pipeline's draws are keyed by the image's file name: a test image gets the same nine random
    patches from the test split and from any list of files (``dermlab classify``), in whatever order (training
    draws stay keyed by their place in the epoch: the sixty draws above differ)."""
    from datamodules.datasets.image_files import ImageInputsDataset

    test = arl_data.dataset("test")
    paths = list(test.table.paths)
    files = ImageInputsDataset(paths[::-1], test.transform, views=9, seed=test.seed)
    for position in (0, len(paths) - 1):
        views = test[position]["image"]
        assert views.shape == (9, 3, 32, 32) and not torch.equal(views[0], views[1])
        assert torch.equal(files[len(paths) - 1 - position]["image"], views)
