"""Tables as spreadsheets and archives export them: one reader (``dermlab/files/tables.py``) for every ground truth,
metadata file, submission and list. A byte-order mark, CRLF and spaces around ids and header names are read; Harvard
Dataverse's ``.tab`` is read where the ``.csv`` is absent; a European-locale export, a file in another encoding, and
spaces that would hide an error are refused, naming the file and the row."""

from __future__ import annotations

import csv
import io
import logging
import shutil

import numpy as np
import pandas as pd
import pytest
from isic_challenge_scoring.classification import ClassificationMetric, ClassificationScore
from isic_challenge_scoring.types import ScoreError

from datamodules import DATAMODULES, HAM10000DataModule, ISIC2017DataModule
from datamodules.audit import read_duplicate_pairs
from dermlab.challenge.scoring import ISIC2018_CATEGORIES, score
from dermlab.challenge.truth import read_truth
from dermlab.errors import DataError
from dermlab.files.predictions import read_predictions, write_predictions
from dermlab.files.tables import read_table

OPTIONS = {"isic2016": {"val_size": 6}, "ham10000": {"split": "kfold", "n_folds": 3}, "isic2019": {"n_folds": 3},
           "isic2020": {"n_folds": 3}}
CATEGORIES = list(ISIC2018_CATEGORIES)
IDS = [f"ISIC_{35060 + i:07d}" for i in range(10)]


def spreadsheet(text: str) -> bytes:
    """``text`` as a spreadsheet re-saves it: a byte-order mark, CRLF, a space on both sides of every value."""
    rows = csv.reader(io.StringIO(text))
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([[f" {v} " if v else v for v in row] for row in rows])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def resave_every_csv(root) -> int:
    paths = sorted(root.rglob("*.csv"))
    for path in paths:
        path.write_bytes(spreadsheet(path.read_text()))
    return len(paths)


def make(name, root):
    cls, fixed = DATAMODULES[name]
    return cls(str(root), image_size=32, batch_size=4, num_workers=0, **fixed, **OPTIONS.get(name, {}))


def tables(data) -> dict:
    return {s: (data.table(s).ids, data.table(s).labels.tolist(), data.table(s).groups) for s in ("train", "val",
                                                                                                  "test")}


# --- every datamodule's files, re-saved by a spreadsheet ----------------------------------------------------------

@pytest.mark.parametrize("name", ["isic2016", "isic2017", "isic2018_task3", "isic2019", "isic2020", "isic2024",
                                  "ham10000", "derm7pt", "pad_ufes20"])
def test_every_datamodule_reads_its_files_resaved_by_a_spreadsheet(name, synthetic, copy_of):
    root = copy_of(name)
    assert resave_every_csv(root)
    resaved, clean = make(name, root), make(name, synthetic(name))
    assert tables(resaved) == tables(clean)  # ids without their spaces: every image is found
    assert resaved.metadata("test").equals(clean.metadata("test"))


def test_trailing_spaces_in_a_truth_are_read_not_reported_missing(copy_of):
    root = copy_of("isic2017")
    truth = root / "ISIC-2017_Training_Part3_GroundTruth.csv"
    lines = truth.read_text().splitlines()
    truth.write_text("\n".join([lines[0], *(f"{line.split(',')[0]} ,{line.split(',', 1)[1]}" for line in lines[1:])]))
    data = ISIC2017DataModule(str(root), num_workers=0)
    data.setup("fit")
    first = lines[1].split(",")[0]
    assert first in data.table("train").ids + data.table("val").ids
    assert all(path.is_file() for path in data.table("train").paths)


def test_isic2020_duplicates_list_with_spaces_and_bom(tmp_path):
    path = tmp_path / "ISIC_2020_Training_Duplicates.csv"
    path.write_bytes(spreadsheet("image_name_1,image_name_2\nISIC_0000001,ISIC_0000002\n"))
    assert read_duplicate_pairs(path) == [("ISIC_0000001", "ISIC_0000002")]


# --- Harvard Dataverse's .tab ---------------------------------------------------------------------------------

