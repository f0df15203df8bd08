"""``callbacks/curriculum.py``: the SPL / OHEM curricula of the weighting paper (Eq. 9) and their schedule, also
taken by another method from its config alone."""

from __future__ import annotations

import pandas as pd
import torch

from callbacks.curriculum import Curriculum, kept_count
from tests.conftest import REPO


def test_kept_count_schedule():
    assert kept_count(20, 0, 150) == 10  # M/2 at e = 0
    assert [kept_count(20, e, 150) for e in range(75, 150)] == [20] * 75  # everyone from the second half on
    values = [kept_count(20, e, 150) for e in range(150)]
    assert values == sorted(values) and values[30] < 20
    assert kept_count(7, 0, 10) == 4  # ⌈7/2⌉


def test_spl_keeps_the_easiest_and_ohem_the_hardest():
    losses = torch.tensor([0.5, 3.0, 0.1, 2.0, 1.0, 0.7])
    labels = torch.tensor([0, 0, 1, 1, 1, 0])
    spl, ohem = Curriculum("spl"), Curriculum("ohem")
    for callback in (spl, ohem):
        callback.max_epochs, callback.epoch = 10, 0
    assert spl.select(losses, labels).tolist() == [1, 0, 1, 0, 0, 1]  # the 3 lowest: 0.1, 0.5, 0.7
    assert ohem.select(losses, labels).tolist() == [0, 1, 0, 1, 1, 0]  # the 3 highest: 3.0, 2.0, 1.0
    per_class = Curriculum("ohem", per_class=True)
    per_class.max_epochs, per_class.epoch = 10, 0
    assert per_class.select(losses, labels).tolist() == [0, 1, 0, 1, 1, 1]  # ⌈3/2⌉ = 2 hardest of each class
    ohem.epoch = 5
    assert ohem.select(losses, labels).tolist() == [1] * 6


def test_ohem_by_config_alone_with_arl_cnn14(isic2017_root, tmp_path):
    """Any method takes the curriculum from experiments/weighting/ohem.yaml, here ARL-CNN14 (the arl paper)."""
    from dermlab.commands.trainer import build_cli

    cli = build_cli(["fit", "-c", str(REPO / "experiments" / "arl" / "base.yaml"),
                     "-c", str(REPO / "experiments" / "weighting" / "ohem.yaml"),
                     "--data.init_args.root", str(isic2017_root), "--data.init_args.image_size", "32",
                     "--data.init_args.batch_size", "8", "--data.init_args.num_workers", "0",
                     "--data.init_args.train_repeats", "1", "--data.init_args.eval_views", "2",
                     "--model.init_args.backbone", "arl_cnn14", "--trainer.max_epochs", "4",
                     "--trainer.accelerator", "cpu", "--trainer.default_root_dir", str(tmp_path / "run"),
                     "--run.wandb", "disabled"])
    curriculum = [c for c in cli.trainer.callbacks if isinstance(c, Curriculum)]
    assert len(curriculum) == 1 and curriculum[0].mode == "ohem"
    assert cli.trainer.callback_metrics["curriculum/m_full_batch"] == 8  # the last epoch (e = 3 ≥ E/2): all M
    metrics = pd.read_csv(next((tmp_path / "run").rglob("metrics.csv")))
    first = metrics.dropna(subset=["curriculum/m_full_batch"])["curriculum/m_full_batch"].tolist()
    assert first[0] == 4  # e = 0: M/2 of the batch of 8
