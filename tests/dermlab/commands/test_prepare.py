"""``dermlab prepare`` (``dermlab/commands/prepare.py``): the preprocessing cache filled for every image kind."""

from __future__ import annotations

import json

import pytest

from datamodules import ISIC2018SegmentationDataModule
from dermlab.cli import main
from tests.helpers.images import KINDS, first_val_image, gradient, replace_image


@pytest.mark.parametrize("format", ["npy", "png"])
def test_prepare_fills_the_cache_and_the_datamodule_reads_it(synthetic, tmp_path, capsys, format):
    root = synthetic("isic2018_task1")
    main(["prepare", "--dataset", "isic2018_task1", "--root", str(root), "--max-side", "16",
          "--cache-dir", str(tmp_path / "cache"), "--format", format])
    assert '"train": 24' in capsys.readouterr().out
    entries = list((tmp_path / "cache" / "max16").rglob(f"*.{format}"))
    assert len(entries) == 2 * (24 + 8 + 12)  # an image and a mask per case
    data = ISIC2018SegmentationDataModule(str(root), cache_dir=str(tmp_path / "cache"), max_side=16,
                                          cache_format=format, eval_transforms=[], num_workers=0)
    sample = data.dataset("val")[0]
    assert sample["image"].shape == (3, 12, 16) and sample["mask"].shape == (1, 12, 16)
    assert set(sample["mask"].unique().tolist()) <= {0.0, 1.0}
    assert len(list((tmp_path / "cache" / "max16").rglob("*.*"))) == len(entries)  # nothing new, no leftovers


def test_prepare_caches_every_kind_and_refuses_an_empty_file_naming_it(broken_root, tmp_path, capsys):
    images = sorted((broken_root / "ISIC-2017_Training_Data").glob("ISIC_???????.jpg"))
    for victim, (suffix, write, _) in zip(images, KINDS.values(), strict=False):
        replace_image(victim, suffix, lambda p, w=write: w(p, gradient()))
    cache = tmp_path / "cache ü"
    main(["prepare", "--dataset", "isic2017", "--root", str(broken_root), "--max-side", "16",
          "--cache-dir", str(cache)])
    assert json.loads(capsys.readouterr().out)["images"] == {"train": 24, "val": 8, "test": 12}
    empty = first_val_image(broken_root)
    empty.write_bytes(b"")
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "--dataset", "isic2017", "--root", str(broken_root), "--max-side", "16",
              "--cache-dir", str(cache)])
    error = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("INFO: ")]
    assert exit_info.value.code == 2 and len(error) == 1
    truth = broken_root / "ISIC-2017_Validation_Part3_GroundTruth.csv"
    assert error[0] == (f"dermlab: error: 1 image(s) listed in '{truth}'"
                        f" are empty (0 bytes), e.g. '{empty}', as after a download or copy that stopped before "
                        "writing them; re-download them, remove those rows, or set on_bad_image: skip.")
