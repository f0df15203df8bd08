"""Training throughput of ResNet-50 at 224 px on one GPU: a bare PyTorch loop against ``dermlab fit``, beside a
public anchor (issue #20). Prepared for a lent GPU (one NVIDIA H200); ready, not yet run on a GPU.

Model: timm ``resnet50`` (stride on the 3×3 convolution of each downsampling block, i.e. ResNet-50 v1.5) from
random initialisation (speed does not depend on the weights), ``--classes`` outputs (default 2, the suite's
melanoma task; the head is < 0.1 % of the FLOPs). Optimiser everywhere: SGD, momentum 0.875, weight decay 1/32768,
lr 0.256 × batch / 256 (NVIDIA's recipe). Every variant runs bf16 autocast on a channels-last network and is timed
between the end of step ``--warmup`` and the end of step ``--warmup + --steps``, the device synchronised at both
ends, so compilation and cuDNN's autotuning fall in the warm-up. Images/s counts the images of the timed steps.

Variants (one row each):
  bare           the loop by hand: ``torch.autocast(bf16)``, channels-last net and batch, one synthetic batch
                 resident on the device (no input pipeline at all)
  bare+compile   the same with ``net.compile()``                                              (``--compile``)
  fit            ``dermlab fit`` (LightningCLI on experiments/demo_synthetic.yaml: its callbacks, CSV logger and
                 progress bar) with ``--trainer.precision bf16-mixed --model.init_args.channels_last true`` and
                 :class:`ResidentBatches`, the same kind of device-resident batch: only the training loop differs
  fit+compile    the same with ``--model.init_args.compile true``                            (``--compile``)
  fit+pipeline   ``dermlab fit`` on the ISIC 2017-layout JPEGs of ``--pipeline-root`` through the suite's own
                 pipeline (decoded from the filled preprocessing cache, albumentations, ``--workers`` DataLoader
                 workers); a synthetic set is written there first if the folder holds none   (``--pipeline-root``)
The ratio column divides by the bare loop of the same compile setting (fit+pipeline: by the eager bare loop).

Public anchor: 2,470 images/s, NVIDIA DeepLearningExamples, ResNet-50 v1.5 for PyTorch, "Training performance:
NVIDIA DGX A100 (8x A100 80GB)", 1 GPU, mixed precision (fp16 AMP), batch 256, pytorch-21.03 NGC container
(PyTorch/Classification/ConvNets/resnet50v1.5/README.md in github.com/NVIDIA/DeepLearningExamples). That was one
A100 with fp16 and a real ImageNet pipeline; this runs on the device given (an H200 where lent) with bf16 and
synthetic batches, so the ratio to it is a sanity check, not a comparison.

Only torch and timm are needed for the bare rows. The fit rows need the suite's dependencies (jsonargparse,
omegaconf, albumentations, ...); where one is missing the row says so and the others still run.

    python benchmarks/gpu_resnet50.py [--batch-size 256 --size 224 --warmup 15 --steps 50 --compile
                                       --pipeline-root data/bench/isic2017 --workers 16]
    python benchmarks/gpu_resnet50.py --device cpu --steps 3 --batch-size 4 --size 64     # CPU smoke test
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from results import Figure, record  # benchmarks/ is on sys.path when run as a script

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the lent machine has no editable install of the suite: import it from the copy

ANCHOR_IMAGES_PER_S = 2470.0
ANCHOR = ("NVIDIA ResNet-50 v1.5 (DeepLearningExamples, PyTorch): 2,470 images/s on one A100 80GB (DGX A100), "
          "fp16 AMP, batch 256, real ImageNet input")
SGD = {"momentum": 0.875, "weight_decay": 1 / 32768}  # and lr 0.256 per 256 images (sgd_options)


def sgd_options(batch_size: int) -> dict:
    """NVIDIA's recipe: lr 0.256 at batch 256, scaled linearly. (Unscaled, batch 4 on random labels drove the
    CPU smoke test's activations to denormal floats, which made its steps up to 30× slower.)"""
    return {"lr": 0.256 * batch_size / 256, **SGD}


@dataclass
class Result:
    variant: str
    images_per_s: float | None
    note: str = ""
    compiled: bool = False


