"""``datamodules/datasets/pad_ufes20.py``: the release's layouts, labels, patients, metadata and skin types by hand on
a hand-written ``metadata.csv``, bad values refused, ``split: external``, a HAM10000-class model's mapping onto it,
and the synthetic twin's layout and patient-grouped folds."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from datamodules import HAM10000DataModule, PADUFES20DataModule
from datamodules.cross import CrossTest
from datamodules.datasets import PADUFES20Dataset, PADUFES20Reader
from datamodules.datasets.ham10000 import HAM10000Reader
from datamodules.datasets.pad_ufes20 import RELEASE_COLUMNS
from datamodules.synthetic import SIZES, write_synthetic
from dermlab.errors import DataError

# patient, lesion, age, gender, fitspatrick, region, diagnostic, img_id: a lesion with two images (PAT_1's 10), a
# patient with two lesions (PAT_1), a patient without the extended data (PAT_3: gender and type empty)
ROWS = [
    ("PAT_1", "10", "55", "FEMALE", "2.0", "FACE", "ACK", "PAT_1_10_100.png"),
    ("PAT_1", "10", "55", "FEMALE", "2.0", "FACE", "ACK", "PAT_1_10_101.png"),
    ("PAT_1", "11", "55", "FEMALE", "2.0", "FOREARM", "BCC", "PAT_1_11_102.png"),
    ("PAT_2", "20", "71", "MALE", "6.0", "NOSE", "SCC", "PAT_2_20_103.png"),
    ("PAT_3", "30", "8", "", "", "CHEST", "NEV", "PAT_3_30_104.png"),
    ("PAT_4", "40", "40", "MALE", "4.0", "BACK", "SEK", "PAT_4_40_105.png"),
    ("PAT_5", "50", "63", "FEMALE", "1.0", "ARM", "MEL", "PAT_5_50_106.png"),
]
IDS = [row[-1][:-4] for row in ROWS]
LAYOUTS = {  # where each layout puts the image of row i
    "parts": lambda i: f"images/imgs_part_{1 + i % 3}",  # as the release unzips
    "parts_at_root": lambda i: f"imgs_part_{1 + i % 3}",
    "merged": lambda i: "images",
    "flat": lambda i: ".",
}


def write_release(root: Path, rows: list[tuple] = ROWS, layout: str = "parts") -> Path:
    """``metadata.csv`` with the release's 26 columns (the others empty) and an 8 px PNG per row."""
    lines = [",".join(RELEASE_COLUMNS)]
    for i, (patient, lesion, age, gender, kind, region, diagnostic, img_id) in enumerate(rows):
        values = dict.fromkeys(RELEASE_COLUMNS, "")
        values.update(patient_id=patient, lesion_id=lesion, age=age, gender=gender, fitspatrick=kind, region=region,
                      diagnostic=diagnostic, img_id=img_id, biopsed=str(diagnostic in ("BCC", "MEL", "SCC")))
        lines.append(",".join(values[c] for c in RELEASE_COLUMNS))
        folder = root / LAYOUTS[layout](i)
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (40 * i % 256, 90, 120)).save(folder / img_id)
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root


def pool(root: Path, **options) -> PADUFES20Reader:
    """The reader with every image in its test split (``split: external``)."""
    return PADUFES20Reader(root, split="external", **options)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_the_images_are_found_wherever_the_release_was_unpacked(layout, tmp_path):
    root = write_release(tmp_path, layout=layout)
    table = pool(root).table("test")
    assert table.ids == IDS and len(table) == 7  # every row, in the file's order
    assert [p.name for p in table.paths] == [row[-1] for row in ROWS]
    assert table.paths == [root / LAYOUTS[layout](i) / row[-1] for i, row in enumerate(ROWS)]
    assert table.labels.tolist() == [0, 0, 1, 4, 3, 5, 2]  # ACK BCC MEL NEV SCC SEK
    assert table.groups == ["PAT_1", "PAT_1", "PAT_1", "PAT_2", "PAT_3", "PAT_4", "PAT_5"]
    assert table.extra["pad_lesion_id"] == ["10", "10", "11", "20", "30", "40", "50"]
    assert table.extra["biopsed"] == ["False", "False", "True", "True", "False", "False", "True"]
    assert pool(root).class_names == ("ACK", "BCC", "MEL", "NEV", "SCC", "SEK")


