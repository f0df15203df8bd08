"""Throughput of ``dermlab fit`` (Lightning) vs a bare PyTorch loop: same model, data and steps.

Both loops train the demo's ResNet-18 on the synthetic ISIC 2017 set through the same
DataLoader settings; each is timed between step ``--warmup`` and step ``--steps`` (so start-up,
worker spawn and the first slow iterations are excluded) and the runs alternate
(bare, Lightning, bare, Lightning, ...) so drift in machine load hits both. Prints the median
images/s of each and the ratio Lightning / bare (goal: >= 0.97).

    python benchmarks/lightning_vs_bare.py [--steps 60 --warmup 10 --repeats 2 --size 64]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint

from datamodules import ISIC2017DataModule
from datamodules.synthetic import ensure_synthetic
from dermlab.cli import build_cli
from dermlab.resources import keep_freed_memory
from lightning_modules.nets.backbone import create_backbone


class StepTimer(L.Callback):
    """Wall time between the end of step ``warmup`` and the end of step ``steps``."""

    def __init__(self, warmup: int, steps: int):
        self.warmup, self.steps, self.start, self.elapsed = warmup, steps, 0.0, 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()
        elif trainer.global_step == self.steps:
            self.elapsed = time.perf_counter() - self.start


def lightning_run(args) -> tuple[float, float]:
    """(images/s of ``dermlab fit`` without the per-epoch ``last.ckpt``, seconds one checkpoint save takes).

    The bare loop saves nothing, so the timed loop leaves the checkpoint callback out and its cost is measured
    on its own: on the 600-image synthetic set an epoch is only 19 steps, where saving would weigh far more than
    in a real epoch."""
    timer = StepTimer(args.warmup, args.steps)
    cli = build_cli(["-c", "experiments/demo_synthetic.yaml", "--data.init_args.root", args.root,
                     "--data.init_args.image_size", str(args.size), "--trainer.max_steps", str(args.steps),
                     "--trainer.max_epochs", "-1", "--trainer.limit_val_batches", "0", "--run.wandb", "disabled",
                     "--trainer.default_root_dir", "runs/bench", "--trainer.enable_model_summary", "false",
                     "--data.init_args.batch_size", str(args.batch_size)],
                    run=False)
    cli.trainer.callbacks[:] = [c for c in cli.trainer.callbacks if not isinstance(c, ModelCheckpoint)]
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        cli.trainer.save_checkpoint(Path(folder) / "last.ckpt")
        saving = time.perf_counter() - start
    return args.batch_size * (args.steps - args.warmup) / timer.elapsed, saving


def bare_run(args) -> float:
    torch.manual_seed(0)
    data = ISIC2017DataModule(args.root, image_size=args.size, batch_size=args.batch_size)  # workers: the default
    data.setup("fit")
    model = create_backbone("resnet18", data.num_classes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loader = data.train_dataloader()
    model.train()
    step, start = 0, 0.0
    while step < args.steps:
        for batch in loader:
            loss = F.cross_entropy(model(batch["image"]), batch["label"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if step == args.warmup:
                start = time.perf_counter()
            if step == args.steps:
                break
    return args.batch_size * (args.steps - args.warmup) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data/synthetic/isic2017")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)  # the demo config's batch size
    args = parser.parse_args()
    ensure_synthetic("isic2017", args.root, n=600, size=64, seed=0)
    keep_freed_memory()  # what `dermlab fit` sets (process-wide): both loops run with it
    torch.set_flush_denormal(True)  # likewise (--run.flush_denormal)
    bare, lightning, saving = [], [], []
    for _ in range(args.repeats):
        bare.append(bare_run(args))
        rate, seconds = lightning_run(args)
        lightning.append(rate)
        saving.append(seconds)
    b, lt = statistics.median(bare), statistics.median(lightning)
    print(f"bare PyTorch loop : {b:8.1f} images/s  (runs: {', '.join(f'{x:.1f}' for x in bare)})")
    print(f"dermlab fit       : {lt:8.1f} images/s  (runs: {', '.join(f'{x:.1f}' for x in lightning)})")
    print(f"ratio Lightning/bare = {lt / b:.3f}  ({args.steps - args.warmup} timed steps of {args.batch_size} "
          f"images at {args.size} px, {torch.get_num_threads()} threads)")
    epoch = 600 / lt  # seconds of one epoch of the synthetic set through dermlab fit
    save = statistics.median(saving)
    print(f"saving last.ckpt (every epoch): {save:.2f} s, {save / epoch:.1%} of this 600-image epoch "
          f"({epoch:.1f} s); ratio with it = {epoch / (epoch + save) * lt / b:.3f}")


if __name__ == "__main__":
    main()
