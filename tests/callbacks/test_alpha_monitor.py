"""``callbacks/alpha_monitor.py``: the ARL blocks' α logged and plotted, and the arl paper's layer numbers."""

from __future__ import annotations

import pytest
import timm

from lightning_modules.nets.arl import alphas


def test_the_papers_13th_31st_49th_layers_are_these_arl_cnn50_blocks():
    from callbacks.alpha_monitor import block_of_layer

    blocks = list(alphas(timm.create_model("arl_cnn50")))
    assert [block_of_layer(blocks, n) for n in (13, 31, 49)] == ["layer2.0", "layer3.2", "layer4.2"]
    assert block_of_layer(blocks, 2) == "layer1.0" and block_of_layer(blocks, 50) is None  # 50 = the FC layer


def test_alpha_monitor_logs_every_block_and_plots(isic2017_root, tmp_path):
    from dermlab.commands.trainer import build_cli
    from tests.conftest import tiny_args

    run = tmp_path / "run"
    cli = build_cli(["fit", *tiny_args(isic2017_root, run, "--model.init_args.backbone", "arl_cnn14",
                                       "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "2",
                                       "--trainer.limit_val_batches", "1")])
    (monitor,) = [c for c in cli.trainer.callbacks if type(c).__name__ == "AlphaMonitor"]  # a default callback
    assert list(monitor.history) == ["net.layer1.0", "net.layer2.0", "net.layer3.0", "net.layer4.0"]
    assert all(len(v) == 2 for v in monitor.history.values())
    assert monitor.history["net.layer4.0"][-1] != pytest.approx(0.001, abs=1e-9)  # α is learned, not fixed
    assert "alpha/layer4.0" in cli.trainer.logged_metrics and (run / "plots" / "alpha.png").is_file()