def test_an_image_in_two_folders_is_refused_naming_both(tmp_path):
    root = write_release(tmp_path)
    shutil.copy(root / "images" / "imgs_part_2" / "PAT_1_10_101.png", root / "images" / "imgs_part_3")
    with pytest.raises(DataError) as caught:
        pool(root).table("test")
    message = str(caught.value)
    assert "'PAT_1_10_101.png' (listed in" in message and "metadata.csv" in message
    assert str(root / "images" / "imgs_part_2" / "PAT_1_10_101.png") in message
    assert str(root / "images" / "imgs_part_3" / "PAT_1_10_101.png") in message


def test_patient_metadata_by_hand(tmp_path):
    frame = pool(write_release(tmp_path)).patient_metadata("test")
    assert frame.index.tolist() == IDS and list(frame.columns) == ["age", "sex", "localization"]
    assert frame["age"].tolist() == [55.0, 55.0, 55.0, 71.0, 8.0, 40.0, 63.0]
    assert frame["sex"].tolist() == ["female", "female", "female", "male", "unknown", "male", "female"]
    assert frame["localization"].tolist() == ["face", "face", "forearm", "nose", "chest", "back", "arm"]


def test_skin_types_and_subgroups_by_hand(tmp_path):
    frame = pool(write_release(tmp_path)).metadata("test")
    assert list(frame.columns) == ["age_band", "sex", "localization", "fitzpatrick", "fitzpatrick_group"]
    assert frame["fitzpatrick"].tolist() == ["II", "II", "II", "VI", "unknown", "IV", "I"]
    assert frame["fitzpatrick_group"].tolist() == ["I-II", "I-II", "I-II", "V-VI", "unknown", "III-IV", "I-II"]
    assert frame["age_band"].tolist() == ["45-59", "45-59", "45-59", "60-74", "0-29", "30-44", "60-74"]


def test_the_metadata_branch_encodes_its_fields(tmp_path):
    root = write_release(tmp_path)
    data = PADUFES20DataModule(str(root), split="weighting", metadata_fields=["age", "sex", "localization"])
    encoding = data.metadata_encoding
    train = data.patient_metadata("train")
    assert encoding.age_mean == pytest.approx(train["age"].mean())
    assert encoding.categories["localization"] == tuple(sorted(set(train["localization"])))
    assert set(encoding.categories["sex"]) <= {"female", "male"}


@pytest.mark.parametrize(("column", "row", "value", "message"), [
    ("diagnostic", 3, "BOD", r"row 5 \(PAT_2_20_103.png\) has diagnostic 'BOD'; expected one of ACK, BCC, MEL"),
    ("diagnostic", 0, "", r"row 2 \(PAT_1_10_100.png\) has an empty diagnostic"),
    ("fitspatrick", 5, "7.0", r"row 7 \(PAT_4_40_105.png\): fitspatrick '7.0' is not a Fitzpatrick type 1–6"),
    ("fitspatrick", 1, "0", r"row 3 \(PAT_1_10_101.png\): fitspatrick '0' is not a Fitzpatrick type 1–6"),
    ("fitspatrick", 2, "light", r"row 4 \(PAT_1_11_102.png\): fitspatrick 'light'"),
    ("patient_id", 4, "", r"row 6 \(PAT_3_30_104.png\) has no patient_id"),
    ("lesion_id", 3, "10", r"lists lesion_id '10' under patients \['PAT_1', 'PAT_2'\] \(rows 2, 3, 5\)"),
    ("age", 6, "old", r"row 8 \(PAT_5_50_106\): age 'old' is not a number"),
])
def test_bad_values_are_refused_naming_file_row_and_value(tmp_path, column, row, value, message):
    root = write_release(tmp_path)
    table = pd.read_csv(root / "metadata.csv", dtype=str, keep_default_na=False)
    table.loc[row, column] = value
    table.to_csv(root / "metadata.csv", index=False)
    reader = pool(root)
    with pytest.raises(DataError, match=message) as caught:
        reader.patient_metadata("test") if column == "age" else reader.table("test")
    assert str(root / "metadata.csv") in str(caught.value)


