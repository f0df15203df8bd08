"""The arl paper's patch pipelines (experiments/base/augment), shared by the datamodule and learning tests."""

from __future__ import annotations

from tests.conftest import REPO

ARL = str(REPO / "experiments" / "base" / "augment" / "arl.yaml")

ARL_EVAL = str(REPO / "experiments" / "base" / "augment" / "arl_eval.yaml")