# --- timing ---------------------------------------------------------------------------------------------------
def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Window:
    """Images and wall time between the end of step ``warmup`` and the end of step ``warmup + steps``."""

    def __init__(self, device: torch.device, warmup: int, steps: int):
        self.device, self.warmup, self.last = device, warmup, warmup + steps
        self.start, self.seconds, self.images = 0.0, 0.0, 0

    def step_done(self, step: int, images: int) -> None:
        """Call after each training step (``step`` counts from 1) with the images it trained on."""
        if step == self.warmup:
            synchronise(self.device)
            self.start = time.perf_counter()
        elif self.warmup < step <= self.last:
            self.images += images
            if step == self.last:
                synchronise(self.device)
                self.seconds = time.perf_counter() - self.start

    @property
    def images_per_s(self) -> float:
        if not self.seconds:
            raise RuntimeError(f"the timed window (steps {self.warmup + 1}–{self.last}) was not reached")
        return self.images / self.seconds


# --- the bare loop --------------------------------------------------------------------------------------------
def bare_loop(args, device: torch.device, compile: bool) -> float:
    """Images/s of a hand-written training loop: bf16 autocast, channels-last, device-resident batch."""
    torch.manual_seed(0)
    net = timm.create_model(args.arch, pretrained=False, num_classes=args.classes)
    net = net.to(device, memory_format=torch.channels_last).train()
    if compile:
        net.compile()
    optimizer = torch.optim.SGD(net.parameters(), **sgd_options(args.batch_size))
    generator = torch.Generator().manual_seed(0)  # the batch of benchmarks/resident_data.py (the fit rows')
    images = torch.randn(args.batch_size, 3, args.size, args.size, generator=generator).to(device)
    labels = torch.randint(0, args.classes, (args.batch_size,), generator=generator).to(device)
    images = images.contiguous(memory_format=torch.channels_last)
    window = Window(device, args.warmup, args.steps)
    for step in range(1, window.last + 1):
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = F.cross_entropy(net(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        window.step_done(step, len(images))
    return window.images_per_s


# --- dermlab fit ----------------------------------------------------------------------------------------------
def fit_arguments(args, device: torch.device, compile: bool) -> list[str]:
    """The ``dermlab fit`` arguments every fit row shares: the demo config, ResNet-50, bf16-mixed, channels_last."""
    return ["-c", str(REPO / "experiments" / "demo_synthetic.yaml"),
            "--model.init_args.backbone", args.arch, "--model.init_args.pretrained_weights", "null",
            "--model.init_args.channels_last", "true", "--model.init_args.compile", str(compile).lower(),
            "--model.init_args.optimizer",
            json.dumps({"class_path": "torch.optim.SGD", "init_args": sgd_options(args.batch_size)}),
            "--model.init_args.scheduler", "null",
            "--trainer.accelerator", "gpu" if device.type == "cuda" else "cpu", "--trainer.devices", "1",
            "--trainer.precision", "bf16-mixed", "--trainer.benchmark", str(device.type == "cuda").lower(),
            "--trainer.max_steps", str(args.warmup + args.steps), "--trainer.max_epochs", "-1",
            "--trainer.limit_val_batches", "0", "--trainer.enable_model_summary", "false",
            "--trainer.default_root_dir", str(args.run_dir), "--run.wandb", "disabled"]


def fit_run(args, device: torch.device, compile: bool, data: list[str]) -> float:
    """Images/s of ``dermlab fit`` (LightningCLI, not run: built, then ``trainer.fit`` with a step timer)."""
    import lightning.pytorch as L

    from dermlab.commands.trainer import build_cli

    window = Window(device, args.warmup, args.steps)

    class StepTimer(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            window.step_done(trainer.global_step, len(batch["label"]))

    cli = build_cli(fit_arguments(args, device, compile) + data, run=False)
    cli.trainer.callbacks.append(StepTimer())
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return window.images_per_s


def resident_data(args) -> list[str]:
    """:class:`resident_data.ResidentBatches` in place of the demo's data: ``warmup + steps`` steps in one epoch."""
    from resident_data import ResidentBatches  # benchmarks/ is on the path when this file runs as a script

    init = {"image_size": args.size, "batch_size": args.batch_size, "classes": args.classes,
            "steps": args.warmup + args.steps}
    return ["--data", json.dumps({"class_path": f"{ResidentBatches.__module__}.ResidentBatches", "init_args": init})]


def pipeline_data(args) -> list[str]:
    """The suite's ISIC 2017 datamodule on ``--pipeline-root`` (written as a synthetic set if it holds none), its
    preprocessing cache filled beforehand so the timed steps decode cached copies."""
    import pandas as pd

    from datamodules.cache import prepare_cache
    from datamodules.synthetic import ensure_synthetic

    root = Path(args.pipeline_root)
    if not (root / "ISIC-2017_Training_Part3_GroundTruth.csv").is_file():
        print(f"writing a synthetic ISIC 2017 set ({args.pipeline_images} training images, {args.pipeline_side} px) "
              f"to {root} ...", flush=True)
        ensure_synthetic("isic2017", root, n=args.pipeline_images, size=args.pipeline_side, seed=0)
    prepare_cache("isic2017", str(root), args.max_side, args.cache_dir, args.workers)
    # train_repeats: each image goes through the random pipeline several times per epoch, so that one epoch holds
    # every step of the run (no epoch end, checkpoint or worker restart inside the timed window)
    images = len(pd.read_csv(root / "ISIC-2017_Training_Part3_GroundTruth.csv"))
    repeats = math.ceil((args.warmup + args.steps + 1) * args.batch_size / images)
    return ["--data.init_args.root", str(root), "--data.init_args.image_size", str(args.size),
            "--data.init_args.batch_size", str(args.batch_size), "--data.init_args.num_workers", str(args.workers),
            "--data.init_args.max_side", str(args.max_side), "--data.init_args.train_repeats", str(repeats),
            "--data.init_args.audit_pixels", "false"] + (
        ["--data.init_args.cache_dir", args.cache_dir] if args.cache_dir else [])


# --- the table --------------------------------------------------------------------------------------------------
def measured(name: str, run: Callable[[], float], compiled: bool, device: torch.device) -> Result:
    """Run one variant; a missing dependency or a failure becomes the row's note instead of stopping the table."""
    print(f"--- {name} ...", flush=True)
    try:
        result = Result(name, run(), compiled=compiled)
    except ModuleNotFoundError as error:
        result = Result(name, None, f"skipped: {error} (carry the suite's wheels; see README)", compiled)
    except Exception as error:  # noqa: BLE001  (one broken variant must not hide the others' numbers)
        result = Result(name, None, f"failed: {type(error).__name__}: {str(error).splitlines()[0][:160]}", compiled)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    torch._dynamo.reset()  # each compiled variant compiles from scratch, as a fresh run would
    return result


def table(results: list[Result], device_name: str, args) -> str:
    """One row per variant: images/s, ratio to the bare loop of the same compile setting, ratio to the anchor."""
    bare = {r.compiled: r.images_per_s for r in results if r.variant.startswith("bare")}
    lines = [f"timm {args.arch} (random init) training, {args.size} px, batch {args.batch_size}, bf16 "
             f"autocast, channels_last, {args.steps} timed steps after {args.warmup} warm-up steps",
             f"device: {device_name}",
             f"{'variant':<14} | {'images/s':>9} | {'÷ bare':>7} | {'÷ anchor':>8} | note",
             f"{'-' * 14}-+-{'-' * 9}-+-{'-' * 7}-+-{'-' * 8}-+-----"]
    for r in results:
        if r.images_per_s is None:
            lines.append(f"{r.variant:<14} | {'-':>9} | {'-':>7} | {'-':>8} | {r.note}")
            continue
        reference = bare.get(r.compiled) or bare.get(False)
        ratio = f"{r.images_per_s / reference:7.3f}" if reference else f"{'-':>7}"
        lines.append(f"{r.variant:<14} | {r.images_per_s:9.1f} | {ratio} | "
                     f"{r.images_per_s / ANCHOR_IMAGES_PER_S:8.3f} | {r.note}")
    lines.append(f"anchor: {ANCHOR}. The anchor is an A100 with fp16; this device is {device_name} with bf16 and "
                 "synthetic batches: the ratio to it is only a sanity check.")
    return "\n".join(lines)


def figures(results: list[Result]) -> list[Figure]:
    """The table's measured rows as figures: images/s, ratio to the bare loop, ratio to the anchor."""
    bare = {r.compiled: r.images_per_s for r in results if r.variant.startswith("bare")}
    out = []
    for r in results:
        if r.images_per_s is None:
            continue
        out.append(Figure(r.variant, r.images_per_s, "images/s"))
        reference = bare.get(r.compiled) or bare.get(False)
        if reference and not r.variant.startswith("bare"):
            out.append(Figure(f"{r.variant} / bare", r.images_per_s / reference, "ratio",
                              ratio_of=f"{r.variant} / {'bare+compile' if r.compiled and bare.get(True) else 'bare'} "
                                       "images/s"))
        out.append(Figure(f"{r.variant} / anchor", r.images_per_s / ANCHOR_IMAGES_PER_S, "ratio",
                          ratio_of=f"{r.variant} images/s / NVIDIA's 2,470 images/s (one A100, fp16 AMP, batch 256, "
                                   "real input): a sanity check"))
    return out


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    capability = torch.backends.cpu.get_cpu_capability()
    threads = torch.get_num_threads()
    return f"CPU, {threads} thread{'s' if threads > 1 else ''}, {capability}, torch {torch.__version__}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (smoke test)")
    parser.add_argument("--arch", default="resnet50",
                        help="timm model (the anchor is ResNet-50; another only to smoke-test the script quickly)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--size", type=int, default=224, help="image side in pixels")
    parser.add_argument("--classes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=50, help="timed steps")
    parser.add_argument("--warmup", type=int, default=None,
                        help="steps before timing (default 15 on a GPU, 3 on a CPU)")
    parser.add_argument("--compile", action="store_true", help="also the torch.compile rows (minutes of compiling)")
    parser.add_argument("--no-fit", action="store_true", help="only the bare rows")
    parser.add_argument("--pipeline-root", default=None,
                        help="also time dermlab fit on this ISIC 2017-layout folder (a synthetic set is written there "
                             "if it holds none)")
    parser.add_argument("--pipeline-images", type=int, default=256, help="training images of that synthetic set")
    parser.add_argument("--pipeline-side", type=int, default=256, help="image side of that synthetic set, pixels")
    parser.add_argument("--max-side", type=int, default=256, help="preprocessing cache: longer side of the copies")
    parser.add_argument("--cache-dir", default=None, help="preprocessing cache folder (default ~/.cache/dermlab)")
    parser.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1), help="DataLoader workers")
    parser.add_argument("--run-dir", default="runs/bench-gpu", help="the fit rows' run folder")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no GPU; use --device cpu for the smoke test")
    args.warmup = args.warmup if args.warmup is not None else (15 if device.type == "cuda" else 3)
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1 (the timer starts at the end of a warm-up step)")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # the fit rows set the same with --trainer.benchmark true
    else:  # the smoke test: a random-init ResNet-50 in bf16 makes denormal floats, whose slow path made CPU steps
        torch.set_flush_denormal(True)  # up to 30× slower; flushing held in the fit rows' steps only with one
        torch.set_num_threads(1)        # thread (with two, they stayed ~8 s per step while the bare loop took 0.2 s)
    os.environ.setdefault("WANDB_MODE", "disabled")

    variants: list[tuple[str, Callable[[], float], bool]] = [("bare", lambda: bare_loop(args, device, False), False)]
    if not args.no_fit:
        variants.append(("fit", lambda: fit_run(args, device, False, resident_data(args)), False))
    if args.compile:
        variants.append(("bare+compile", lambda: bare_loop(args, device, True), True))
        if not args.no_fit:
            variants.append(("fit+compile", lambda: fit_run(args, device, True, resident_data(args)), True))
    if args.pipeline_root and not args.no_fit:
        variants.append(("fit+pipeline", lambda: fit_run(args, device, False, pipeline_data(args)), False))
    results = [measured(name, run, compiled, device) for name, run, compiled in variants]
    print(table(results, device_description(device), args), flush=True)
    if device.type == "cuda":  # the CPU smoke test checks the wiring: its numbers are not recorded
        record("gpu_resnet50", figures(results), setting=f"timm {args.arch} (random init), {args.size} px, batch "
               f"{args.batch_size}, bf16 autocast, channels_last, CUDA {torch.version.cuda}")
    else:
        print("CPU smoke test: nothing recorded in benchmarks/results/")
    if any(r.images_per_s is None for r in results):
        sys.exit(1)  # the table above says which row and why


if __name__ == "__main__":
    main()
