"""dds paper: the deeply supervised classifier, its layer selection and the two-stage pipeline."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from dermlab.commands.trainer import build_cli
from lightning_modules import DeeplySupervisedClassifier
from lightning_modules.nets.backbone import create_backbone
from tests.conftest import tiny_args
from tests.helpers.dds import TAP


def test_paper_layer_names_and_two_branches():
    module = DeeplySupervisedClassifier(aux_layers=["L24", "features.28"], backbone="vgg13_bn", num_classes=2)
    _, aux = module.net(torch.randn(1, 3, 64, 64), with_aux=True)
    assert list(aux) == ["features.24", "features.28"]
    assert module.net.heads["features_24"][-1].in_features == 512


def test_auto_needs_an_object_size():
    with pytest.raises(ValueError, match="object_size"):
        DeeplySupervisedClassifier(aux_layers="auto", backbone="test_resnet", num_classes=2)


def ds_args(root, run, *extra):
    return tiny_args(root, run, "--model.class_path", "lightning_modules.DeeplySupervisedClassifier",
                     "--model.init_args.lerf_cache", str(run.parent / "lerf"),
                     "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
                     "--trainer.limit_val_batches", "1", "--model.init_args.lerf_inits", "2",
                     "--model.init_args.objsize_samples", "8", *extra)


def test_two_stage_pipeline_on_a_tiny_set(isic2017_root, tmp_path):
    """Stage 1 (no DS) → Obj from its CAMs → argmin |Obj − LERF_h| → stage 2 trains with the aux loss."""
    stage1 = build_cli(["fit", *ds_args(isic2017_root, tmp_path / "s1", "--model.init_args.aux_layers", "null")])
    checkpoint = stage1.trainer.checkpoint_callback.best_model_path
    assert not stage1.model.net.layers
    run = tmp_path / "s2"
    stage2 = build_cli(["fit", *ds_args(isic2017_root, run, "--model.init_args.aux_layers", "auto",
                                        "--model.init_args.object_size", checkpoint)])
    selection = json.loads((run / "layer_selection.json").read_text())
    lerfs, obj = selection["lerf"], selection["object_size"]
    assert 1 <= obj <= 32 and selection["object_size_from"] == checkpoint
    assert selection["layer"] == min(lerfs, key=lambda h: abs(obj - lerfs[h]))
    assert stage2.model.net.layers == [selection["layer"]]
    # the checkpoint names the chosen layer, so the model rebuilds without re-selecting
    saved = torch.load(stage2.trainer.checkpoint_callback.best_model_path, weights_only=False)
    assert saved["hyper_parameters"]["aux_layers"] == [selection["paper_name"]]
    assert any(k.startswith("net.heads.") for k in saved["state_dict"])
    reloaded = DeeplySupervisedClassifier.load_from_checkpoint(stage2.trainer.checkpoint_callback.best_model_path)
    assert reloaded.net.layers == [selection["layer"]]
    tested = stage2.trainer.test(stage2.model, datamodule=stage2.datamodule, ckpt_path="best", verbose=False)[0]
    assert tested["test/object_size"] == pytest.approx(obj)
    assert tested["test/aux_lerf"] == pytest.approx(lerfs[selection["layer"]])
    assert (run / "plots" / "test_branch_cams.png").is_file()
    # a crashed stage 2 resumes from last.ckpt: the recorded choice is reused, the branch weights load
    resumed = build_cli(["fit", *ds_args(isic2017_root, run, "--model.init_args.aux_layers", "auto",
                                         "--model.init_args.object_size", checkpoint, "--trainer.max_epochs", "2"),
                         "--ckpt_path", "last"])
    assert resumed.trainer.current_epoch == 2 and resumed.model.net.layers == [selection["layer"]]
    # stage 1's own object size agrees with what `dermlab objsize` measures on the same checkpoint
    from dermlab.commands.objsize import main as objsize

    measured = objsize([*tiny_args(isic2017_root, tmp_path / "o"), "--ckpt_path", checkpoint, "--samples", "8",
                        "--out", str(tmp_path / "obj"), "--model.class_path",
                        "lightning_modules.DeeplySupervisedClassifier", "--model.init_args.aux_layers", "null"])
    assert measured == pytest.approx(obj, rel=1e-4)
    assert (tmp_path / "obj" / "objsize_panels.png").is_file()
    assert json.loads((tmp_path / "obj" / "objsize.json").read_text())["images"] == 8


def test_aux_loss_is_added_to_the_main_loss(isic2017_root, tmp_path):
    cli = build_cli(ds_args(isic2017_root, tmp_path / "r", "--model.init_args.aux_layers", f"[{TAP}]"), run=False)
    module = cli.model
    batch = {"image": torch.randn(4, 3, 32, 32), "label": torch.tensor([0, 1, 0, 1])}
    module.log = module.log_dict = lambda *a, **k: None
    torch.manual_seed(0)
    module.eval()  # no dropout / BN updates: the three losses see the same network
    loss = module.training_step(batch, 0)
    main, aux = module.net(batch["image"], with_aux=True)
    expected = F.cross_entropy(main, batch["label"]) + F.cross_entropy(aux[TAP], batch["label"])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_weights_from_an_earlier_run_checkpoint(isic2017_root, tmp_path):
    first = build_cli(["fit", *ds_args(isic2017_root, tmp_path / "a", "--model.init_args.aux_layers", "null")])
    path = first.trainer.checkpoint_callback.best_model_path
    net = create_backbone("test_resnet", 5, path)  # another number of classes: the classifier is re-initialised
    source = first.model.net.base.state_dict()
    for name, value in net.state_dict().items():
        if not name.startswith("fc."):
            assert torch.equal(value, source[name]), name
    assert net.fc.out_features == 5
    with pytest.raises(Exception, match="another"):
        create_backbone("resnet18", 2, path)
