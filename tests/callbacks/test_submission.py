"""``callbacks/submission.py``: every submission the suite writes is checked with the official scorer's rules."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from callbacks.submission import SubmissionWriter
from dermlab.errors import DataError


def writer_run(tmp_path, probabilities, listed):
    """SubmissionWriter on a stand-in trainer: predicted ``image_id`` / ``probabilities``, the split's table."""
    ids = [f"ISIC_{i:07d}" for i in range(len(probabilities))]
    datamodule = SimpleNamespace(predict_split="test", tables={"test": SimpleNamespace(ids=listed or ids)},
                                 submission=lambda i, p: pd.DataFrame({"image": i, "MEL": p[:, 0], "NV": p[:, 1]}))
    trainer = SimpleNamespace(datamodule=datamodule, default_root_dir=str(tmp_path), is_global_zero=True)
    batch = {"image_id": ids, "probabilities": torch.tensor(probabilities, dtype=torch.float32)}
    SubmissionWriter().write_on_epoch_end(trainer, None, [batch], [])


def test_every_written_submission_is_checked(tmp_path):
    writer_run(tmp_path, [[0.2, 0.8], [0.6, 0.4]], None)
    assert pd.read_csv(tmp_path / "submission_test.csv").shape == (2, 3)
    with pytest.raises(DataError, match=r"empty value\(s\) in row 3 \(ISIC_0000001\)"):  # a diverged model's NaN
        writer_run(tmp_path, [[0.2, 0.8], [float("nan"), 0.4]], None)
    with pytest.raises(DataError, match=r"no row for 1 image\(s\) of the truth: ISIC_0000009"):
        writer_run(tmp_path, [[0.2, 0.8], [0.6, 0.4]], ["ISIC_0000000", "ISIC_0000001", "ISIC_0000009"])