def to_dataverse_tab(csv_path) -> None:
    """The archival form Dataverse serves: tab-separated, text quoted, under ``.tab``; the ``.csv`` removed."""
    frame = pd.read_csv(csv_path, dtype={"age": float})
    frame.to_csv(csv_path.with_suffix(".tab"), sep="\t", index=False, quoting=csv.QUOTE_NONNUMERIC)
    csv_path.unlink()


def test_ham10000_metadata_as_dataverse_serves_it(synthetic, tmp_path, caplog):
    root = tmp_path / "ham10000"
    shutil.copytree(synthetic("ham10000"), root)
    to_dataverse_tab(root / "HAM10000_metadata.csv")
    assert '"ISIC_' in (root / "HAM10000_metadata.tab").read_text()
    clean = HAM10000DataModule(str(synthetic("ham10000")), split="kfold", n_folds=3, image_size=32, num_workers=0)
    data = HAM10000DataModule(str(root), split="kfold", n_folds=3, image_size=32, num_workers=0)
    with caplog.at_level(logging.INFO):
        data.setup("fit")
    assert "HAM10000_metadata.tab" in caplog.text and "Dataverse" in caplog.text
    assert tables(data) == tables(clean)
    assert data.table("pool").source.name == "HAM10000_metadata.tab"
    assert data.metadata("train").equals(clean.metadata("train"))


def test_truth_as_dataverse_tab_is_found_beside_the_csv_name(synthetic, tmp_path):
    shutil.copy(synthetic("ham10000") / "HAM10000_metadata.csv", tmp_path / "truth.csv")
    clean = read_truth(tmp_path / "truth.csv")
    to_dataverse_tab(tmp_path / "truth.csv")
    truth = read_truth(tmp_path / "truth.csv")
    assert truth.path.name == "truth.tab" and truth.layout == "ham10000"
    assert truth.labels.equals(clean.labels) and truth.groups == clean.groups


def test_missing_file_names_both_names(tmp_path):
    with pytest.raises(DataError, match="'.*HAM10000_metadata.csv' does not exist \\(nor 'HAM10000_metadata.tab'\\)"):
        read_table(tmp_path / "HAM10000_metadata.csv", ("image_id",))


# --- refused, naming the file and the row ---------------------------------------------------------------------

def test_european_export_is_refused_naming_file_and_row(broken_root):
    truth = broken_root / "ISIC-2017_Training_Part3_GroundTruth.csv"
    frame = pd.read_csv(truth, dtype={"image_id": str})
    frame.to_csv(truth, sep=";", decimal=",", index=False)
    with pytest.raises(DataError) as refused:
        ISIC2017DataModule(str(broken_root), num_workers=0).setup("fit")
    message = str(refused.value)
    assert truth.name in message and "row 1 is separated by ';'" in message
    assert f"row 2 writes the number '{frame.melanoma.iloc[0]:.1f}'".replace(".", ",") in message
    assert "CSV UTF-8" in message and "sep=';', decimal=','" in message


def test_tab_separated_export_with_decimal_commas_is_refused(tmp_path):
    path = tmp_path / "metadata.csv"
    path.write_text("image_id\tage\nISIC_0000000\t45,0\n")
    with pytest.raises(DataError, match="metadata.csv' row 2 column 'age' writes the number '45,0' with a decimal"):
        read_table(path, ("image_id",))


def test_other_encodings_are_refused_naming_the_row(tmp_path):
    path = tmp_path / "metadata.csv"
    path.write_bytes("image_id,localization\nISIC_0000000,back\nISIC_0000001,pied gauche é\n".encode("cp1252"))
    with pytest.raises(DataError, match="metadata.csv' is not UTF-8 text: row 3 .*'CSV UTF-8"):
        read_table(path, ("image_id",))
    path.write_bytes("image_id\nISIC_0000000\n".encode("utf-16"))
    with pytest.raises(DataError, match="UTF-16"):
        read_table(path, ("image_id",))


