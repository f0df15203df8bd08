"""The patient-metadata encoding (datamodules/metadata.py), checked by hand on a tiny table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from datamodules.metadata import MetadataEncoding
from dermlab.errors import DataError
from dermlab.files.metadata import patient_fields, patient_rows, subgroups_of

FIELDS = ["age", "sex", "localization"]


def tiny_training_split() -> pd.DataFrame:
    """Ages 20, 40 and one missing (mean 30, population std 10); a missing sex; two sites."""
    return patient_fields(["a", "b", "c"], "tiny.csv", age=["20", 40, ""], sex=["male", "female", "unknown"],
                          localization=["back", "face", "back"])


def test_fields_read_as_years_and_text_with_missing_values() -> None:
    frame = tiny_training_split()
    assert frame["age"].tolist()[:2] == [20.0, 40.0] and math.isnan(frame["age"].iloc[2])
    assert frame["sex"].tolist() == ["male", "female", "unknown"]
    assert subgroups_of(frame)["age_band"].tolist() == ["0-29", "30-44", "unknown"]
    with pytest.raises(DataError, match=r"'tiny.csv' row 4 \(c\): age 'old' is not a number"):
        patient_fields(["a", "b", "c"], "tiny.csv", age=[1, 2, "old"])
    assert all(math.isnan(a) for a in patient_fields(["a", "b", "c"], "x.csv", age=["-", "?", " n/a "])["age"])
    rows = patient_rows(frame, ["b", "zz"])  # an image the file lacks: missing in every field
    assert rows["sex"].tolist() == ["female", "unknown"] and math.isnan(rows["age"].iloc[1])


def test_encoding_by_hand() -> None:
    encoding = MetadataEncoding.fit(tiny_training_split(), FIELDS, "tiny")
    assert encoding.columns == ["age", "age=missing", "sex=female", "sex=male", "sex=missing",
                                "localization=back", "localization=face", "localization=missing"]
    assert (encoding.age_mean, encoding.age_std) == (30.0, 10.0)
    vectors, unseen = encoding.encode(tiny_training_split())
    np.testing.assert_array_equal(vectors, [[-1, 0, 0, 1, 0, 1, 0, 0],   # 20 y: (20 - 30) / 10
                                            [1, 0, 1, 0, 0, 0, 1, 0],    # 40 y
                                            [0, 1, 0, 0, 1, 1, 0, 0]])   # age and sex missing: their own columns
    assert vectors.dtype == np.float32 and unseen == {}
    layout = {part.name: part for part in encoding.layout}
    assert (layout["sex"].start, layout["sex"].stop, layout["sex"].missing) == (2, 5, (0.0, 0.0, 1.0))
    assert layout["age"].missing == (0.0, 1.0)


def test_unseen_category_at_test_time_is_missing_and_counted() -> None:
    encoding = MetadataEncoding.fit(tiny_training_split(), FIELDS, "tiny")
    test = patient_fields(["t1", "t2", "t3"], "test.csv", age=[50, 30, 30], sex=["female", "other", "other"],
                          localization=["palms/soles", "unknown", "face"])
    vectors, unseen = encoding.encode(test)
    np.testing.assert_array_equal(vectors, [[2, 0, 1, 0, 0, 0, 0, 1],
                                            [0, 0, 0, 0, 1, 0, 0, 1],
                                            [0, 0, 0, 0, 1, 0, 1, 0]])
    assert {k: dict(v) for k, v in unseen.items()} == {"sex": {"other": 2}, "localization": {"palms/soles": 1}}


def test_text_is_matched_ignoring_case_and_extra_spaces() -> None:
    """A spreadsheet's ``Male`` or ``lower  Extremity`` is the data set's ``male`` and ``lower extremity``."""
    training = patient_fields(["a", "b"], "t.csv", sex=["male", "Female"], localization=["lower extremity", "back"])
    encoding = MetadataEncoding.fit(training, ["sex", "localization"], "tiny")
    assert encoding.categories == {"sex": ("female", "male"), "localization": ("back", "lower extremity")}
    given = patient_fields(["x"], "x.csv", sex=["MALE "], localization=["lower  Extremity"])
    vectors, unseen = encoding.encode(given)
    np.testing.assert_array_equal(vectors, [[0, 1, 0, 0, 1, 0]])
    assert unseen == {}


def test_fitted_on_the_training_split_only() -> None:
    """A category only a later split has gets no column: the encoding is the training split's."""
    encoding = MetadataEncoding.fit(tiny_training_split(), ["localization"], "tiny")
    assert encoding.categories == {"localization": ("back", "face")}


def test_absent_or_unknown_fields_are_refused_by_name() -> None:
    frame = tiny_training_split().drop(columns="localization")
    with pytest.raises(DataError,
                       match=r"'localization' is not in data set isic2017 \('/x'\): its files give age, sex"):
        MetadataEncoding.fit(frame, FIELDS, "isic2017 ('/x')")
    with pytest.raises(DataError, match="'weight' is none of them"):
        MetadataEncoding.fit(frame, ["age", "weight"], "tiny")
    empty = patient_fields(["a"], "x.csv", age=[""], sex=["male"])
    with pytest.raises(DataError, match="'age' is missing for every training image"):
        MetadataEncoding.fit(empty, ["age", "sex"], "tiny")


def test_json_round_trip() -> None:
    encoding = MetadataEncoding.fit(tiny_training_split(), FIELDS, "tiny")
    assert MetadataEncoding.from_json(encoding.to_json()) == encoding
    with pytest.raises(DataError, match="malformed"):
        MetadataEncoding.from_json({"fields": ["sex"]})


@pytest.mark.real_data
def test_the_real_ham10000_metadata_encodes_as_pandas_counts_it(ham_root):
    """The released HAM10000_metadata.csv (10,015 rows, some ages empty, some sexes and sites 'unknown'): the
    encoding's statistics are those of the training split's rows, counted here with pandas alone."""
    from datamodules import HAM10000DataModule

    data = HAM10000DataModule(str(ham_root), metadata_fields=FIELDS)
    encoding = data.metadata_encoding
    raw = pd.read_csv(ham_root / "HAM10000_metadata.csv").set_index("image_id").loc[data.table("train").ids]
    assert encoding.age_mean == pytest.approx(raw["age"].mean())
    assert encoding.age_std == pytest.approx(raw["age"].std(ddof=0))
    assert encoding.categories["localization"] == tuple(sorted(set(raw["localization"]) - {"unknown"}))
    assert encoding.categories["sex"] == ("female", "male")
    vectors, unseen = encoding.encode(data.split_patient_metadata("train"))
    columns = encoding.columns
    assert vectors[:, columns.index("age=missing")].sum() == raw["age"].isna().sum() > 0
    assert vectors[:, columns.index("sex=missing")].sum() == (raw["sex"] == "unknown").sum() > 0
    assert vectors[:, columns.index("localization=missing")].sum() == (raw["localization"] == "unknown").sum() > 0
    for name in ("sex", "localization"):  # exactly one column set per text field
        block = [k for k, c in enumerate(columns) if c.startswith(f"{name}=")]
        assert (vectors[:, block].sum(1) == 1).all()
    assert unseen == {}
