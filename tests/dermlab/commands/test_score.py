"""``dermlab score`` (``dermlab/commands/score.py``): the JSON it prints, its refusals and its intervals."""

from __future__ import annotations

import json

import pytest

from dermlab.cli import main
from tests.helpers.bootstrap import write_isic2016
from tests.helpers.scoring import random_ids


def test_the_command_prints_intervals_and_refuses_them_for_masks(tmp_path, capsys):
    truth, pred = write_isic2016(tmp_path, 40)
    main(["score", "--truth", str(truth), "--pred", str(pred), "--bootstrap", "50", "--seed", "1", "--level", "0.9"])
    printed = json.loads(capsys.readouterr().out)
    assert len(printed["per_category"]["malignant"]["pauc_tpr80_ci90"]) == 2
    assert printed["bootstrap"] == {"resamples": 50, "seed": 1, "level": 0.9,
                                    "method": "percentile, images resampled within each true class"}
    with pytest.raises(SystemExit):
        main(["score", "--seg", str(tmp_path), str(tmp_path), "--bootstrap", "10"])


def test_cli_prints_json_and_rejects_missing_rows(tmp_path, capsys):
    ids = random_ids(10)
    (tmp_path / "gt.csv").write_text("image_id,melanoma,seborrheic_keratosis\n" +
                                     "".join(f"{i},{float(k % 2)},0.0\n" for k, i in enumerate(ids)))
    (tmp_path / "pred.csv").write_text("image_id,melanoma,seborrheic_keratosis\n" +
                                       "".join(f"{i},0.3,0.1\n" for i in ids[:-1]))
    with pytest.raises(SystemExit):
        main(["score", "--truth", str(tmp_path / "gt.csv"), "--pred", str(tmp_path / "pred.csv")])
    assert "no row for 1 image(s) of the truth: ISIC_0000009" in capsys.readouterr().err
    # the official scorer refuses a submission without every category column (issue #18, case 7)
    (tmp_path / "pred.csv").write_text("image_id,melanoma\n" + "".join(f"{i},0.3\n" for i in ids))
    with pytest.raises(SystemExit):
        main(["score", "--truth", str(tmp_path / "gt.csv"), "--pred", str(tmp_path / "pred.csv")])
    assert "lacks column(s) seborrheic_keratosis" in capsys.readouterr().err
    (tmp_path / "pred.csv").write_text("image_id,melanoma,seborrheic_keratosis\n" +
                                       "".join(f"{i},0.3,0.5\n" for i in ids))
    main(["score", "--truth", str(tmp_path / "gt.csv"), "--pred", str(tmp_path / "pred.csv"),
          "--categories", "melanoma"])
    result = json.loads(capsys.readouterr().out)
    assert list(result["per_category"]) == ["melanoma"] and result["macro"]["auc"] == 0.5
