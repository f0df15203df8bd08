"""``dermlab export`` and ``dermlab classify`` (``dermlab/commands/export.py``, ``classify.py``) on every classifier
method: each is trained for two steps on a tiny synthetic twin, tested with the checkpoint it exports, exported with
``--onnx`` and classified again from the package alone.

The package must give the test's probabilities (``predictions_test.csv``) to 1e-5, with ``--tta`` where the run had
test-time views (``arl``'s random patches, D4 averaging); onnxruntime must give PyTorch's to 1e-4 and
:func:`dermlab.load_model`'s ``predict`` what ``classify`` writes. ``classify`` is given the data set's whole folder
(other splits, the ISIC 2017 superpixel images among them), so an image's place in the list differs from its place in
the test split: its random test views must not depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, tiny_args
from tests.helpers.dds import TAP

pytest.importorskip("onnxruntime", reason="the `export` extra is not installed: pip install -e '.[export]'")

STEPS = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
         "--trainer.num_sanity_val_steps", "0", "--trainer.accelerator", "cpu"]
AUGMENT = REPO / "experiments" / "base" / "augment"


@dataclass(frozen=True)
class Method:
    """A method's smallest run: the synthetic twin, the arguments on top of its paper configs (none: the demo's,
    through ``tiny_args``), whether its test had several views per image and whether its network has one CAM."""

    data: str
    args: list[str] = field(default_factory=list)
    configs: tuple[str, ...] = ()
    test_time_views: bool = False
    cams: bool = True

    def arguments(self, root: Path, run: Path) -> list[str]:
        if not self.configs:
            return [*tiny_args(root, run, *STEPS), *self.args]
        configs = [word for config in self.configs for word in ("-c", str(REPO / "experiments" / config))]
        return [*configs, "--data.init_args.root", str(root), "--data.init_args.image_size", "32",
                "--data.init_args.batch_size", "8", "--data.init_args.num_workers", "0",
                "--model.init_args.backbone", "test_resnet", "--model.init_args.pretrained_weights", "null",
                "--trainer.default_root_dir", str(run), "--run.wandb", "disabled", *STEPS, *self.args]


PATCH = ["--model.class_path", "lightning_modules.PatchAttentionClassifier", "--model.init_args.n_crops", "4"]
ORDERED_CROPS = ["--data.init_args.train_crops", "4", "--data.init_args.eval_crops", "4",
                 "--data.init_args.crop_size", "16"]
METHODS = {
    "plain": Method("isic2017"),
    # test-time D4 averaging and a temperature fitted on the validation batch
    "tta_temperature": Method("isic2017", ["--model.init_args.tta", "dihedral", "--model.init_args.calibrate",
                                           "temperature"], test_time_views=True),
    # arl: ARL-CNN14, two random central patches per test image
    "arl": Method("isic2017", ["--model.init_args.backbone", "arl_cnn14", "--data.init_args.eval_views", "2",
                               "--data.init_args.eval_transforms", str(AUGMENT / "arl_eval.yaml")],
                  test_time_views=True),
    "dds": Method("isic2017", ["--model.class_path", "lightning_modules.DeeplySupervisedClassifier",
                               "--model.init_args.aux_layers", f"[{TAP}]"]),
    "patch_attention": Method("isic2017", [*PATCH, "--model.init_args.attention", "end", *ORDERED_CROPS]),
    "patch_gru": Method("isic2017", [*PATCH, "--model.init_args.attention", "none", "--model.init_args.aggregation",
                                     "gru", "--model.init_args.gru_hidden", "16", *ORDERED_CROPS], cams=False),
    # patch's Downsampling: the crop network on whole images (eval_crops: 0)
    "patch_downsampling": Method("isic2017", [*PATCH, "--model.init_args.attention", "none"]),
    "weighting_flat": Method("ham10000", configs=("weighting/base.yaml",)),
    "weighting_hierarchical": Method("ham10000", ["--model.init_args.lstm_hidden", "16"],
                                     ("weighting/base.yaml", "weighting/hierarchical.yaml"), cams=False),
    # isic2018 task 3: an evaluation pipeline whose centre crop (64 px) is not image_size
    "isic2018_triplet": Method("isic2018_task3", [
        "--data.init_args.train_transforms", str(AUGMENT / "isic2018_triplet_cpu.yaml"),
        "--data.init_args.eval_transforms", str(AUGMENT / "isic2018_triplet_cpu_eval.yaml"),
        "--data.init_args.minority_pairs", "0", "--data.init_args.val_size", "3", "--model.init_args.embed_dim", "16",
        "--model.init_args.reference_per_class", "2"],
        ("isic2018/triplet.yaml",)),
}
FAST = ("patch_downsampling",)  # the crop path; the plain classifier is tests/dermlab/commands/test_export.py's


@pytest.mark.parametrize("method", [name if name in FAST else pytest.param(name, marks=pytest.mark.slow)
                                    for name in METHODS])
def test_every_classifier_method_exports_and_classifies_as_it_was_tested(method, synthetic, tmp_path):
    import dermlab
    from dermlab.commands.classify import main as classify
    from dermlab.commands.export import main as export
    from dermlab.commands.trainer import build_cli
    from dermlab.files.predictions import read_predictions

    case = METHODS[method]
    root, run = synthetic(case.data), tmp_path / "run"
    arguments = case.arguments(root, run)
    build_cli(["fit", *arguments])
    build_cli(["test", *arguments, "--ckpt_path", str(run / "checkpoints" / "last.ckpt")])
    package = export([str(run), "--out", str(tmp_path / "package"), "--checkpoint", "last", "--onnx"])
    model = dermlab.load_model(package)
    assert model.has_test_time_views() == case.test_time_views
    if method == "tta_temperature":
        assert model.prediction["tta"] == "dihedral" and model.prediction["temperature"] != 1.0

    tta = ["--tta"] if case.test_time_views else []
    common = ["--model", str(package), str(root), *tta]
    table = classify([*common, "--out", str(tmp_path / "torch.csv"), "--cams", str(tmp_path / "cams")])
    onnx = classify([*common, "--out", str(tmp_path / "onnx.csv"), "--onnx"])
    classes = model.class_names
    probabilities = table[classes].to_numpy()
    stems = [Path(image).stem for image in table.image]

    tested = read_predictions(run / "predictions_test.csv", classes)
    rows = [stems.index(image) for image in tested.image]  # the test split's images among the folder's
    np.testing.assert_allclose(probabilities[rows], tested[classes].to_numpy(), rtol=0, atol=1e-5)
    assert list(onnx.image) == list(table.image)
    np.testing.assert_allclose(onnx[classes].to_numpy(), probabilities, rtol=0, atol=1e-4)
    predicted = model.predict(list(table.image), tta=bool(tta))
    np.testing.assert_allclose(predicted, probabilities, rtol=0, atol=1e-7)
    assert len(list((tmp_path / "cams").glob("*_cam.png"))) == (len(table) if case.cams else 0)
