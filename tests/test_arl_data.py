"""arl paper data (§IV-B): multi-scale central patches drawn online, 60 per image, 9 averaged at test time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datamodules import ISIC2017DataModule
from datamodules.patches import CentralScalePatch, patch_box
from tests.conftest import REPO

ARL = str(REPO / "experiments" / "base" / "augment" / "arl.yaml")
ARL_EVAL = str(REPO / "experiments" / "base" / "augment" / "arl_eval.yaml")


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


def test_arl_cnn14_learns_from_online_patches(tmp_path):
    """ARL-CNN14 from scratch on synthetic ISIC 2017 (320 images of 64 px, 48 px patches, 2 patches per image
    per epoch, 3 test patches averaged, 6 epochs). Seeds 0/1/2 gave test AUC 0.775 / 0.821 / 0.800 on the
    2-core CPU machine (20 s each); the bar 0.65 sits below the worst seed and well above chance."""
    from datamodules.synthetic import write_synthetic
    from dermlab.commands.trainer import build_cli
    from lightning_modules.nets.arl import alphas

    root = tmp_path / "data"
    write_synthetic("isic2017", root, n=320, size=64, seed=0)
    cli = build_cli(["fit", "-c", str(REPO / "experiments" / "demo_synthetic.yaml"), "--data.init_args.root", str(root),
                     "--data.init_args.image_size", "48", "--data.init_args.num_workers", "0",
                     "--data.init_args.train_transforms", ARL, "--data.init_args.eval_transforms", ARL_EVAL,
                     "--data.init_args.train_repeats", "2", "--data.init_args.eval_views", "3",
                     "--model.init_args.backbone", "arl_cnn14", "--trainer.max_epochs", "6",
                     "--model.init_args.scheduler.init_args.T_max", "6",
                     "--trainer.default_root_dir", str(tmp_path / "run"), "--run.wandb", "disabled"])
    result = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)[0]
    assert result["test/auc"] > 0.65
    assert all(value != pytest.approx(0.001, abs=1e-6) for value in alphas(cli.model).values())  # α learned
    assert (tmp_path / "run" / "plots" / "alpha.png").is_file()


def _extra_set(root, folder, ids, rows):
    """An ISIC-archive-like folder: images copied from ``root``'s training set under new ids, and their CSV."""
    import shutil

    folder.mkdir()
    for new, old in zip(ids, rows, strict=True):
        shutil.copy(root / "ISIC-2017_Training_Data" / f"{old}.jpg", folder / f"{new}.jpg")
    csv = folder / "archive.csv"
    csv.write_text("image_id,melanoma,seborrheic_keratosis\n"
                   + "".join(f"{i},{float(k == 0)},{float(k == 1)}\n" for k, i in enumerate(ids)))
    return csv


def test_extra_training_images_join_the_training_split_only(isic2017_root, tmp_path):
    """The paper adds 1320 ISIC-archive images to training (§IV-A); here 3 images in the 2017 CSV format."""
    train_ids = ISIC2017DataModule(str(isic2017_root)).table("train").ids
    csv = _extra_set(isic2017_root, tmp_path / "archive", ["ISIC_9000001", "ISIC_9000002", "ISIC_9000003"],
                     train_ids[:3])
    data = ISIC2017DataModule(str(isic2017_root), extra_train_csv=str(csv))
    train = data.table("train")
    assert train.ids == [*train_ids, "ISIC_9000001", "ISIC_9000002", "ISIC_9000003"]
    assert list(train.labels[-3:]) == [1, 0, 0]  # melanoma, keratosis (→ "other" for the melanoma task), nevus
    assert train.paths[-1] == tmp_path / "archive" / "ISIC_9000003.jpg"
    assert data.dataset("train")[len(train) - 1]["image"].shape[0] == 3
    assert len(data.table("val")) == len(ISIC2017DataModule(str(isic2017_root)).table("val"))


def test_extra_training_images_may_not_repeat_a_test_image(isic2017_root, tmp_path):
    from dermlab.errors import DataError

    test_id = ISIC2017DataModule(str(isic2017_root)).table("test").ids[0]
    train_id = ISIC2017DataModule(str(isic2017_root)).table("train").ids[0]
    csv = _extra_set(isic2017_root, tmp_path / "archive", [test_id], [train_id])
    with pytest.raises(DataError, match=rf"archive\.csv.*already in the test split \(e\.g\. {test_id}\)"):
        ISIC2017DataModule(str(isic2017_root), extra_train_csv=str(csv)).table("train")


def test_extra_training_images_are_refused_by_a_data_set_without_the_format(synthetic, tmp_path):
    from datamodules import ISIC2016DataModule
    from dermlab.errors import DataError

    with pytest.raises(DataError, match="does not take extra training images"):
        data = ISIC2016DataModule(str(synthetic("isic2016")), val_size=4, extra_train_csv=str(tmp_path / "x.csv"))
        data.table("train")
