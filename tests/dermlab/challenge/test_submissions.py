"""``dermlab/challenge/submissions.py``: one submission validator with the official scorer's rules, checked against
``isic-challenge-scoring`` on hand-made CSVs: it accepts and refuses the same files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from isic_challenge_scoring.types import ScoreError

from dermlab.challenge.scoring import score
from dermlab.errors import DataError
from tests.helpers.official_scorer import CATEGORIES, assert_same_scores, official

# --- case 6: the official scorer's rules, both sides ------------------------------------------------------------

IDS = [f"ISIC_{35060 + i:07d}" for i in range(10)]  # holds ISIC_0035068, which the official scorer weighs 0


def good_submission() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    raw = rng.random((len(IDS), 7))
    frame = pd.DataFrame((raw / raw.sum(1, keepdims=True)).round(6), columns=CATEGORIES)
    frame.insert(0, "image", IDS)
    return frame


def text(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False)


def edited(change) -> str:
    frame = good_submission()
    change(frame)
    return text(frame)


def with_row(frame: pd.DataFrame, row: int, column: str, value) -> None:
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value


# name → (the submission's text, what our refusal must name; None where both accept it)
CASES = {
    "as written": (text(good_submission()), None),
    "jpg suffixes": (edited(lambda f: f.__setitem__("image", f.image + ".JPG")), None),
    "CRLF": (text(good_submission()).replace("\n", "\r\n"), None),
    "columns in another order": (text(good_submission()[["image", *CATEGORIES[::-1]]]), None),
    "byte order mark": ("\ufeff" + text(good_submission()), None),
    "an extra image": (text(pd.concat([good_submission(), good_submission().iloc[[0]].assign(image="ISIC_0099999")])),
                       "row 12 (ISIC_0099999)"),
    "a missing image": (text(good_submission().iloc[1:]), "ISIC_0035060"),
    "the zero-weight image missing": (text(good_submission().drop(index=8)), "ISIC_0035068"),
    "Unnamed: 0 from to_csv(index=True)": (good_submission().to_csv(index=True), "'Unnamed: 0' is the row index"),
    "an unknown column": (edited(lambda f: f.__setitem__("SCC", 0.0)), "extra column(s) SCC"),
    "a missing column": (text(good_submission().drop(columns="VASC")), "lacks column(s) VASC"),
    "no image column": (text(good_submission().rename(columns={"image": "image_id"})), "no 'image' column"),
    "a repeated row": (text(pd.concat([good_submission(), good_submission().iloc[[3]]])),
                       "ISIC_0035063 (rows 5, 12)"),
    "a NaN": (edited(lambda f: f.__setitem__("MEL", f.MEL.where(f.index != 2))), "row 4 (ISIC_0035062)"),
    "an empty cell": (edited(lambda f: with_row(f, 5, "NV", "")), "row 7 (ISIC_0035065)"),
    "1.2": (edited(lambda f: with_row(f, 6, "BKL", 1.2)), "row 8 (ISIC_0035066)"),
    "-0.1": (edited(lambda f: with_row(f, 0, "DF", -0.1)), "row 2 (ISIC_0035060)"),
    "a word": (edited(lambda f: with_row(f, 1, "BCC", "high")), "column 'BCC' holds 'high' on row 3"),
    "integers only": (edited(lambda f: f.__setitem__("AKIEC", (f.AKIEC > 0.2).astype(int))),
                      "column 'AKIEC' holds integers only"),
    "one line break": ("image," + ",".join(CATEGORIES) + "\nISIC_0035060" + ",0.1" * 7, "fewer than two line breaks"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_score_accepts_and_refuses_what_the_official_scorer_does(case, tmp_path):
    truth = pd.DataFrame(np.eye(7)[np.arange(len(IDS)) % 7], columns=CATEGORIES)
    truth.insert(0, "image", IDS)
    truth.to_csv(tmp_path / "truth.csv", index=False)
    submission, named = CASES[case]
    (tmp_path / "pred.csv").write_bytes(submission.encode("utf-8"))
    try:
        theirs = official(tmp_path / "truth.csv", tmp_path / "pred.csv")
    except ScoreError:
        theirs = None
    assert (theirs is None) == (named is not None), f"the official scorer {'refuses' if theirs is None else 'accepts'}"
    if theirs is None:
        with pytest.raises(DataError, match="pred.csv") as refused:
            score(tmp_path / "truth.csv", tmp_path / "pred.csv")
        assert named in str(refused.value)
    else:
        ours = score(tmp_path / "truth.csv", tmp_path / "pred.csv")
        assert ours["images"] == 9  # ISIC_0035068 is not scored
        assert_same_scores(ours, theirs)
