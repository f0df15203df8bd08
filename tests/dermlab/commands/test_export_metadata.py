"""A classifier with the patient-metadata branch leaves the lab: ``dermlab export`` records its fields and their
encoding, ``dermlab classify --metadata CSV`` (and ``--onnx``, and ``dermlab.load_model(...).predict``) reproduces
the run's own test predictions from the fields the run's ``splits/test.csv`` lists, and every way of giving the
metadata wrongly is refused naming the culprit. One tiny run (HAM10000 twin, test_resnet, 32 px, one epoch)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dermlab.errors import DataError
from tests.helpers.model_package import shared_metadata_package

CLASSES = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]


@pytest.fixture(scope="session")
def metadata_package(synthetic, tmp_path_factory):
    """(run folder, package folder, the twin's folder) of the shared metadata run (read-only)."""
    root = synthetic("ham10000")
    return (*shared_metadata_package(root, tmp_path_factory.getbasetemp().parent), root)


def split_images(run: Path, root: Path) -> tuple[list[Path], pd.DataFrame]:
    """The run's test images (files of this session's twin ``root``, the same images as the run's: same seed) and
    their ``splits/test.csv`` rows, in that order."""
    split = pd.read_csv(run / "splits" / "test.csv", dtype=str, keep_default_na=False)
    files = {p.stem: p for p in root.glob("HAM10000_images_part_*/*.jpg")}
    return [files[i] for i in split.image_id], split


def metadata_csv(split: pd.DataFrame, path: Path, official: bool = True) -> Path:
    """The split's ``meta_*`` columns as a user's CSV: ISIC's column names, or the suite's."""
    names = (("isic_id", "age_approx", "sex", "anatom_site_general") if official
             else ("image", "age", "sex", "localization"))
    columns = (split.image_id + ".jpg", split.meta_age, split.meta_sex, split.meta_localization)
    pd.DataFrame(dict(zip(names, columns, strict=True))).to_csv(path, index=False)
    return path


def classified(package_dir, inputs, out, *flags):
    from dermlab.commands.classify import main

    table = main(["--model", str(package_dir), *map(str, inputs), "--out", str(out), *map(str, flags)])
    return table.assign(image=[Path(p).stem for p in table.image]).set_index("image")


def test_classify_with_metadata_gives_the_runs_test_and_onnx_and_predict_agree(metadata_package, tmp_path, caplog):
    import dermlab

    run, pkg, root = metadata_package
    paths, split = split_images(run, root)
    truth = pd.read_csv(run / "predictions_test.csv").set_index("image")
    table = classified(pkg, paths, tmp_path / "c.csv", "--metadata", metadata_csv(split, tmp_path / "m.csv"))
    assert list(pd.read_csv(tmp_path / "c.csv").columns) == ["image", *CLASSES, "predicted"]  # the usual shape
    np.testing.assert_allclose(table.loc[truth.index, CLASSES], truth[CLASSES], atol=1e-5)
    onnx = classified(pkg, paths, tmp_path / "o.csv", "--onnx", "--metadata",
                      metadata_csv(split, tmp_path / "s.csv", official=False))
    np.testing.assert_allclose(onnx[CLASSES], table[CLASSES], atol=1e-4)
    frame = pd.DataFrame({"age": pd.to_numeric(split.meta_age), "sex": split.meta_sex,
                          "localization": split.meta_localization})
    model = dermlab.load_model(pkg)
    np.testing.assert_allclose(model.predict(paths, metadata=frame), table[CLASSES], atol=1e-6)
    # the metadata is used: every field missing (and an unseen site, encoded as missing and counted) changes them
    unknown = {"age": [None] * len(paths), "sex": [""] * len(paths), "localization": ["the moon"] * len(paths)}
    with caplog.at_level(logging.WARNING):
        blind = model.predict(paths, metadata=unknown)
    assert np.abs(blind - table[CLASSES].to_numpy()).max() > 1e-4
    assert f"{len(paths)} image(s) have a category" in caplog.text and "the moon" in caplog.text


def test_the_package_says_which_fields_it_needs(metadata_package):
    _, pkg, _ = metadata_package
    config = json.loads((pkg / "config.json").read_text())
    assert config["architecture"]["metadata"]["encoding"]["fields"] == ["age", "sex", "localization"]
    summary = config["metadata"]
    assert summary["fields"] == ["age", "sex", "localization"] and summary["fitted_on"] == "the training split"
    assert summary["width"] == len(config["architecture"]["metadata"]["encoding"]["columns"])
    assert "anatom_site_general" in summary["by_field"]["localization"]["accepted_columns"]
    card = (pkg / "README.md").read_text()
    assert "## Patient metadata" in card and "`age`, `sex`, `localization`" in card
    assert "fitted on the training split" in card and "--metadata metadata.csv" in card


def test_metadata_given_wrongly_is_refused_naming_the_culprit(metadata_package, tmp_path):
    from lightning_modules.nets.package import ModelPackage, write_package
    from lightning_modules.nets.recipes import build_from_recipe

    run, pkg, root = metadata_package
    paths, split = split_images(run, root)
    csv = metadata_csv(split, tmp_path / "m.csv")
    with pytest.raises(DataError, match="takes patient metadata beside each image \\(age, sex, localization\\)"):
        classified(pkg, paths, tmp_path / "c.csv")
    metadata_csv(split.iloc[1:], tmp_path / "short.csv")
    with pytest.raises(DataError, match=f"image '{paths[0]}' has no row in --metadata '.*short.csv'.*empty fields"):
        classified(pkg, paths, tmp_path / "c.csv", "--metadata", tmp_path / "short.csv")
    pd.read_csv(csv).drop(columns="sex").to_csv(tmp_path / "nosex.csv", index=False)
    with pytest.raises(DataError, match="'.*nosex.csv' has no column for the patient field 'sex'"):
        classified(pkg, paths, tmp_path / "c.csv", "--metadata", tmp_path / "nosex.csv")
    bad = pd.read_csv(csv, dtype=str)
    bad.loc[2, "age_approx"] = "old"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match=f"'.*bad.csv' row 4 \\({split.image_id[2]}\\): age 'old' is not a number"):
        classified(pkg, paths, tmp_path / "c.csv", "--metadata", tmp_path / "bad.csv")
    model = ModelPackage.load(pkg)
    with pytest.raises(DataError, match="1 row\\(s\\) for 2 image\\(s\\)"):
        model.predict(paths[:2], metadata={"age": [50], "sex": ["male"], "localization": ["back"]})
    # an image-only package (the same network without its branch, untrained) refuses metadata
    config = {k: v for k, v in model.config.items() if k not in ("metadata", "files")}
    config["architecture"] = {k: v for k, v in config["architecture"].items() if k != "metadata"}
    plain = write_package(tmp_path / "plain", build_from_recipe(config["architecture"]["builder"],
                                                                config["architecture"]["arguments"]), config)
    with pytest.raises(DataError, match="'.*m.csv': this model takes images only"):
        classified(plain, paths, tmp_path / "c.csv", "--metadata", csv)
    with pytest.raises(DataError, match="this model takes images only"):
        ModelPackage.load(plain).predict(paths[:1], metadata={"age": [50]})
