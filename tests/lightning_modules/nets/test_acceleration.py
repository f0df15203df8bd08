"""The GPU speed options, checked on the CPU (issue #20): ``channels_last``, ``--trainer.precision bf16-mixed``
and ``compile`` must not change results beyond float tolerance, and a compiled model's checkpoint must load into
an eager one (and back) with the same keys. Tiny nets (timm ``test_resnet``, 32 px), fixed seeds, one batch."""

from __future__ import annotations

import lightning
import pytest
import torch

from dermlab.errors import DataError
from lightning_modules import (
    CBAMClassifier,
    DeeplySupervisedClassifier,
    HierarchicalClassifier,
    LesionClassifier,
    PatchAttentionClassifier,
    TripletClassifier,
)
from lightning_modules.nets.cam import class_activation_maps
from lightning_modules.nets.cbam import LEAVES
from tests.conftest import REPO, tiny_args

# fp32 round-off between the NCHW and NHWC convolution kernels. Measured on the 2-core development machine:
# logits 2.5e-6, losses 2.1e-6, gradients 3.6e-6, parameter updates 2.8e-6 (relative, see the tests).
CHANNELS_LAST_RTOL = 1e-5
CHANNELS_LAST_GRAD_RTOL = 2e-5  # gradients and updates go through twice as many kernels (forward and backward)
# bf16 keeps 8 significant bits (2^-8 = 3.9e-3 per rounding); measured: 8.7e-3 of the largest logit (7.8e-4 at 0.089)
BF16_RTOL = 2e-2
COMPILE_ATOL = 1e-4


def classifier(cls=LesionClassifier, **options):
    """``cls`` on timm's test_resnet, initialised from seed 0 (the same weights for every option)."""
    torch.manual_seed(0)
    options = {"backbone": "test_resnet", "num_classes": 2, **options}
    return cls(**options)


def one_batch(n: int = 8, size: int = 32, classes: int = 2) -> dict:
    generator = torch.Generator().manual_seed(1)
    return {"image": torch.randn(n, 3, size, size, generator=generator),
            "label": torch.randint(0, classes, (n,), generator=generator)}


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|."""
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def relative_l2(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """‖a − b‖ / ‖b‖ over all tensors of the lists, flattened into one vector."""
    a, b = torch.cat([t.flatten() for t in a]), torch.cat([t.flatten() for t in b])
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


def sgd_steps(model, batch: dict, steps: int = 3):
    """(first logits, losses, last gradients, parameters) of ``steps`` SGD steps through the module's own loss.

    SGD, not Adam: Adam divides by √v, which turns the 1e-6 round-off of a near-zero gradient into a large
    relative change of its update (measured: 0.05 on a gradient, 0.46 on a parameter after 3 Adam steps)."""
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    first, losses = None, []
    for _ in range(steps):
        logits = model(batch["image"])
        first = logits.detach() if first is None else first
        loss = model.compute_loss(logits, batch)
        optimizer.zero_grad()
        loss.backward()
        gradients = [p.grad.clone() for p in model.parameters()]
        optimizer.step()
        losses.append(loss.detach())
    return first, torch.stack(losses), gradients, [p.detach().clone() for p in model.parameters()]


# --- channels_last ------------------------------------------------------------------------------------------
def test_channels_last_trains_like_contiguous():
    batch = one_batch()
    contiguous, nhwc = classifier(), classifier(channels_last=True)
    start = [p.detach().clone() for p in contiguous.parameters()]
    weights = [p for p in nhwc.parameters() if p.ndim == 4]
    assert weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
    assert not all(p.is_contiguous(memory_format=torch.channels_last) for p in contiguous.parameters() if p.ndim == 4)
    seen = []  # the layout of the images as the first convolution receives them
    first_conv = next(m for m in nhwc.net.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_pre_hook(lambda m, args: seen.append(
        args[0].is_contiguous(memory_format=torch.channels_last)))

    logits_a, losses_a, grads_a, params_a = sgd_steps(contiguous, batch)
    logits_b, losses_b, grads_b, params_b = sgd_steps(nhwc, batch)

    assert seen and all(seen)
    assert relative(logits_b, logits_a) <= CHANNELS_LAST_RTOL
    assert relative(losses_b, losses_a) <= CHANNELS_LAST_RTOL
    assert relative_l2(grads_b, grads_a) <= CHANNELS_LAST_GRAD_RTOL
    assert relative_l2(params_b, params_a) <= CHANNELS_LAST_RTOL
    updates_a = [p - s for p, s in zip(params_a, start, strict=True)]
    updates_b = [p - s for p, s in zip(params_b, start, strict=True)]
    assert relative_l2(updates_b, updates_a) <= CHANNELS_LAST_GRAD_RTOL
    assert losses_a[-1] < losses_a[0]  # the steps trained (so equal parameters are not equal by standing still)


def test_channels_last_keeps_class_activation_maps():
    """The CAM callbacks read ``forward_features`` / ``forward_head``, outside the net's input hook."""
    images = one_batch(n=4, size=128)["image"]  # 4×4 last features: 32 px would give 1×1, i.e. constant maps
    contiguous, nhwc = classifier().eval(), classifier(channels_last=True).eval()
    cams_a, classes_a = class_activation_maps(contiguous.net, images)
    cams_b, classes_b = class_activation_maps(nhwc.net, images)
    assert torch.equal(classes_a, classes_b)
    assert (cams_b - cams_a).abs().max() <= 1e-4  # maps scaled to [0, 1]
    assert cams_a.std() > 0.05  # real maps, not constant ones that would agree anyway