def test_spaces_that_would_hide_an_error_are_refused(tmp_path):
    path = tmp_path / "truth.csv"
    path.write_text("image_id,melanoma\nISIC_0000000,0.0\nISIC_0000001,1.0\nISIC_0000000 ,1.0\n")
    with pytest.raises(DataError, match="ISIC_0000000 on rows 2 and 4, which differ only in the spaces"):
        read_table(path, ("image_id", "melanoma"))
    path.write_text("image_id,melanoma\nISIC_0000000,0.0\n   ,1.0\n")
    with pytest.raises(DataError, match="truth.csv' row 3 has no image_id"):
        read_table(path, ("image_id", "melanoma"))
    path.write_text("image_id,dx,dx \nISIC_0000000,nv,mel\n")
    with pytest.raises(DataError, match="has the column 'dx' twice \\(columns 2 and 3\\)"):
        read_table(path, ("image_id",))


# --- dermlab score: the truth and the submission --------------------------------------------------------------

def write_pair(folder):
    folder.mkdir()
    truth = pd.DataFrame(np.eye(7)[np.arange(len(IDS)) % 7], columns=CATEGORIES)
    truth.insert(0, "image", IDS)
    raw = np.random.default_rng(0).random((len(IDS), 7))
    submission = pd.DataFrame((raw / raw.sum(1, keepdims=True)).round(6), columns=CATEGORIES)
    submission.insert(0, "image", IDS)
    truth.to_csv(folder / "truth.csv", index=False)
    submission.to_csv(folder / "pred.csv", index=False)
    return folder / "truth.csv", folder / "pred.csv"


def official(truth, prediction):
    try:
        return ClassificationScore.from_file(truth, prediction, ClassificationMetric.AUC)
    except ScoreError:
        return None


def test_truth_resaved_by_a_spreadsheet_scores_the_same(tmp_path):
    truth, pred = write_pair(tmp_path / "clean")
    clean = score(truth, pred)
    truth.write_bytes(spreadsheet(truth.read_text()))
    assert score(truth, pred) == clean


def test_submission_with_bom_and_crlf_scores_the_same_as_the_official_scorer(tmp_path):
    truth, pred = write_pair(tmp_path / "clean")
    clean = score(truth, pred)
    pred.write_bytes(("\ufeff" + pred.read_text().replace("\n", "\r\n")).encode("utf-8"))
    assert official(truth, pred) is not None and score(truth, pred) == clean


@pytest.mark.parametrize("edit, named", [
    (lambda text: text.replace("ISIC_0035061,", "ISIC_0035061 ,"), "spaces around the image id in row 3 "
                                                                   "('ISIC_0035061 ')"),
    (lambda text: text.replace(",MEL,", ", MEL,"), "spaces around the column name(s) ' MEL'"),
    (lambda text: text.replace(",", "\t"), "is tab-separated"),
    (lambda text: text.replace(",", ";").replace(".", ","), "row 1 is separated by ';', and row 2 writes the number"),
])
def test_submission_spaces_and_other_separators_are_refused_as_the_official_scorer(edit, named, tmp_path):
    truth, pred = write_pair(tmp_path / "clean")
    pred.write_text(edit(pred.read_text()))
    assert official(truth, pred) is None  # the official scorer refuses it too, less clearly
    with pytest.raises(DataError, match="pred.csv") as refused:
        score(truth, pred)
    assert named in str(refused.value)


# --- the predictions file, re-saved -----------------------------------------------------------------------------

def test_predictions_file_resaved_by_a_spreadsheet_reads_the_same(tmp_path):
    path = write_predictions(tmp_path / "predictions_test.csv", ["ISIC_0000000", "ISIC_0000001"], [0, 1],
                             [[0.75, 0.25], [0.125, 0.875]], ["benign", "malignant"], [1, 1])
    clean = read_predictions(path)
    path.write_bytes(spreadsheet(path.read_text()))
    assert read_predictions(path, ["benign", "malignant"]).equals(clean)


def test_the_command_shows_which_file_it_read(tmp_path, capsys):
    """The log line naming the ``.tab`` read in place of the ``.csv`` reaches the user of ``dermlab`` (the suite's
    INFO lines are printed like Lightning's)."""
    from dermlab.cli import main

    truth, pred = write_pair(tmp_path / "pair")
    to_dataverse_tab(truth)
    main(["score", "--truth", str(truth), "--pred", str(pred)])
    err = capsys.readouterr().err
    assert "INFO: 'truth.csv' is absent: reading '" in err and "the tab-separated form Harvard Dataverse" in err
