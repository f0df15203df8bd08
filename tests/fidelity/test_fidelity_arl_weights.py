"""Fidelity of the ``arl`` paper (001) reproduction: the ImageNet weights of Tables III/IV's 50-layer rows.

The paper fine-tunes its 50-layer networks from ImageNet (§III-B, §IV-B) and does not name the files. Our rows use
the original releases of the paper's time, like for like: torchvision's ResNet-50 (ResNet50, ARL-CNN50, RAN50's
trunk) and Hu et al.'s own SE-ResNet-50 (timm ``legacy_seresnet50.in1k``, the Caffe model ported by Cadene) for
SENet50, not timm's 2021 "ResNet strikes back" recipe (``seresnet50.a1_in1k``). No weights file is needed here: a
randomly initialised state dict in the chosen timm layout stands in for it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
import yaml
from safetensors.torch import load_file, save_file
from timm.models import get_pretrained_cfg

from datamodules import ISIC2017DataModule
from datamodules.transforms import Normalisation
from dermlab.errors import DataError
from dermlab.grid import spec
from dermlab.grid.runner import WEIGHT_FILE, require_weight_files
from lightning_modules.base import LesionClassifier
from lightning_modules.nets.backbone import create_backbone
from lightning_modules.nets.cam import class_activation_maps

REPO = Path(__file__).resolve().parents[2]
TABLES = REPO / "experiments" / "arl" / "tables"
FINE_TUNED = ("ResNet50", "SENet50", "RAN50 (128 layers, 34.9 M params)", "ARL-CNN50")
RSB_PAPER = "arXiv:2110.00476"  # Wightman et al. 2021, "ResNet strikes back": timm's a1 / a2 / a3 recipes


def rows(table: str = "table3_4.yaml") -> dict[str, dict]:
    return yaml.safe_load((TABLES / table).read_text())["axes"]["model"]


def weights_tag(row: dict) -> str:
    """``weights/<timm name>.<tag>.safetensors`` → ``<timm name>.<tag>``."""
    return Path(row["model.init_args.pretrained_weights"]).name.removesuffix(".safetensors")


@pytest.fixture(scope="module")
def senet50_file(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A random state dict saved in the layout of the SENet50 row's timm model (ImageNet: 1000 classes)."""
    torch.manual_seed(0)
    state = timm.create_model(rows()["SENet50"]["model.init_args.backbone"], pretrained=False).state_dict()
    path = tmp_path_factory.mktemp("w") / "senet50.safetensors"
    save_file(state, str(path))
    return path, state


def test_every_fine_tuned_row_starts_from_an_original_release_of_its_own_architecture():
    expected_arch = {"ResNet50": "resnet50", "SENet50": "legacy_seresnet50", "ARL-CNN50": "resnet50",
                     "RAN50 (128 layers, 34.9 M params)": "resnet50"}  # ARL-CNN50 / RAN50: ResNet-50 weights
    table = rows()
    for label in FINE_TUNED:
        cfg = get_pretrained_cfg(weights_tag(table[label]))
        assert cfg is not None, label
        assert cfg.architecture == expected_arch[label], label
        # the classic ImageNet evaluation of 2015–2017 releases (bilinear, 87.5 % centre crop), no 2021 recipe
        assert (cfg.interpolation, cfg.crop_pct) == ("bilinear", 0.875), label
        assert RSB_PAPER not in str(cfg.paper_ids or ""), label
    assert table["SENet50"]["model.init_args.backbone"] == "legacy_seresnet50"
    assert table["SENet50"]["model.init_args.optimizer.init_args.lr"] == table["ResNet50"][
        "model.init_args.optimizer.init_args.lr"] == 0.0001
    assert rows("table3_4_average.yaml")["SENet50"] == {"model.init_args.backbone": "legacy_seresnet50"}


def test_the_old_rsb_weights_would_have_failed_the_check_above():
    cfg = get_pretrained_cfg("seresnet50.a1_in1k")  # what SENet50 used before: another recipe, another evaluation
    assert cfg.paper_ids == RSB_PAPER and (cfg.interpolation, cfg.crop_pct) == ("bicubic", 0.95)


def test_the_grid_names_the_senet50_file_for_its_weights_check_and_stands_it_in_on_synthetic_data():
    grid = spec.load(TABLES / "table3_4.yaml")
    text = (TABLES / "table3_4.yaml").read_text()
    named = set(WEIGHT_FILE.findall(text))
    assert named == {"weights/resnet50.tv_in1k.safetensors", "weights/legacy_seresnet50.in1k.safetensors"}
    assert grid.synthetic["replace"]["weights/legacy_seresnet50.in1k.safetensors"] == "null"
    docs = (REPO / "docs" / "weights.md").read_text()
    assert "`weights/legacy_seresnet50.in1k.safetensors`" in docs and "seresnet50.a1_in1k" not in docs