SUBCLASSES = {
    "dds": (DeeplySupervisedClassifier, {"aux_layers": ["layer2.0.conv2"]}, 2),
    "patch": (PatchAttentionClassifier, {"n_crops": 3, "attention": "dual"}, 2),
    "triplet": (TripletClassifier, {"num_classes": 7, "class_names": LEAVES, "embed_dim": 16}, 7),
    "cbam": (CBAMClassifier, {}, 2),
    "hierarchical": (HierarchicalClassifier, {"num_classes": 7, "class_names": LEAVES, "lstm_hidden": 16}, 7),
}


@pytest.mark.parametrize("name", SUBCLASSES)
def test_channels_last_in_every_method(name):
    """Each method's own net (``build_net``) inherits the option and predicts as the contiguous one does."""
    cls, options, classes = SUBCLASSES[name]
    images = one_batch(n=2, classes=classes)["image"]
    if name == "patch":
        images = torch.stack([images, images.flip(-1), images.flip(-2)], 1)  # (B, N_C, C, H, W) crops
    contiguous, nhwc = classifier(cls, **options).eval(), classifier(cls, channels_last=True, **options).eval()
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in nhwc.parameters() if p.ndim == 4)
    with torch.no_grad():
        expected, got = contiguous.probabilities(images), nhwc.probabilities(images)
    assert got.shape == (2, classes)
    assert relative(got, expected) <= CHANNELS_LAST_RTOL
    if name == "dds":  # the auxiliary branch reads a tapped inner layer
        with torch.no_grad():
            aux_a = contiguous.net(images, with_aux=True)[1]["layer2.0.conv2"]
            aux_b = nhwc.net(images, with_aux=True)[1]["layer2.0.conv2"]
        assert relative(aux_b, aux_a) <= CHANNELS_LAST_RTOL


# --- bf16-mixed -----------------------------------------------------------------------------------------------
def test_bf16_mixed_trains_and_stays_near_fp32(isic2017_root, tmp_path):
    """``--trainer.precision bf16-mixed`` through the CLI: autocast runs the net in bf16, the weights stay fp32
    and train, and bf16 logits stay within BF16_RTOL (of the largest logit) of fp32 ones on the same weights."""
    from dermlab.commands.trainer import build_cli

    cli = build_cli(tiny_args(isic2017_root, tmp_path / "run", "--trainer.precision", "bf16-mixed",
                              "--trainer.max_steps", "2", "--trainer.limit_val_batches", "0"),
                    run=False)
    before = [p.detach().clone() for p in cli.model.parameters()]
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.precision == "bf16-mixed" and cli.trainer.global_step == 2
    assert torch.isfinite(cli.trainer.callback_metrics["train/loss"])
    after = list(cli.model.parameters())
    assert all(p.dtype == torch.float32 for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))

    model, images = cli.model.eval(), one_batch()["image"]
    with torch.no_grad():
        fp32 = model(images)
        with cli.trainer.precision_plugin.forward_context():
            bf16 = model(images)
    assert fp32.dtype == torch.float32 and bf16.dtype == torch.bfloat16
    assert 0 < relative(bf16.float(), fp32) <= BF16_RTOL  # > 0: autocast did round


# --- compile --------------------------------------------------------------------------------------------------
def frames_compiled() -> int:
    from torch._dynamo.utils import counters

    return sum(counters["stats"].values()) if "stats" in counters else 0


def test_compile_options_parse_on_the_command_line():
    from dermlab.commands.trainer import config_parser

    parser = config_parser()
    base = ["-c", str(REPO / "experiments" / "demo_synthetic.yaml")]
    init = parser.parse(base).model.init_args
    assert init.compile is False and init.channels_last is False
    init = parser.parse([*base, "--model.init_args.compile", "true", "--model.init_args.channels_last", "true"]
                        ).model.init_args
    assert init.compile is True and init.channels_last is True
    assert parser.parse([*base, "--model.init_args.compile", "{mode: max-autotune}"]).model.init_args.compile == {
        "mode": "max-autotune"}
    assert "compile" in parser.check([*base, "--model.init_args.compile", "maybe"])


def test_compile_rejects_unknown_options():
    with pytest.raises(DataError, match="unknown torch.compile option.*'mood'"):
        classifier(compile={"mood": "fast"})


