"""``dermlab export`` / ``dermlab classify`` / ``dermlab.load_model`` on a classifier trained for a few steps on the
tiny ISIC 2017 twin: the package reproduces the run's own test predictions, ONNX equals PyTorch, the model card
carries the run's test metrics and intervals, and a missing or altered file is refused by name."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from dermlab.errors import DataError
from tests.conftest import REPO
from tests.helpers.model_package import shared_package


@pytest.fixture(scope="session")
def package(isic2017_root, tmp_path_factory):
    """(run folder, package folder): the run tested with last.ckpt, exported with --checkpoint last --onnx (made
    once for all xdist workers; read-only: copy before changing it)."""
    return shared_package(isic2017_root, tmp_path_factory.getbasetemp().parent)


def twin_test_images(isic2017_root):
    return isic2017_root / "ISIC-2017_Test_v2_Data"


def write_jpeg(path, pixels):
    from PIL import Image

    Image.fromarray(pixels).save(path, "JPEG")


def classified(package_dir, inputs, out, *flags):
    from dermlab.commands.classify import main

    main(["--model", str(package_dir), *map(str, inputs), "--out", str(out), *flags])
    return pd.read_csv(out)


def by_stem(table):
    stems = table.image.map(lambda p: os.path.splitext(os.path.basename(p))[0])
    return table.assign(image=stems).set_index("image")


def test_classify_gives_the_runs_own_test_probabilities(package, isic2017_root, tmp_path):
    run, pkg = package
    table = by_stem(classified(pkg, [twin_test_images(isic2017_root)], tmp_path / "c.csv"))
    truth = pd.read_csv(run / "predictions_test.csv").set_index("image")
    assert len(truth) == 12 and set(truth.index) <= set(table.index)  # the test folder also holds superpixel PNGs
    np.testing.assert_allclose(table.loc[truth.index, ["other", "melanoma"]], truth[["other", "melanoma"]], atol=1e-5)
    argmax = np.array(["other", "melanoma"])[table[["other", "melanoma"]].to_numpy().argmax(1)]
    assert list(table.predicted) == list(argmax)
    config = json.loads((pkg / "config.json").read_text())
    assert config["architecture"]["builder"] == "timm" and config["class_names"] == ["other", "melanoma"]
    assert config["preprocessing"]["image_size"] == 32 and config["architecture"]["arguments"]["pretrained_weights"] \
        is None


def test_onnx_equals_pytorch_and_takes_any_batch(package, isic2017_root, tmp_path):
    from lightning_modules.nets.onnx_export import onnx_backend
    from lightning_modules.nets.package import ModelPackage

    _, pkg = package
    torch_table = classified(pkg, [twin_test_images(isic2017_root)], tmp_path / "t.csv")
    onnx_table = classified(pkg, [twin_test_images(isic2017_root)], tmp_path / "o.csv", "--onnx")
    assert list(torch_table.image) == list(onnx_table.image)
    np.testing.assert_allclose(onnx_table[["other", "melanoma"]], torch_table[["other", "melanoma"]], atol=1e-4)
    session, predictor = onnx_backend(pkg / "model.onnx"), ModelPackage.load(pkg).predictor()
    for batch in (1, 5):  # dynamic batch (and views)
        images = torch.rand(batch, 2, 3, 32, 32)
        with torch.inference_mode():
            np.testing.assert_allclose(session(images), predictor(images), atol=1e-5)


def test_the_onnx_file_with_the_serialised_pipeline_needs_no_dermlab(package, isic2017_root, tmp_path):
    import albumentations as A
    import onnxruntime
    from PIL import Image

    _, pkg = package
    config = json.loads((pkg / "config.json").read_text())
    pipeline = A.from_dict(config["preprocessing"]["albumentations"])
    image = twin_test_images(isic2017_root) / "ISIC_0000033.jpg"
    pixels = np.asarray(Image.open(image).convert("RGB"))
    inputs = pipeline(image=pixels)["image"].numpy()[None, None]  # (1 image, 1 view, 3, H, W)
    session = onnxruntime.InferenceSession(str(pkg / "model.onnx"), providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(None, {"images": inputs.astype(np.float32)})
    table = by_stem(classified(pkg, [image], tmp_path / "c.csv"))
    np.testing.assert_allclose(probabilities[0], table.loc["ISIC_0000033", ["other", "melanoma"]].to_numpy(float),
                               atol=1e-4)


def test_load_model_in_a_fresh_interpreter_imports_no_lightning(package, isic2017_root, tmp_path):
    _, pkg = package
    image = twin_test_images(isic2017_root) / "ISIC_0000032.jpg"
    script = (
        "import json, sys, numpy as np, torch, dermlab\n"
        f"model = dermlab.load_model({str(pkg)!r})\n"
        f"p = model.predict([{str(image)!r}, np.zeros((40, 50, 3), np.uint8)])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning', "
        "'torchmetrics'))\n"
        "print(json.dumps({'p': p.tolist(), 'heavy': heavy, 'module': isinstance(model.net, torch.nn.Module), "
        "'classes': model.class_names}))\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["heavy"] == [] and out["module"] and out["classes"] == ["other", "melanoma"]
    table = by_stem(classified(pkg, [image], tmp_path / "one.csv"))
    np.testing.assert_allclose(out["p"][0], table.loc["ISIC_0000032", ["other", "melanoma"]].to_numpy(float), atol=1e-6)
    assert np.isclose(sum(out["p"][1]), 1.0)  # an array goes through the same pipeline


def test_the_model_card_carries_the_runs_test_metrics_and_intervals(package):
    from dermlab.files.model_card import read_card_header
    from dermlab.files.predictions import Predictions
    from dermlab.stats.intervals import auc_interval

    run, pkg = package
    header = read_card_header(pkg / "README.md")
    card = header["dermlab"]["test_metrics"]
    logged = pd.read_csv(sorted(run.glob("csv/version_*/metrics.csv"))[-1])
    tested = logged.dropna(subset=["test/auc"]).iloc[-1]
    for name in ("auc", "accuracy", "sensitivity", "specificity", "average_precision", "ece"):
        assert card[name]["estimate"] == pytest.approx(tested[f"test/{name}"], abs=1e-6), name
    predictions = Predictions.read(run / "predictions_test.csv")
    interval = auc_interval(predictions.target, predictions.probabilities[:, 1])
    assert (card["auc"]["low"], card["auc"]["high"]) == (interval.low, interval.high)
    everyone = pd.read_csv(run / "subgroups_test.csv").iloc[0]
    assert (everyone.attribute, everyone.group) == ("all", "all")
    assert (round(card["auc"]["low"], 4), round(card["auc"]["high"], 4)) == (everyone.auc_low, everyone.auc_high)
    text = (pkg / "README.md").read_text()
    for section in ("## Intended use", "## What it must not be used for", "## Training data", "## Test results",
                    "## Calibration", "## Subgroups", "## Licences"):
        assert section in text
    assert "| other | 18 | 6 | 11 |" in text and "no leak found" in text  # counts per class and split, the audit
    assert header["model-index"][0]["results"][0]["dataset"] == {"name": "isic2017", "type": "isic2017",
                                                                "split": "test"}


@pytest.mark.parametrize("damage, culprit", [
    ("delete model.safetensors", "model.safetensors' is missing"),
    ("alter model.safetensors", "model.safetensors' was altered"),
    ("alter model.onnx", "model.onnx' was altered"),
    ("delete config.json", "config.json' is missing"),
    ("other backbone in config.json", "does not fit the network config.json describes"),
])
def test_a_missing_or_altered_file_is_refused_naming_it(package, tmp_path, damage, culprit):
    import dermlab

    copy = tmp_path / "pkg"
    shutil.copytree(package[1], copy)
    action, name = damage.split(" ", 1)[0], damage.split()[-1]
    if action == "delete":
        (copy / name).unlink()
    elif action == "alter":
        data = bytearray((copy / name).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (copy / name).write_bytes(bytes(data))
    else:
        config = json.loads((copy / "config.json").read_text())
        config["architecture"]["arguments"]["backbone"] = "resnet18"
        (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(DataError, match=culprit):
        dermlab.load_model(copy)


def test_classify_names_and_counts_unreadable_files_and_writes_cams(package, tmp_path, caplog):
    _, pkg = package
    folder = tmp_path / "photos"
    (folder / "inner").mkdir(parents=True)
    write_jpeg(folder / "a.jpg", np.full((40, 30, 3), 120, np.uint8))
    write_jpeg(folder / "inner" / "b.JPG", np.full((20, 20, 3), 200, np.uint8))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (folder / "page.png").write_text("<html>saved web page</html>")
    (folder / "._a.jpg").write_bytes(b"AppleDouble")
    caplog.set_level("INFO")
    table = classified(pkg, [folder], tmp_path / "c.csv", "--cams", str(tmp_path / "cams"))
    assert sorted(os.path.basename(p) for p in table.image) == ["a.jpg", "b.JPG"]
    assert "broken.jpg" in caplog.text and "page.png" in caplog.text
    assert "2 unreadable file(s) skipped" in caplog.text
    assert sorted(p.name for p in (tmp_path / "cams").iterdir()) == ["a_cam.png", "b_cam.png"]
    from PIL import Image

    assert Image.open(tmp_path / "cams" / "a_cam.png").size == (32, 32)  # the network's input, CAM blended on it


def test_classify_refuses_what_it_cannot_use(package, tmp_path):
    _, pkg = package
    with pytest.raises(DataError, match="does not exist"):
        classified(pkg, [tmp_path / "nowhere"], tmp_path / "c.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image file"):
        classified(pkg, [tmp_path / "empty"], tmp_path / "c.csv")
    copy = tmp_path / "pkg"
    shutil.copytree(pkg, copy)
    (copy / "model.onnx").unlink()
    config = json.loads((copy / "config.json").read_text())
    del config["files"]["model.onnx"]
    (copy / "config.json").write_text(json.dumps(config))
    write_jpeg(tmp_path / "x.jpg", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataError, match="export with --onnx"):
        classified(copy, [tmp_path / "x.jpg"], tmp_path / "c.csv", "--onnx")


def test_export_refuses_a_checkpoint_other_than_the_tested_one(package, tmp_path):
    from dermlab.commands.export import main

    run, _ = package
    other = tmp_path / "other.ckpt"
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    name = next(k for k, v in checkpoint["state_dict"].items() if v.is_floating_point())
    checkpoint["state_dict"][name] = checkpoint["state_dict"][name] + 1e-3  # other weights: a later epoch's
    torch.save(checkpoint, other)
    tested_last = r"(?s)holds the test of .*last\.ckpt.*weights differ.*dermlab test -c .*--ckpt_path .*other\.ckpt"
    with pytest.raises(DataError, match=tested_last):
        main([str(run), "--out", str(tmp_path / "p"), "--checkpoint", str(other)])
    untested = tmp_path / "run"
    shutil.copytree(run, untested)
    (untested / "predictions_test.json").unlink()
    with pytest.raises(DataError, match="has no test of its own"):
        main([str(untested), "--out", str(tmp_path / "p"), "--checkpoint", "last"])
    with pytest.raises(DataError, match="not empty; choose another --out or add --force"):
        main([str(run), "--out", str(package[1]), "--checkpoint", "last"])


def test_export_refuses_a_segmenter_naming_it(tmp_path):
    from dermlab.commands.export import main
    from dermlab.files.test_record import write_test_record

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    checkpoint = run / "checkpoints" / "last.ckpt"
    torch.save({"hyper_parameters": {"_class_path": "lightning_modules.LesionSegmenter"}, "state_dict": {}},
               checkpoint)
    (run / "predictions_test.csv").write_text("image,target,a,b,scored\n")
    write_test_record(run, checkpoint, {"image_size": 32}, None)
    with pytest.raises(DataError, match="LesionSegmenter: only classifiers export"):
        main([str(run), "--out", str(tmp_path / "p"), "--checkpoint", "last"])


def test_export_matches_the_weights_not_the_file_so_a_slimmed_grid_checkpoint_exports(package, tmp_path):
    from dermlab.commands.export import main
    from dermlab.files.model_card import read_card_header

    run = tmp_path / "run"
    shutil.copytree(package[0], run)
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    for key in ("optimizer_states", "lr_schedulers"):  # what the grid strips after a cell's test
        checkpoint.pop(key)
    torch.save(checkpoint, run / "checkpoints" / "last.ckpt")
    main([str(run), "--out", str(tmp_path / "p"), "--checkpoint", "last.ckpt"])  # a name of the run's checkpoints
    card = read_card_header(tmp_path / "p" / "README.md")["dermlab"]
    assert card["test_images"] == 12 and card["checkpoint_sha256"] != json.loads(
        (run / "predictions_test.json").read_text())["checkpoint"]["sha256"]


def test_force_replaces_only_an_earlier_package(package, tmp_path):
    from dermlab.commands.export import main

    run, _ = package
    for out in (run, run.parent):
        with pytest.raises(DataError, match="is the run folder or holds it"):
            main([str(run), "--out", str(out), "--checkpoint", "last", "--force"])
    assert (run / "checkpoints" / "last.ckpt").is_file()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.tex").write_text("precious")
    with pytest.raises(DataError, match="not a model package.*--force replaces only an earlier package"):
        main([str(run), "--out", str(tmp_path / "notes"), "--checkpoint", "last", "--force"])
    assert (tmp_path / "notes" / "thesis.tex").read_text() == "precious"
    main([str(run), "--out", str(tmp_path / "pkg"), "--checkpoint", "last"])
    main([str(run), "--out", str(tmp_path / "pkg"), "--checkpoint", "last", "--force"])
    assert sorted(p.name for p in (tmp_path / "pkg").iterdir()) == ["README.md", "config.json", "model.safetensors"]


def test_the_cli_prints_the_reason_and_the_command(package, tmp_path, capsys):
    from dermlab.cli import main

    run = tmp_path / "run"
    shutil.copytree(package[0], run)
    (run / "predictions_test.json").unlink()
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(run), "--out", str(tmp_path / "p")])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "has no test of its own" in error and "Test it first:\n  dermlab test -c" in error


def test_a_partial_test_and_a_synthetic_twin_are_said_on_the_card(package, tmp_path):
    from dermlab.commands.export import main

    run = tmp_path / "run"
    shutil.copytree(package[0], run)
    predictions = pd.read_csv(run / "predictions_test.csv")
    predictions.iloc[:8].to_csv(run / "predictions_test.csv", index=False)  # as limit_test_batches: 1 leaves it
    main([str(run), "--out", str(tmp_path / "p"), "--checkpoint", "last"])
    card = (tmp_path / "p" / "README.md").read_text()
    assert "Partial test: 8 of the split's 12 test images" in card
    assert "The images are a synthetic twin" in card
    assert "## Training procedure" in card and "- epochs: 2 of 2" in card and "selected by: `val/auc (max)`" in card
    assert "`melanoma` is the positive class" in card


def test_predict_takes_pil_images_and_the_arrays_files_would_give(package):
    from PIL import Image

    import dermlab

    model = dermlab.load_model(package[1])
    rgb = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    gray = rgb[..., 0]
    expected = model.predict(np.stack([gray] * 3, axis=-1))
    np.testing.assert_allclose(model.predict(gray), expected, atol=1e-7)  # a lone 2-D array is one grey image
    np.testing.assert_allclose(model.predict(Image.fromarray(gray)), expected, atol=1e-7)
    rgba = np.concatenate([rgb, np.full((30, 40, 1), 255, np.uint8)], axis=-1)
    np.testing.assert_allclose(model.predict(rgba), model.predict(rgb), atol=1e-7)
    assert model.predict(np.stack([rgb, rgb])).shape == (2, 2)
    with pytest.raises(DataError, match="float32 array has no agreed 8-bit scale"):
        model.predict(rgb.astype(np.float32))
    with pytest.raises(DataError, match="is a Tensor: give a path, a PIL image or a NumPy array"):
        model.predict([torch.zeros(3, 8, 8)])


def test_classify_checks_its_outputs_first_names_cams_and_reads_a_file_once(package, tmp_path, caplog):
    _, pkg = package
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "empty").mkdir()
    write_jpeg(tmp_path / "a" / "x.jpg", np.full((20, 20, 3), 90, np.uint8))
    write_jpeg(tmp_path / "b" / "x.jpg", np.full((20, 20, 3), 160, np.uint8))
    with pytest.raises(DataError, match="is a folder; give the CSV file"):
        classified(pkg, [tmp_path / "a"], tmp_path / "a")
    (tmp_path / "cams.png").write_bytes(b"")
    with pytest.raises(DataError, match="is a file; give a folder for the CAM images"):
        classified(pkg, [tmp_path / "a"], tmp_path / "c.csv", "--cams", str(tmp_path / "cams.png"))
    caplog.set_level("INFO")
    table = classified(pkg, [tmp_path / "a", tmp_path / "b", tmp_path / "a" / "x.jpg", tmp_path / "empty"],
                       tmp_path / "c.csv", "--cams", str(tmp_path / "cams"))
    assert len(table) == 2 and "given more than once" in caplog.text and "holds no image file" in caplog.text
    assert [os.path.basename(c) for c in table.cam] == ["x_cam.png", "x_2_cam.png"]
    assert all(os.path.isfile(c) for c in table.cam)
