"""``dermlab cbam-maps`` (``dermlab/commands/cbam_maps.py``): the weighting paper's Fig. 3-4 from two runs."""

from __future__ import annotations

from tests.conftest import REPO


def test_cbam_maps_of_a_flat_and_a_hierarchical_run(synthetic, tmp_path):
    """Fig. 3–4: both models trained for one epoch on tiny synthetic HAM10000, then `dermlab cbam-maps`."""
    from dermlab.commands.cbam_maps import main as cbam_maps
    from dermlab.commands.trainer import build_cli

    root = str(synthetic("ham10000"))
    common = ["--data.init_args.root", root, "--data.init_args.split", "weighting", "--data.init_args.image_size", "32",
              "--data.init_args.batch_size", "4", "--data.init_args.num_workers", "0",
              "--model.init_args.backbone", "test_resnet", "--trainer.max_epochs", "1", "--trainer.accelerator", "cpu",
              "--run.wandb", "disabled"]
    runs = []
    base = str(REPO / "experiments/weighting/base.yaml")
    hierarchical = str(REPO / "experiments/weighting/hierarchical.yaml")
    for name, configs in (("flat", ["-c", base]),
                          ("hierarchical", ["-c", base, "-c", hierarchical, "--model.init_args.lstm_hidden", "16"])):
        cli = build_cli(["fit", *configs, *common, "--trainer.default_root_dir", str(tmp_path / name)])
        runs.append(cli.trainer.checkpoint_callback.best_model_path or cli.trainer.checkpoint_callback.last_model_path)
        assert runs[-1]
    out = cbam_maps(["-c", base, "--run", runs[0], "--run", runs[1], "--labels", "flat", "hier",
                     "--out", str(tmp_path / "maps"), "--data.init_args.root", root,
                     "--data.init_args.split", "weighting", "--data.init_args.image_size", "32",
                     "--data.init_args.num_workers", "0"])
    assert (out / "hardest.png").is_file() and (out / "easiest.png").is_file()