def test_senet50_weights_load_through_the_suites_path_with_every_key_matched(senet50_file):
    path, state = senet50_file
    model = LesionClassifier(backbone=rows()["SENet50"]["model.init_args.backbone"], num_classes=2,
                             pretrained_weights=str(path), monitor=None)
    own = model.net.state_dict()
    assert set(own) == set(state)  # the same layout: nothing missing, nothing extra
    head = {"last_linear.weight", "last_linear.bias"}  # timm's classifier of this model, re-made for 2 classes
    assert all(torch.equal(own[k], state[k]) for k in own if k not in head)
    assert own["last_linear.weight"].shape == (2, 2048) and torch.all(own["last_linear.bias"] == 0)
    assert float(own["last_linear.weight"].std()) == pytest.approx(0.01, rel=0.2)  # small_head_init: N(0, 0.01²)


def test_the_papers_settings_stop_when_only_the_old_senet50_file_is_there(tmp_path):
    """A weights/ folder from before (RSB SE-ResNet-50) does not pass for the SENet50 row: the run stops, naming the
    file it needs, before anything trains."""
    (tmp_path / "weights").mkdir()
    for name in ("resnet50.tv_in1k", "seresnet50.a1_in1k"):
        (tmp_path / "weights" / f"{name}.safetensors").write_bytes(b"")
    grid = spec.load(TABLES / "table3_4.yaml")
    with pytest.raises(DataError, match=r"not there: weights/legacy_seresnet50\.in1k\.safetensors\."):
        require_weight_files(grid, root=tmp_path)
    (tmp_path / "weights" / "legacy_seresnet50.in1k.safetensors").write_bytes(b"")
    assert require_weight_files(grid, root=tmp_path) == ["weights/legacy_seresnet50.in1k.safetensors",
                                                         "weights/resnet50.tv_in1k.safetensors"]


def test_senet50_is_the_releases_network_and_trains_without_timms_class_default_dropout(senet50_file):
    path, _ = senet50_file
    net = create_backbone("legacy_seresnet50", 2, str(path))
    # Caffe layout of Hu et al.'s release: a downsampling block strides in its first 1×1 conv, not in the 3×3
    assert net.layer2[0].conv1.stride == (2, 2) and net.layer2[0].conv2.stride == (1, 1)
    assert net.drop_rate == 0.0  # the suite's drop_rate, as every other row (SENet's own class default is 0.2)
    assert timm.create_model("legacy_seresnet50", pretrained=False).drop_rate == 0.2
    net.eval()
    images = torch.randn(1, 3, 64, 64)
    assert net(images).shape == (1, 2)
    cams, classes = class_activation_maps(net, images)  # Fig. 5-style CAMs need forward_features / forward_head
    assert cams.shape == (1, 64, 64) and classes.shape == (1,)


def test_the_data_are_normalised_as_the_senet50_weights_expect(senet50_file, isic2017_root):
    path, _ = senet50_file
    model = LesionClassifier(backbone="legacy_seresnet50", num_classes=2, pretrained_weights=str(path), monitor=None)
    cfg = get_pretrained_cfg("legacy_seresnet50.in1k")
    expected = Normalisation(tuple(cfg.mean), tuple(cfg.std))
    # the port takes RGB in [0, 1] with ImageNet statistics (Cadene's input_space RGB, input_range [0, 1]), not the
    # Caffe original's BGR 0–255 minus a pixel mean: red's mean comes first and every value is a fraction
    assert expected == Normalisation((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert model.input_normalisation == expected
    data = ISIC2017DataModule(str(isic2017_root), image_size=32, batch_size=4, num_workers=0, audit_pixels=False)
    data.follow(model)
    assert data.normalisation == expected


REAL = REPO / "weights" / "legacy_seresnet50.in1k.safetensors"


@pytest.mark.skipif(not REAL.is_file(), reason=f"{REAL.relative_to(REPO)} is not here (docs/weights.md)")
def test_the_real_senet50_file_loads_into_the_row_with_every_tensor():
    state = load_file(str(REAL))
    net = create_backbone("legacy_seresnet50", 2, str(REAL))
    own = net.state_dict()
    assert set(own) == set(state)
    assert all(torch.equal(own[k], state[k]) for k in own if not k.startswith("last_linear."))
