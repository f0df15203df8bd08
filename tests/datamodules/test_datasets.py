"""The data sets without Lightning (:mod:`datamodules.datasets`): a plain PyTorch loop over each, the same images
and labels as its LightningDataModule, and no Lightning in the interpreter."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from datamodules import DATAMODULES
from datamodules.datasets import READERS, ISIC2017Dataset, ReaderDataset
from tests.conftest import REPO

PLAIN_LOOP = """
import json
import sys
from torch.utils.data import DataLoader
from datamodules.datasets import ISIC2017Dataset

data = ISIC2017Dataset(sys.argv[1], split="train", task="melanoma", image_size=48)
shapes, labels, ids = set(), [], []
for batch in DataLoader(data, batch_size=5, shuffle=False):
    shapes.add(tuple(batch["image"].shape[1:]))
    labels += batch["label"].tolist()
    ids += batch["image_id"]
print(json.dumps({"shapes": sorted(shapes), "ids": ids, "labels": labels, "lightning": sorted(
    m for m in sys.modules if m.split(".")[0] in ("lightning", "pytorch_lightning", "torchmetrics"))}))
"""


def test_isic2017_dataset_serves_a_plain_loop_without_importing_lightning(isic2017_root):
    result = subprocess.run([sys.executable, "-c", PLAIN_LOOP, str(isic2017_root)], cwd=REPO, capture_output=True,
                            text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["shapes"] == [[3, 48, 48]]
    truth = pd.read_csv(isic2017_root / "ISIC-2017_Training_Part3_GroundTruth.csv")
    assert seen["ids"] == truth.image_id.tolist()  # every training image, in the file's order
    assert seen["labels"] == truth.melanoma.astype(int).tolist()
    assert seen["lightning"] == []


def test_isic2017_dataset_items_by_hand(isic2017_root):
    """One item: a (3, S, S) float tensor normalised with ImageNet's mean / std, the CSV's label and id."""
    data = ISIC2017Dataset(isic2017_root, "test", task="three_class", image_size=40)
    truth = pd.read_csv(isic2017_root / "ISIC-2017_Test_v2_Part3_GroundTruth.csv")
    assert len(data) == len(truth) and data.class_names == ("nevus", "melanoma", "seborrheic_keratosis")
    item = data[3]
    assert item["image"].shape == (3, 40, 40) and item["image"].dtype == torch.float32
    expected = int(truth.melanoma[3]) + 2 * int(truth.seborrheic_keratosis[3])
    assert item["image_id"] == truth.image_id[3] and item["label"] == expected and item["weight"] == 1.0
    # the default pipeline's normalisation: (x / 255 - mean) / std per channel, so no value lies outside it
    low = (0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    high = (1 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    per_channel = item["image"].flatten(1)
    assert (per_channel.min(1).values.numpy() >= low - 1e-5).all()
    assert (per_channel.max(1).values.numpy() <= high + 1e-5).all()


def test_a_dataset_refuses_an_unknown_split(isic2017_root):
    with pytest.raises(ValueError, match="split must be one of"):
        ISIC2017Dataset(isic2017_root, split="validation")


SMALL = {"isic2016": {"val_size": 4},  # the twins hold 24 training images: the paper's 251 cannot be moved
         "ddi": {"split": "kfold"}}  # its default, external, has no training images


@pytest.mark.parametrize("name", sorted(READERS))
def test_each_reader_gives_its_datamodule_the_same_splits(name, synthetic):
    """Every data set's LightningDataModule builds on its reader: the same images and labels per split, and the
    reader imports no Lightning (see tests of the layering)."""
    root = synthetic(name)
    reader_class, fixed = READERS[name]
    module_class, module_fixed = DATAMODULES[name]
    assert issubclass(module_class, reader_class) and fixed == module_fixed
    options = {**fixed, **SMALL.get(name, {})}
    reader, module = reader_class(root, **options), module_class(root, **options)
    assert reader.class_names == module.class_names
    for split in ("train", "val", "test"):
        ours, theirs = reader.table(split), module.table(split)
        assert ours.ids == theirs.ids and np.array_equal(ours.labels, theirs.labels), split
        assert len(ours) > 0 or split == "val", split
    served = ReaderDataset(reader, "train", image_size=32)
    first = next(iter(DataLoader(served, batch_size=4)))
    assert first["image"].shape[0] == min(4, len(served)) and first["image"].shape[1] == 3
    assert first["image_id"] == reader.table("train").ids[:4]


def test_the_documented_plain_loop_trains_and_predicts_on_the_twin(isic2017_root):
    """The Python block of the data-set docs, as printed, on the ISIC 2017 twin (smaller images and batches, no
    worker processes): it trains a step per batch and gives one probability row per test image."""
    page = (REPO / "docs" / "datasets" / "index.md").read_text()
    block = next(m.group(1) for m in re.finditer(r"^```python\n(.*?)^```", page, flags=re.S | re.M)
                 if "ISIC2017Dataset" in m.group(1))
    smaller = (block.replace('"/data/isic2017"', repr(str(isic2017_root))).replace("(224, 224)", "(32, 32)")
               .replace("image_size=224", "image_size=32").replace("num_workers=4", "num_workers=0"))
    assert smaller.count(repr(str(isic2017_root))) == 2 and "224" not in smaller
    torch.manual_seed(0)
    namespace: dict = {}
    exec(compile(smaller, "docs/datasets/index.md", "exec"), namespace)  # noqa: S102
    truth = pd.read_csv(isic2017_root / "ISIC-2017_Test_v2_Part3_GroundTruth.csv")
    probabilities = namespace["probabilities"]
    assert probabilities.shape == (len(truth), 2) and torch.allclose(probabilities.sum(1), torch.ones(len(truth)))
    assert torch.isfinite(namespace["loss"]) and namespace["model"].fc.weight.grad is not None


def test_a_pooled_dataset_takes_its_split_scheme_as_scheme(synthetic):
    """``scheme`` and ``fold`` reach the reader (whose own ``split`` argument is the scheme): the served test
    split is the reader's fold, and another fold serves other images."""
    from datamodules.datasets import HAM10000Dataset, HAM10000Reader

    root = synthetic("ham10000")
    served = HAM10000Dataset(root, "test", scheme="kfold", fold=1, n_folds=3, image_size=32)
    expected = HAM10000Reader(root, split="kfold", fold=1, n_folds=3).table("test")
    other = HAM10000Dataset(root, "test", scheme="kfold", fold=2, n_folds=3, image_size=32)
    assert served.table.ids == expected.ids and served.reader.scheme == "kfold" and served.reader.fold == 1
    assert not set(served.table.ids) & set(other.table.ids)


