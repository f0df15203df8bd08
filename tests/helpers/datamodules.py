"""Each datamodule on its synthetic twin, with the options the tiny twins need."""

from __future__ import annotations

from datamodules import DATAMODULES

OPTIONS = {"isic2016": {"val_size": 6}, "ham10000": {"split": "kfold", "n_folds": 3}, "isic2019": {"n_folds": 3},
           "isic2020": {"n_folds": 3}, "ddi": {"split": "kfold", "n_folds": 3}}  # ddi: its default split trains nothing


def make(name, root, **kwargs):
    cls, fixed = DATAMODULES[name]
    return cls(str(root), image_size=32, batch_size=4, num_workers=0, **fixed, **OPTIONS.get(name, {}), **kwargs)
