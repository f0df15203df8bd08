"""Dihedral test-time augmentation (dermlab.imaging.tta) and the classifier's ``tta: dihedral`` option."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dermlab.imaging.tta import DIHEDRAL, dihedral_mean, dihedral_transform, dihedral_views
from lightning_modules.base import LesionClassifier


def test_the_eight_views_of_a_2x2_image_by_hand():
    # image [[a, b], [c, d]] = [[1, 2], [3, 4]]; each element of D4 written out by hand
    image = torch.tensor([[1, 2], [3, 4]])
    expected = {
        "identity": [[1, 2], [3, 4]],
        "hflip": [[2, 1], [4, 3]],           # columns reversed
        "vflip": [[3, 4], [1, 2]],           # rows reversed
        "rot180": [[4, 3], [2, 1]],
        "transpose": [[1, 3], [2, 4]],
        "transpose_hflip": [[3, 1], [4, 2]],  # a 90° clockwise rotation
        "transpose_vflip": [[2, 4], [1, 3]],  # a 90° anticlockwise rotation
        "anti_transpose": [[4, 2], [3, 1]],
    }
    views = dihedral_views(image)
    assert [v.tolist() for v in views] == [expected[name] for name in DIHEDRAL]
    assert len({tuple(v.flatten().tolist()) for v in views}) == 8  # all distinct: the whole group


def test_views_act_on_the_last_two_dimensions_of_multi_view_batches():
    images = torch.arange(2 * 3 * 1 * 4 * 4, dtype=torch.float32).view(2, 3, 1, 4, 4)  # (B, V, C, H, W)
    for index in range(8):
        whole = dihedral_transform(images, index)
        for b in range(2):
            for v in range(3):
                assert torch.equal(whole[b, v, 0], dihedral_transform(images[b, v, 0], index))


def test_transposes_need_square_images_and_the_index_is_checked():
    with pytest.raises(ValueError, match="square"):
        dihedral_transform(torch.zeros(1, 3, 4, 6), 4)
    assert dihedral_transform(torch.zeros(1, 3, 4, 6), 1).shape == (1, 3, 4, 6)  # flips alone are fine
    with pytest.raises(ValueError, match="0-7"):
        dihedral_transform(torch.zeros(1, 3, 4, 4), 8)


class PooledLinear(nn.Module):
    """Global average pooling then a linear layer: unchanged by any flip or transpose of the input."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x.mean((-2, -1)))


class FirstPixels(nn.Module):
    """Logits = a linear map of the top-left 2×2 pixels of channel 0: every flip changes them."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x[:, 0, :2, :2].flatten(1))


class NetClassifier(LesionClassifier):
    def __init__(self, net_class, **kwargs):
        self.net_class = net_class
        super().__init__(backbone="test_resnet", num_classes=2, monitor=None, **kwargs)

    def build_net(self):
        return self.net_class()


def test_dihedral_tta_equals_plain_evaluation_on_an_invariant_model():
    torch.manual_seed(0)
    plain = NetClassifier(PooledLinear).eval()
    tta = NetClassifier(PooledLinear, tta="dihedral").eval()
    tta.load_state_dict(plain.state_dict())
    images = torch.randn(4, 3, 6, 6)
    for split in ("val", "test", "predict"):
        assert torch.allclose(tta.evaluated_probabilities(images, split), plain.evaluated_probabilities(images, split),
                              atol=1e-6)
    views = torch.randn(2, 3, 3, 6, 6)  # (B, V, C, H, W): still the view average
    assert torch.allclose(tta.evaluated_probabilities(views, "test"), plain.probabilities(views), atol=1e-6)


def test_dihedral_tta_is_the_mean_of_the_eight_hand_transformed_predictions():
    torch.manual_seed(0)
    module = NetClassifier(FirstPixels, tta="dihedral").eval()
    images = torch.randn(3, 3, 5, 5)
    # the 8 elements of D4 written with torch's own ops, independently of dermlab.imaging.tta
    by_hand = [images, images.flip(-1), images.flip(-2), images.rot90(2, (-2, -1)),
               images.transpose(-2, -1), images.rot90(-1, (-2, -1)), images.rot90(1, (-2, -1)),
               images.rot90(2, (-2, -1)).transpose(-2, -1)]
    with torch.no_grad():
        expected = torch.stack([module.net(x).softmax(1) for x in by_hand]).mean(0)
        plain = module.net(images).softmax(1)
        got = module.evaluated_probabilities(images, "test")
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(got, plain, atol=1e-3)  # the model is not invariant: TTA changed something
    assert torch.allclose(got.sum(1), torch.ones(3))
    # and it is what predict_step returns
    with torch.no_grad():
        out = module.predict_step({"image": images, "image_id": ["a", "b", "c"]}, 0)
    assert torch.allclose(out["probabilities"], expected, atol=1e-6)


def test_dihedral_mean_of_a_plain_function():
    # predict = the top-left pixel as a 1-column "prediction"; over D4 the top-left corner visits the four
    # corners twice each, so the mean is the mean of the four corners: (1 + 3 + 7 + 9) / 4 = 5
    image = torch.arange(1.0, 10.0).view(1, 1, 3, 3)  # [[1,2,3],[4,5,6],[7,8,9]]
    assert dihedral_mean(lambda x: x[:, 0, 0, :1], image).item() == pytest.approx(5.0)


def test_unknown_tta_is_refused():
    with pytest.raises(ValueError, match="tta"):
        LesionClassifier(backbone="test_resnet", tta="flips")