def test_options_beside_a_ready_made_reader_are_refused(isic2017_root):
    from datamodules.datasets import ISIC2017Reader

    with pytest.raises(ValueError, match=r"options \['task'\] are the reader's"):
        ReaderDataset(ISIC2017Reader(isic2017_root), "train", task="three_class")


def test_the_shipped_sample_needs_no_root():
    from datamodules.datasets import ISICSampleDataset
    from datamodules.datasets.isic_sample import SAMPLE_ROOT

    if not SAMPLE_ROOT.is_dir():
        pytest.skip("data_samples/isic_uda1 (the shipped sample) is not present")
    data = ISICSampleDataset(split="test", image_size=32)
    assert data.reader.root == SAMPLE_ROOT and len(data) > 0 and data.class_names == ("other", "melanoma")


def test_a_plain_loop_gets_fresh_augmentation_every_epoch_and_repeats_it_under_a_seed(isic2017_root):
    """No epoch-tagged sampler in a plain loop: each item's augmentation draws from torch's generator, so two
    passes differ, and the same ``torch.manual_seed`` gives the same pass again."""
    import albumentations as A
    from albumentations.pytorch import ToTensorV2

    augment = A.Compose([A.RandomResizedCrop((24, 24), scale=(0.2, 1.0)), A.HorizontalFlip(), A.Normalize(),
                         ToTensorV2()])
    data = ISIC2017Dataset(isic2017_root, "train", transform=augment)

    def one_pass(seed: int | None = None) -> torch.Tensor:
        if seed is not None:
            torch.manual_seed(seed)
        return torch.stack([data[i]["image"] for i in range(4)])

    first, second = one_pass(), one_pass()
    assert not torch.equal(first, second)
    assert torch.equal(one_pass(seed=3), one_pass(seed=3))
    workers = [torch.cat([b["image"] for b in DataLoader(data, batch_size=4, num_workers=2)]) for _ in range(2)]
    assert not torch.equal(workers[0], workers[1])  # each epoch's workers draw anew


def test_a_dataset_names_what_it_cannot_take(isic2017_root, synthetic):
    from torchvision import transforms

    from datamodules.datasets import HAM10000Dataset

    with pytest.raises(TypeError, match=r"ISIC2017Dataset got unknown option\(s\) \['batch_size'\]; its reader "
                                        r"ISIC2017Reader takes \['task', 'seed', 'on_bad_image'"):
        ISIC2017Dataset(isic2017_root, "train", batch_size=8)
    with pytest.raises(TypeError, match="transform must be an albumentations pipeline .* got Compose"):
        ISIC2017Dataset(isic2017_root, "train", transforms.Compose([transforms.ToTensor()]))
    with pytest.raises(TypeError, match="give a reader"):
        ReaderDataset(isic2017_root, "test")
    served = HAM10000Dataset(synthetic("ham10000"), "train", None, 32, scheme="kfold")  # positional as the base
    assert served.reader.scheme == "kfold" and served[0]["image"].shape == (3, 32, 32)
