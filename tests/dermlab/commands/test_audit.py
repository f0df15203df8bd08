"""``dermlab audit`` (``dermlab/commands/audit.py``): the JSON report, exit 2 on a leak, and what steers a run."""

from __future__ import annotations

import json

import pytest

from datamodules import ISIC2017DataModule
from tests.conftest import REPO, derm7pt_release
from tests.helpers.leakage import _plant, needs_shared


@pytest.mark.real_data
@needs_shared
def test_spc_and_weighting_configs_steer_on_nothing_from_test(ham_root, tmp_path):
    """The resolved configs: nothing chooses a checkpoint or drives the learning rate on test images."""
    from dermlab.commands.audit import selection
    from dermlab.commands.trainer import build_cli

    derm7pt_release(tmp_path)
    experiments = REPO / "experiments"
    runs = {
        "spc": ["-c", str(experiments / "patch" / "base.yaml"), "-c", str(experiments / "patch" / "spc.yaml"),
                "--data.init_args.root", str(tmp_path)],
        "weighting": ["-c", str(experiments / "weighting" / "base.yaml"), "--data.init_args.root", str(ham_root)],
    }
    for name, args in runs.items():
        cli = build_cli(args + ["--model.init_args.backbone", "test_resnet" if name == "spc" else "vgg11",
                                "--run.wandb", "disabled", "--trainer.logger", "false",
                                "--trainer.default_root_dir", str(tmp_path / name)], run=False)
        steering = selection(cli.config, len(cli.datamodule.table("val")))
        assert steering == {"val_images": 0, "monitors": []}, (name, steering)
        assert cli.datamodule.val_dataloader() == []  # Lightning then runs no validation loop at all
        assert not set(cli.datamodule.table("train").ids) & set(cli.datamodule.table("test").ids)
    cli = build_cli(["-c", str(experiments / "patch" / "base.yaml"), "--data.init_args.root", str(ham_root),
                     "--model.init_args.backbone", "test_resnet", "--run.wandb", "disabled", "--trainer.logger",
                     "false"], run=False)  # HAM10000: the checkpoint and plateau follow the validation part only
    assert selection(cli.config, len(cli.datamodule.table("val"))) == {
        "val_images": 2505, "monitors": ["ModelCheckpoint: val/balanced_accuracy",
                                         "ReduceLROnPlateau: val/balanced_accuracy"]}
    assert not set(cli.datamodule.table("val").ids) & set(cli.datamodule.table("test").ids)


def test_audit_command_prints_json_and_exits_2_on_a_leak(broken_root, capsys):
    from dermlab.commands.audit import main

    args = ["-c", str(REPO / "experiments" / "demo_synthetic.yaml"), "--data.init_args.root", str(broken_root),
            "--model.init_args.backbone", "test_resnet"]
    main(args)
    clean = json.loads(capsys.readouterr().out)
    assert clean["leak"] is False and clean["splits"] == {"train": 24, "val": 8, "test": 12, "extra": None}
    assert clean["selection"]["val_images"] == 8 and clean["selection"]["monitors"] == ["ModelCheckpoint: val/auc"]
    data = ISIC2017DataModule(str(broken_root))
    val_id, test_id = data.table("val").ids[0], data.table("test").ids[0]
    _plant(broken_root, val_id, test_id, "ISIC-2017_Validation_Data", "ISIC-2017_Test_v2_Data")
    with pytest.raises(SystemExit) as leaving:
        main(args)
    assert leaving.value.code == 2
    leaked = json.loads(capsys.readouterr().out)
    assert leaked["duplicate_images"] == 1 and leaked["pairs"] == [[val_id, test_id]]
    with pytest.raises(SystemExit) as leaving:  # an unreadable config is exit 1 and names the bad key, not a leak
        main([*args, "--data.init_args.batch_sise", "3"])
    assert leaving.value.code == 1 and "batch_sise" in capsys.readouterr().err
    with pytest.raises(SystemExit) as leaving:
        main([*args, "--data.init_args.duplicates_csv", str(broken_root / "no_such.csv")])
    assert leaving.value.code == 1 and "no_such.csv' does not exist" in capsys.readouterr().err
