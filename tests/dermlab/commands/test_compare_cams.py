"""``dermlab compare-cams`` (``dermlab/commands/compare_cams.py``): two models' CAMs side by side."""

from __future__ import annotations


def test_compare_cams_puts_two_models_side_by_side(isic2017_root, tmp_path, capsys):
    import json

    from dermlab.commands.compare_cams import main as compare_cams
    from dermlab.commands.trainer import build_cli
    from tests.conftest import tiny_args

    checkpoints = []
    for backbone in ("test_resnet", "arl_cnn14"):
        run = tmp_path / backbone
        cli = build_cli(["fit", *tiny_args(isic2017_root, run, "--model.init_args.backbone", backbone,
                                           "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
                                           "--trainer.limit_val_batches", "1")])
        checkpoints.append(cli.trainer.checkpoint_callback.best_model_path)
    out = tmp_path / "cams.png"
    compare_cams([*tiny_args(isic2017_root, tmp_path / "c"), "--ckpt", checkpoints[0], "--ckpt", checkpoints[1],
                  "--labels", "ResNet", "ARL", "--n", "4", "--out", str(out)])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out.is_file() and list(printed["predicted"]) == ["ResNet", "ARL"]
    assert all(len(v) == 4 for v in printed["predicted"].values())
