"""``lightning_modules/segmentation.py``: SegAN's adversarial loop, the frozen encoder epochs, hard mining and the
ensemble."""

from __future__ import annotations

import pytest
import torch

from dermlab.errors import DataError
from lightning_modules.segmentation import LesionSegmenter, SegAN, SegmentationEnsemble
from tests.helpers.segmentation import TINY_UNET


class RecordingAdam(torch.optim.Adam):
    """Adam that snapshots the segmentor's and the critic's parameters around each of its steps."""

    module = None
    log: list = []

    def step(self, closure=None):
        before = self.snapshot()
        result = super().step(closure)
        self.log.append((self.role, before, self.snapshot()))
        return result

    def snapshot(self):
        return {part: [p.detach().clone() for p in getattr(self.module, part).parameters()]
                for part in ("net", "critic")}


def changed(before, after) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


class InMemoryMasks(torch.utils.data.Dataset):
    """Images with a bright square lesion and its mask."""

    def __init__(self, n: int = 8, size: int = 32):
        generator = torch.Generator().manual_seed(0)
        self.items = []
        for _ in range(n):
            mask = torch.zeros(1, size, size)
            y, x = torch.randint(0, size // 2, (2,), generator=generator).tolist()
            mask[:, y:y + size // 2, x:x + size // 2] = 1
            self.items.append({"image": torch.randn(3, size, size, generator=generator) * 0.3 + mask * 2,
                               "mask": mask, "image_id": f"ISIC_{len(self.items):07d}"})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def fit_segan(epochs: int = 1, callbacks=(), **kwargs) -> SegAN:
    import lightning.pytorch as L

    loader = torch.utils.data.DataLoader(InMemoryMasks(), batch_size=4)
    roles = iter(["segmentor", "critic"])

    def make(params):
        optimizer = RecordingAdam(params, lr=1e-2)
        optimizer.role = next(roles)
        return optimizer

    module = SegAN(**{**TINY_UNET, "critic_width": 4, "optimizer": make, **kwargs})
    RecordingAdam.module, RecordingAdam.log = module, []
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=list(callbacks))
    trainer.fit(module, loader)
    return module


def test_adversarial_loop_alternates_and_clips_the_critic():
    """Per batch: one critic step (only critic weights move, then clipped to ±0.05), then one segmentor step
    (only segmentor weights move)."""
    fit_segan(freeze_encoder_epochs=0)
    steps = RecordingAdam.log
    assert [role for role, _, _ in steps] == ["critic", "segmentor"] * 2  # 8 images, batch 4
    for role, before, after in steps:
        other = "net" if role == "critic" else "critic"
        mine = "critic" if role == "critic" else "net"
        assert changed(before[mine], after[mine]) and not changed(before[other], after[other])
        if role == "critic":  # the snapshot after the step is taken before clipping: check the module instead
            pass
    for parameter in RecordingAdam.module.critic.parameters():
        assert parameter.abs().max() <= 0.05 + 1e-7
    # the segmentor's step starts from the clipped critic: its "before" critic weights are all within the bound
    assert all(p.abs().max() <= 0.05 + 1e-7 for p in steps[1][1]["critic"])


def test_the_pretrained_vgg_stays_fixed_for_the_frozen_epochs_while_the_se_blocks_train():
    """§1 fixes "the weights of the pre-trained VGG net" only: in the frozen epoch the VGG's weights and BN
    statistics stay put while the randomly initialised SE blocks (inside the encoder) train; afterwards the VGG
    trains too. (Replaces the test of the old behaviour, which froze the SE blocks with the VGG.)"""
    import lightning.pytorch as L
    from timm.layers import SEModule

    def state(module):
        se = [m for m in module.encoder().modules() if isinstance(m, SEModule)]
        vgg = [t for m in module.pretrained_modules() for t in (*m.parameters(), *m.buffers())]
        return ([t.detach().clone() for t in vgg], [p.detach().clone() for m in se for p in m.parameters()])

    seen = []

    class Snapshot(L.Callback):
        def on_fit_start(self, trainer, module):
            seen.append(state(module))

        def on_train_epoch_end(self, trainer, module):
            seen.append(state(module))

    fit_segan(epochs=2, callbacks=[Snapshot()], freeze_encoder_epochs=1)
    (vgg_start, se_start), (vgg_0, se_0), (vgg_1, _) = seen
    assert len(se_start) == 20 and len(vgg_start) > 20  # 5 SE blocks × fc1, fc2 (weight, bias); VGG convs, BNs
    assert not changed(vgg_start, vgg_0)  # weights and BN statistics fixed in epoch 0
    assert changed(se_start, se_0)        # the SE gates learn from the first step
    assert changed(vgg_0, vgg_1)


def test_hard_mining_adds_the_top_k_soft_dice_losses():
    module = LesionSegmenter(**TINY_UNET, hard_mining=1)
    masks = torch.zeros(2, 1, 4, 4)
    masks[:, :, :2] = 1
    probabilities = torch.stack([masks[0], 1 - masks[1]])  # image 0 perfect, image 1 inverted
    dice = 1 - (2 * torch.tensor([8.0, 0.0]) + 1) / (torch.tensor([16.0, 16.0]) + 1)
    assert module.auxiliary_loss(probabilities, masks).item() == pytest.approx(dice.max().item())
    assert LesionSegmenter(**TINY_UNET).auxiliary_loss(probabilities, masks).item() == 0.0


# --- ensemble ----------------------------------------------------------------------------------------------
def save_run(module, path) -> str:
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return str(path)


def test_ensemble_averages_the_members_probability_maps(tmp_path):
    torch.manual_seed(0)
    segan = SegAN(**TINY_UNET, critic_width=4).eval()
    deeplab = LesionSegmenter("deeplabv3plus", "resnet18", decoder_channels=16).eval()
    members = [save_run(segan, tmp_path / "a.ckpt"), save_run(deeplab, tmp_path / "b.ckpt")]
    ensemble = SegmentationEnsemble(members=members).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = (segan.probabilities(images) + deeplab.probabilities(images)) / 2
        assert torch.allclose(ensemble.probabilities(images), expected, atol=1e-6)
    assert not any(p.requires_grad for p in ensemble.parameters())
    with pytest.raises(DataError, match="result.json"):
        SegmentationEnsemble(members=[str(tmp_path)])