def test_an_absent_image_is_reported_by_the_screening_or_skipped(tmp_path):
    root = write_release(tmp_path)
    (root / "images" / "imgs_part_1" / "PAT_2_20_103.png").unlink()
    with pytest.raises(DataError) as caught:
        pool(root).table("test")
    message = str(caught.value)
    assert "1 image(s) listed in" in message and "metadata.csv" in message and "of 7 listed" in message
    assert "PAT_2_20_103.png" in message and "on_bad_image: skip" in message
    assert pool(root, on_bad_image="skip").table("test").ids == [i for i in IDS if i != "PAT_2_20_103"]
    for image in (root / "images").rglob("*.png"):
        image.unlink()
    with pytest.raises(DataError, match="no images .* under"):
        pool(root).table("test")


def test_split_external_tests_every_image_and_refuses_training(tmp_path):
    root = write_release(tmp_path)
    reader = pool(root)
    assert reader.table("test").ids == IDS and len(reader.table("val")) == 0
    with pytest.raises(DataError, match="split: external: every image is a test image and none trains"):
        reader.table("train")
    served = PADUFES20Dataset(root, "test", scheme="external", image_size=16)
    assert len(served) == 7 and served[3]["label"] == 4 and served[3]["image"].shape == (3, 16, 16)
    with pytest.raises(DataError, match="split: external"):
        PADUFES20DataModule(str(root), split="external").setup("fit")


def test_a_ham10000_class_model_scores_it_on_five_evaluation_classes(tmp_path, synthetic):
    pad = pool(write_release(tmp_path / "pad"))
    cross = CrossTest(HAM10000Reader(synthetic("ham10000")), pad)
    mapping = cross.mapping
    assert mapping.name == "isic2018 → pad_ufes20"
    assert mapping.classes == ("MEL", "NV", "BCC", "AKIEC", "BKL")  # DF and VASC have no PAD image: they drop out
    assert mapping.from_source["DF"] is None and mapping.from_source["VASC"] is None
    assert dict(mapping.from_target) == {"ACK": "AKIEC", "BCC": "BCC", "MEL": "MEL", "NEV": "NV", "SCC": "AKIEC",
                                         "SEK": "BKL"}
    table = cross.table()
    assert table.ids == IDS and cross.left_out == {}
    # ACK ACK BCC SCC NEV SEK MEL -> AKIEC AKIEC BCC AKIEC NV BKL MEL
    assert table.labels.tolist() == [3, 3, 2, 3, 1, 4, 0]
    data = HAM10000DataModule(str(synthetic("ham10000")), split="kfold", n_folds=3, test_on=PADUFES20DataModule(
        str(tmp_path / "pad"), split="external"))
    assert data.split_class_names("test") == ("MEL", "NV", "BCC", "AKIEC", "BKL")
    assert data.table("test").labels.tolist() == [3, 3, 2, 3, 1, 4, 0]


# --- the synthetic twin ----------------------------------------------------------------------------------------

