"""patch paper (003) against the authors' code, issue #17: crop fusion (logits | probabilities), Multi-Crop trained on
N_C random crops per image jointly, both diagnosis-guided weighting variants in Table V, one batch size for Tables
II / V / VI, and the authors' code settings as a preset (optimiser, schedule, colour jitter)."""

from __future__ import annotations

import math

import albumentations as A
import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import REPO

PATCH = REPO / "experiments" / "patch"
TABLES = PATCH / "tables"


class FixedLogits(nn.Module):
    """A stand-in network: the given (N_B, N_C, K) logits whatever the input, scaled by a learnable 1 (so a loss
    on it has a gradient)."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits, self.scale = logits, nn.Parameter(torch.ones(()))

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.logits * self.scale


def patch_module(**kwargs):
    from lightning_modules import PatchAttentionClassifier

    return PatchAttentionClassifier(backbone="test_resnet", num_classes=2, n_crops=2, attention="none",
                                    crop_dropout=0.0, **kwargs)


# --- crop fusion ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fusion, p_lesion", [
    # logits: mean logit [1, 0] → softmax: e / (e + 1)
    ("logits", math.e / (math.e + 1)),                                   # 0.731059
    # probabilities: mean of softmax([2, 0]) = [e² / (e² + 1), ...] and softmax([0, 0]) = [1/2, 1/2]
    ("probabilities", (math.e ** 2 / (math.e ** 2 + 1) + 0.5) / 2),      # 0.690399
])
def test_two_crops_fused_by_hand(fusion, p_lesion):
    """One image, two crops with logits [2, 0] and [0, 0], true class 0: the prediction and the training loss
    (cross-entropy of the fused prediction) by hand for both settings of crop_fusion."""
    module = patch_module(crop_fusion=fusion)
    module.net = FixedLogits(torch.tensor([[[2.0, 0.0], [0.0, 0.0]]]))
    probabilities = module.probabilities(torch.zeros(1, 2, 3, 8, 8))
    assert probabilities[0].tolist() == pytest.approx([p_lesion, 1 - p_lesion], abs=1e-6)
    batch = {"label": torch.tensor([0]), "weight": None}
    loss = module.compute_loss(module.log_probabilities(torch.zeros(1, 2, 3, 8, 8)), batch)
    assert loss.item() == pytest.approx(-math.log(p_lesion), abs=1e-6)  # 0.313262 (logits), 0.370486 (probs)


def test_crop_fusion_defaults_to_the_authors_logits_and_refuses_others():
    assert patch_module().hparams.crop_fusion == "logits"
    with pytest.raises(ValueError, match="crop_fusion"):
        patch_module(crop_fusion="votes")


# --- Multi-Crop: N_C random crops per image, trained jointly ------------------------------------------------
def ham_module(synthetic, **kwargs):
    from datamodules import HAM10000DataModule

    settings = dict(split="patch", image_size=16, batch_size=4, num_workers=0, audit_pixels=False,
                    train_transforms="experiments/base/augment/full_image.yaml",
                    eval_transforms="experiments/base/augment/full_image.yaml", eval_crops=9) | kwargs
    data = HAM10000DataModule(str(synthetic("ham10000")), **settings)
    data.setup("fit")
    return data


def windows(image: torch.Tensor, size: int) -> dict[tuple[int, int], torch.Tensor]:
    return {(r, c): image[:, r:r + size, c:c + size] for r in range(image.shape[1] - size + 1)
            for c in range(image.shape[2] - size + 1)}


def test_a_multi_crop_training_batch_carries_nc_random_crops_per_image(synthetic):
    """train_crop_positions: random → (N_B, N_C, C, s, s); each crop is a window of the (unaugmented, here) image;
    the positions are not the ordered ones and differ between epochs (epoch-tagged indices)."""
    from datamodules.crops import ordered_crop_boxes

    data = ham_module(synthetic, train_crops=9, train_crop_positions="random")
    batch = next(iter(data.train_dataloader()))
    assert tuple(batch["image"].shape) == (4, 9, 3, 16, 16)
    train = data.dataset("train")
    whole = data.dataset("train", augment=False, views=1)[0]["image"]  # (3, 24, 32) synthetic image
    places = {}
    for epoch in (0, 1):
        crops = train[epoch * len(train)]["image"]
        found = [next(box for box, w in windows(whole, 16).items() if torch.equal(w, crop)) for crop in crops]
        places[epoch] = found
    assert places[0] != places[1] and places[0] != ordered_crop_boxes(24, 32, 9, 16)
    assert len(set(places[0])) > 1  # independent positions, not one crop repeated


def test_the_old_reading_gives_one_random_crop_per_image(synthetic):
    data = ham_module(synthetic, train_crops=0, train_transforms="experiments/base/augment/patch_random_crop.yaml")
    assert tuple(next(iter(data.train_dataloader()))["image"].shape) == (4, 3, 16, 16)


def test_the_multi_crop_loss_uses_every_crop():
    """CE of the mean logit of all N_C crops (computed crop by crop by hand), and every crop gets a gradient."""
    from lightning_modules import PatchAttentionClassifier

    torch.manual_seed(0)
    module = PatchAttentionClassifier(backbone="test_resnet", num_classes=7, n_crops=9, attention="none",
                                      crop_dropout=0.0).eval()  # eval: batch-norm statistics independent of batching
    crops = torch.randn(2, 9, 3, 16, 16, requires_grad=True)
    batch = {"label": torch.tensor([1, 5]), "weight": None}
    loss = module.compute_loss(module.log_probabilities(crops), batch)
    per_crop = torch.stack([module.net.backbone(crops[:, c]) for c in range(9)], 1)  # (2, 9, 7)
    by_hand = nn.functional.cross_entropy(per_crop.mean(1), batch["label"])
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-5)
    loss.backward()
    assert (crops.grad.flatten(2).abs().sum(-1) > 0).all()  # all 2 × 9 crops count


def test_multi_crop_configs_parse_to_both_readings():
    from dermlab.commands.trainer import config_parser

    base = ["-c", str(PATCH / "base.yaml")]
    joint = config_parser().parse([*base, "-c", str(PATCH / "multi_crop.yaml")])
    assert (joint.data.init_args.train_crops, joint.data.init_args.train_crop_positions) == (9, "random")
    assert (joint.model.init_args.attention, joint.model.init_args.crop_dropout) == ("none", 0.0)
    one = config_parser().parse([*base, "-c", str(PATCH / "multi_crop_one_crop.yaml")])
    assert one.data.init_args.train_crops == 0
    assert one.data.init_args.train_transforms.endswith("patch_random_crop.yaml")


# --- diagnosis-guided weighting: both variants ------------------------------------------------------------
def test_diagnosis_weights_of_both_variants_by_hand():
    """MEL histo, NV histo, NV consensus, BKL confocal, BCC follow-up; factors 1 / 2 / 3 / 4 for consensus /
    follow-up / confocal / histo. benign (§II-F): MEL and BCC stay 1. all (authors' code): every case weighted.
    The loss weight is the class weight times that factor."""
    from datamodules.datasets.pooled import HAM_CLASSES, diagnosis_weights

    labels = [HAM_CLASSES.index(c) for c in ("MEL", "NV", "NV", "BKL", "BCC")]
    dx = ["histo", "histo", "consensus", "confocal", "follow_up"]
    factors = {"consensus": 1, "follow_up": 2, "confocal": 3, "histo": 4}
    benign = diagnosis_weights(labels, dx, factors, on="benign")
    everyone = diagnosis_weights(labels, dx, factors, on="all")
    assert benign.tolist() == [1, 4, 1, 3, 1] and everyone.tolist() == [4, 4, 1, 3, 2]
    module = patch_module()
    module.class_weights = torch.tensor([2.0, 0.5, 3.0, 1.0, 1.5, 1.0, 1.0])  # by hand, MEL NV BCC AKIEC BKL ...
    for factors_, expected in ((benign, [2.0, 2.0, 0.5, 4.5, 3.0]), (everyone, [8.0, 2.0, 0.5, 4.5, 6.0])):
        batch = {"label": torch.tensor(labels), "weight": torch.tensor(factors_)}
        assert module.sample_weights(batch).tolist() == pytest.approx(expected)


def test_table5_runs_both_diagnosis_variants_labelled():
    from dermlab.grid import spec

    grid = spec.load(TABLES.relative_to(REPO) / "table5_balancing.yaml")
    rows = grid.axes["balancing"]
    assert rows["Diag. Weighting (benign)"]["data.init_args.dx_type_weights_on"] == "benign"
    assert rows["Diag. Weighting (all)"]["data.init_args.dx_type_weights_on"] == "all"
    for variant in ("benign", "all"):
        assert rows[f"Diag. Weighting ({variant})"]["data.init_args.dx_type_weights"] == {
            "consensus": 1, "follow_up": 2, "confocal": 3, "histo": 4}
    assert {"Dense121", "Diag. Weighting (all)"} <= {v for c in grid.cells() for v in c.values.values()}


# --- one experiment, one batch size -------------------------------------------------------------------------
def resolved_cell(table: str, **values) -> dict:
    """The parsed configuration of the real-data cell with those axis values, minus what names the run."""
    from dermlab.commands.trainer import config_parser
    from dermlab.grid import runner, spec

    grid = spec.load((TABLES / f"{table}.yaml").relative_to(REPO))
    cell = next(c for c in grid.cells() if all(c.values[k] == v for k, v in values.items()))
    config = config_parser().parse(runner.cell_args(grid, cell, REPO / "runs" / "x" / cell.id, "data/x", [])).as_dict()
    config["trainer"].pop("default_root_dir")
    config.pop("run")
    config.pop("config")  # the config files named; what they set is compared
    return config


def test_table2_multi_crop_table5_loss_weighting_and_table6_k1_are_one_run(monkeypatch):
    """The paper prints identical numbers for the three (68.4 ± 2.8 / 71.1 ± 1.1 / 70.2 ± 1.0): the three cells
    must resolve to the same configuration, batch size included (28: 4 per class in balanced batches)."""
    monkeypatch.chdir(REPO)
    table2 = resolved_cell("table2_strategies", model="Dense121", strategy="Multi-Crop", **{"data.init_args.fold": 0})
    table5 = resolved_cell("table5_balancing", model="Dense121", balancing="Loss Weighting",
                           **{"data.init_args.fold": 0})
    table6 = resolved_cell("table6_k", model="Dense121", **{"model.init_args.class_weight_power": "k = 1.00",
                                                             "data.init_args.fold": 0})
    assert table2 == table5 == table6
    assert table2["data"]["init_args"]["batch_size"] == 28
    assert (table2["data"]["init_args"]["train_crops"], table2["data"]["init_args"]["train_crop_positions"]) == (
        9, "random")
    for table in TABLES.glob("*.yaml"):  # no table sets its own batch size: base.yaml's holds for all
        assert "batch_size" not in table.read_text(), table.name


# --- the authors' code settings as a preset -------------------------------------------------------------------
def test_the_authors_code_preset_parses_to_their_settings():
    from dermlab.commands.trainer import config_parser

    config = config_parser().parse(["-c", str(PATCH / "base.yaml"), "-c", str(PATCH / "authors_code.yaml")])
    optimiser, scheduler = config.model.init_args.optimizer, config.model.init_args.scheduler
    assert optimiser.class_path == "torch.optim.Adam"
    assert optimiser.init_args.lr == pytest.approx(0.0000125 * 5 / 3, rel=1e-12)  # 2.0833e-5
    assert (config.trainer.max_epochs, config.trainer.check_val_every_n_epoch, config.data.init_args.batch_size) == (
        50, 5, 5)
    assert config.data.init_args.train_transforms == "experiments/base/augment/patch_authors.yaml"
    assert scheduler.class_path == "torch.optim.lr_scheduler.MultiStepLR"

    # their loop: StepLR(step_size 10, gamma 1/2), stepped at the start of each 1-based epoch s >= 10
    weight = nn.Parameter(torch.zeros(1))
    theirs_opt = torch.optim.Adam([weight], lr=optimiser.init_args.lr)
    theirs = torch.optim.lr_scheduler.StepLR(theirs_opt, step_size=10, gamma=0.5)
    ours_opt = torch.optim.Adam([weight], lr=optimiser.init_args.lr)
    ours = torch.optim.lr_scheduler.MultiStepLR(ours_opt, **vars(scheduler.init_args))
    theirs_lr, ours_lr = [], []
    for epoch in range(1, 51):
        if epoch >= 10:
            theirs.step()
        theirs_lr.append(theirs_opt.param_groups[0]["lr"])
        ours_lr.append(ours_opt.param_groups[0]["lr"])
        ours.step()  # Lightning steps an epoch-interval scheduler after each epoch
    assert ours_lr == pytest.approx(theirs_lr, rel=1e-12)
    halvings = [0] * 18 + [1] * 10 + [2] * 10 + [3] * 10 + [4] * 2  # by hand: halved before epochs 19, 29, 39, 49
    assert ours_lr == pytest.approx([optimiser.init_args.lr / 2 ** h for h in halvings], rel=1e-12)


@pytest.mark.parametrize("pipeline", ["patch_authors", "patch_authors_downsample", "patch_authors_single_crop"])
def test_the_authors_colour_jitter_is_always_applied_with_their_magnitudes(pipeline):
    """brightness factor b ∈ [1 − 32/255, 1 + 32/255], saturation factor s ∈ [0.5, 1.5], on every image. A 2×4
    float image symmetric under both flips, columns grey | colour | colour | grey: the grey pixel gives b (saturation
    leaves grey unchanged), the colour pixel (0.6, 0.4, 0.4) gives s = (out_R − out_G) / (0.2 b)."""
    from datamodules.transforms import _from_file, _from_list

    steps = _from_list(_from_file(f"experiments/base/augment/{pipeline}.yaml"), 4)
    jitter = next(t for t in steps if isinstance(t, A.ColorJitter))
    assert jitter.p == 1.0
    assert jitter.brightness == pytest.approx((1 - 32 / 255, 1 + 32 / 255))
    assert jitter.saturation == pytest.approx((0.5, 1.5))
    assert jitter.contrast == pytest.approx((1.0, 1.0)) and jitter.hue == pytest.approx((0.0, 0.0))
    if pipeline != "patch_authors":
        return  # the others differ only in their geometry (resize / random resized crop)
    pipe = A.Compose(steps)
    pipe.set_random_seed(0)
    grey, colour = [0.5, 0.5, 0.5], [0.6, 0.4, 0.4]
    image = np.array([[grey, colour, colour, grey]] * 2, np.float32)
    b, s = [], []
    for _ in range(300):
        out = pipe(image=image)["image"]
        b.append(out[0, 0, 0] / 0.5)
        s.append((out[0, 1, 0] - out[0, 1, 1]) / (0.2 * b[-1]))
    b, s = np.array(b), np.array(s)
    assert (np.abs(b - 1) > 0).all()  # applied to every image (b = 1 exactly has probability 0)
    assert b.min() >= 1 - 32 / 255 - 1e-5 and b.max() <= 1 + 32 / 255 + 1e-5
    assert b.min() < 1 - 0.1 and b.max() > 1 + 0.1  # and spans the range
    assert s.min() >= 0.5 - 1e-4 and s.max() <= 1.5 + 1e-4 and s.min() < 0.6 and s.max() > 1.4
