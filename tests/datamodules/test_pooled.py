"""``datamodules/pooled.py``: the patch paper's diagnosis-guided loss weights (§II-F) on the real HAM10000 metadata."""

from __future__ import annotations

import numpy as np
import pytest

from datamodules.datasets.pooled import HAM_CLASSES, diagnosis_weights
from tests.helpers.real_ham import real_ham


@pytest.mark.real_data
def test_diagnosis_guided_weights_on_the_real_metadata():
    table = real_ham()
    labels = np.array([HAM_CLASSES.index(d.upper()) for d in table.dx])
    factors = {"consensus": 1.0, "follow_up": 2.0, "confocal": 3.0, "histo": 4.0}
    benign_only = diagnosis_weights(labels, table.dx_type.tolist(), factors)
    everyone = diagnosis_weights(labels, table.dx_type.tolist(), factors, on="all")
    # by hand from the crosstab: malignant MEL/BCC/AKIEC (1954, all histo) stay 1 unless `all`
    assert benign_only.sum() == pytest.approx(1954 * 1 + 503 * 1 + 3704 * 2 + 2498 * 4 + 69 * 3 + 264 * 1 + 766 * 4
                                              + 60 * 1 + 55 * 4 + 75 * 1 + 67 * 4)
    assert everyone.sum() == pytest.approx(benign_only.sum() + 1954 * 3)
    assert set(benign_only[labels == 0]) == {1.0} and set(everyone[labels == 0]) == {4.0}
