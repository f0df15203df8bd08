"""W&B offline (the default): the run folder holds the config, the metrics and the plot images."""

from __future__ import annotations

from dermlab.commands.trainer import build_cli
from tests.conftest import tiny_args


def test_offline_run_folder_has_config_metrics_and_media(isic2017_root, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    args = tiny_args(isic2017_root, run, "--trainer.max_epochs", "1", "--run.wandb", "offline",  # the last wins
                     "--run.group", "tiny_table", "--run.job_type", "cell0", "--run.tags", "[demo, isic2017]")
    cli = build_cli(["fit", *args])
    cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)
    import wandb

    wandb.finish()
    # finish() returns once the run is marked done; the service closes the record file on its own time (CI once
    # read only its 7-byte header). teardown() waits for the service to exit, which flushes and closes it.
    wandb.teardown()
    (offline,) = (run / "wandb").glob("offline-run-*")
    images = {p.name.split("_")[0] for p in (offline / "files" / "media" / "images").rglob("*.png")}
    assert {"roc", "confusion", "cams"} <= images  # ROC, confusion matrix, CAM grid as W&B images
    # Offline runs keep config, metrics and run settings in the binary record file that `wandb sync` uploads.
    (records,) = offline.glob("run-*.wandb")
    data = records.read_bytes()
    for expected in (b"test_resnet", b"tiny_table", b"cell0", b"isic2017", b"val/auc", b"test/auc"):
        assert expected in data, expected