def test_compile_without_a_cxx_compiler_fails_clearly(monkeypatch):
    import torch._inductor.config as inductor

    monkeypatch.setattr(inductor.cpp, "cxx", (None, "/nonexistent/g++"))
    with pytest.raises(DataError, match="needs a C\\+\\+ compiler.*compile: false"):
        classifier(compile=True)
    classifier(compile={"backend": "aot_eager"})  # a backend that compiles no C++ needs none


@pytest.mark.parametrize("name", ["dds", "patch", "cbam"])
def test_compile_in_methods_with_hooks_or_crops(name):
    """Methods whose ``net(...)`` does more than a timm forward: dds taps an inner layer with a forward hook
    (attached after the first compilation, as its layer selection does), patch takes (B, N_C, C, H, W) crops,
    the CBAM net keeps its attention maps from forward hooks for the figure commands. Compiled (aot_eager: the
    graphs, no C++) they predict as eager and their hooks' side effects still happen."""
    cls, options, classes = SUBCLASSES[name]
    if name == "dds":
        options = {"aux_layers": None}
    images = one_batch(n=2, classes=classes)["image"]
    if name == "patch":
        images = torch.stack([images, images.flip(-1), images.flip(-2)], 1)
    eager = classifier(cls, **options).eval()
    compiled = classifier(cls, compile={"backend": "aot_eager"}, **options).eval()
    before = frames_compiled()
    with torch.no_grad():
        assert (compiled.probabilities(images) - eager.probabilities(images)).abs().max() <= COMPILE_ATOL
    assert frames_compiled() > before
    if name == "cbam":
        assert (compiled.net.maps.spatial - eager.net.maps.spatial).abs().max() <= COMPILE_ATOL
    if name == "dds":
        for module in (eager, compiled):
            torch.manual_seed(1)
            module.attach_aux(["layer2.0.conv2"])
        compiled.train(), eager.train()
        aux_eager = eager.net(images, with_aux=True)[1]["layer2.0.conv2"]
        aux_compiled = compiled.net(images, with_aux=True)[1]["layer2.0.conv2"]
        assert (aux_compiled - aux_eager).abs().max() <= COMPILE_ATOL
        aux_compiled.sum().backward()
        assert compiled.net.heads["layer2_0_conv2"][-1].weight.grad.abs().sum() > 0


def compiled_round_trip(tmp_path, isic2017_root, compile_option) -> None:
    """Compiled and eager logits agree; a compiled run's checkpoint loads into an eager module and an eager one
    into a compiled module, keys and values unchanged."""
    from dermlab.commands.trainer import build_cli

    images = one_batch()["image"]
    eager = classifier().eval()
    compiled = classifier(compile=compile_option).eval()
    assert compiled.net._compiled_call_impl is not None and eager.net._compiled_call_impl is None
    assert list(compiled.state_dict()) == list(eager.state_dict())  # no _orig_mod. prefix
    before = frames_compiled()
    with torch.no_grad():
        assert (compiled(images) - eager(images)).abs().max() <= COMPILE_ATOL
    assert frames_compiled() > before  # dynamo did compile the forward

    option = compile_option if isinstance(compile_option, bool) else str(compile_option).replace("'", "")
    cli = build_cli(tiny_args(isic2017_root, tmp_path / "run", "--model.init_args.compile", str(option).lower(),
                              "--trainer.max_steps", "2", "--trainer.limit_val_batches", "0"),
                    run=False)
    assert cli.model.net._compiled_call_impl is not None
    before = frames_compiled()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.global_step == 2 and frames_compiled() > before  # training ran the compiled net
    path = tmp_path / "compiled.ckpt"
    cli.trainer.save_checkpoint(path)

    reloaded = LesionClassifier.load_from_checkpoint(path, compile=False).eval()
    trained = cli.model.eval()
    assert reloaded.net._compiled_call_impl is None
    assert list(reloaded.state_dict()) == list(trained.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(), trained.state_dict().values(),
                                                  strict=True))
    with torch.no_grad():
        assert (reloaded(images) - trained(images)).abs().max() <= COMPILE_ATOL

    eager_path = tmp_path / "eager.ckpt"
    torch.save({"state_dict": reloaded.state_dict(), "hyper_parameters": dict(reloaded.hparams),
                "pytorch-lightning_version": lightning.__version__}, eager_path)
    recompiled = LesionClassifier.load_from_checkpoint(eager_path, compile=compile_option)
    assert recompiled.net._compiled_call_impl is not None
    assert all(torch.equal(a, b) for a, b in zip(recompiled.state_dict().values(), reloaded.state_dict().values(),
                                                  strict=True))


def test_compile_round_trip_aot_eager(tmp_path, isic2017_root):
    """The wiring with a backend that compiles no C++ (seconds): what inductor adds is its kernels."""
    compiled_round_trip(tmp_path, isic2017_root, {"backend": "aot_eager"})


@pytest.mark.slow
def test_compile_round_trip_inductor(tmp_path, isic2017_root):
    """``compile: true`` (TorchInductor, C++ kernels on the CPU): about a minute of compiling on 2 cores."""
    compiled_round_trip(tmp_path, isic2017_root, True)