def test_the_twin_has_the_release_layout(synthetic):
    root = synthetic("pad_ufes20")
    raw = (root / "metadata.csv").read_text()
    assert raw.splitlines()[0] == ",".join(RELEASE_COLUMNS) and len(RELEASE_COLUMNS) == 26 and "\r" not in raw
    table = pd.read_csv(root / "metadata.csv", dtype=str)
    assert len(table) == 24 and table.img_id.str.fullmatch(r"PAT_\d+_\d+_\d+\.png").all()
    parts = {p.parent.name for p in (root / "images").rglob("*.png")}
    assert parts == {"imgs_part_1", "imgs_part_2", "imgs_part_3"}
    assert sorted(p.name for p in (root / "images").rglob("*.png")) == sorted(table.img_id)
    assert set(table.diagnostic) == {"ACK", "BCC", "MEL", "NEV", "SCC", "SEK"}
    assert table.lesion_id.value_counts().max() == 2 and table.groupby("patient_id").lesion_id.nunique().max() >= 2
    assert table.groupby("lesion_id").patient_id.nunique().max() == 1
    empty = table.fitspatrick.isna()
    assert 0 < empty.sum() < len(table) and table.gender[empty].isna().all() and table.age.notna().all()
    assert set(table.fitspatrick.dropna()) <= {f"{t}.0" for t in range(1, 7)}
    assert set(table.region) <= {"FACE", "FOREARM", "CHEST", "BACK", "NOSE", "ARM", "HAND", "NECK", "SCALP", "EAR",
                                 "LIP", "THIGH", "ABDOMEN", "FOOT"}
    biopsied = table.biopsed.eq("True")
    assert biopsied[table.diagnostic.isin(["BCC", "MEL", "SCC"])].all()


@pytest.mark.parametrize("scheme", ["kfold", "patch", "weighting"])
def test_every_scheme_keeps_a_patient_on_one_side(synthetic, scheme):
    root = synthetic("pad_ufes20")
    folds = range(5) if scheme == "kfold" else [0]
    tested = []
    for fold in folds:
        reader = PADUFES20Reader(root, split=scheme, fold=fold)
        sides = {s: set(reader.table(s).groups) for s in ("train", "val", "test")}
        assert not sides["train"] & sides["val"] and not sides["train"] & sides["test"]
        assert not sides["val"] & sides["test"]
        assert sum(len(reader.table(s)) for s in ("train", "val", "test")) == 24
        tested += reader.table("test").ids
    if scheme == "kfold":
        assert sorted(tested) == sorted(PADUFES20Reader(root, split="external").table("test").ids)


def test_the_twin_writes_in_the_synth_command_and_refuses_too_small_a_copy(tmp_path, capsys):
    from dermlab.commands.synth import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--dataset", "pad_ufes20", "--out", str(tmp_path / "small"), "--n", str(SIZES["pad_ufes20"].minimum - 1)])
    assert exit_info.value.code == 2 and "is too small for pad_ufes20" in capsys.readouterr().err
    main(["--dataset", "pad_ufes20", "--out", str(tmp_path / "pad"), "--n", "25", "--size", "16"])
    assert json.loads(capsys.readouterr().out)["images"] == {"train": 25}
    data = PADUFES20DataModule(str(tmp_path / "pad"), image_size=16, batch_size=2, num_workers=0)
    assert sum(len(data.table(s)) for s in ("train", "val", "test")) == 25


def test_the_twin_draws_each_skin_by_its_type(tmp_path):
    """Lighter types give lighter skin: the image's brightest decile (skin, not lesion), types I-II against V-VI."""
    write_synthetic("pad_ufes20", tmp_path, n=60, size=32, seed=1)
    table = pd.read_csv(tmp_path / "metadata.csv", dtype=str).dropna(subset=["fitspatrick"])
    where = {p.name: p for p in tmp_path.rglob("*.png")}
    bright = {t: [float(np.percentile(np.asarray(Image.open(where[i]).convert("L")), 90))
                  for i in table.img_id[table.fitspatrick.astype(float).between(*t)]] for t in ((1, 2), (5, 6))}
    assert bright[(1, 2)] and bright[(5, 6)] and not math.isnan(np.mean(bright[(5, 6)]))
    assert np.mean(bright[(1, 2)]) > np.mean(bright[(5, 6)]) + 30
