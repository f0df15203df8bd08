"""Throughput of ``dermlab fit`` (Lightning) vs a bare PyTorch loop: same model, data and steps.

Both loops train the demo's ResNet-18 on the synthetic ISIC 2017 set through the same
DataLoader settings and record the wall time of every step (batch loading included) after
``--warmup`` steps; the runs alternate (bare, Lightning, Lightning, bare, bare, ...) so drift in machine load hits both
and neither always runs first.

Two ratios Lightning / bare are printed (goal: >= 0.97):

* **whole-window**: images / wall time between the warm-up and the last step, median over runs: what a
  user sees, and at the mercy of whatever else the machine does during the window;
* **per-step**: from the median step time of each loop (pooled over its runs) plus the median extra cost
  of an epoch boundary (Lightning's epoch-end hooks, logging, the scheduler, a new loader iterator),
  weighed for one epoch. Medians ignore the bursts of load that other processes put on a shared machine,
  so this ratio is the stable measure of what Lightning itself costs.

    python benchmarks/lightning_vs_bare.py [--steps 60 --warmup 10 --repeats 2 --size 64]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from lightning.pytorch.plugins.io import AsyncCheckpointIO, TorchCheckpointIO
from results import Figure, record  # benchmarks/ is on sys.path when run as a script

from datamodules import ISIC2017DataModule
from datamodules.synthetic import ensure_synthetic
from dermlab.commands.trainer import build_cli
from dermlab.runtime.resources import keep_freed_memory
from lightning_modules.nets.backbone import create_backbone


@dataclass
class StepTimes:
    """Wall time of each timed step (s) and whether it opened an epoch (after the first timed one)."""

    seconds: list[float] = field(default_factory=list)
    opens_epoch: list[bool] = field(default_factory=list)
    steps_per_epoch: int = 0
    last: float = 0.0

    def mark(self, step: int, batch_index: int, warmup: int) -> None:
        """Call at the end of every step (``step`` counted from 1); records steps after ``warmup``."""
        now = time.perf_counter()
        if step > warmup:
            self.seconds.append(now - self.last)
            self.opens_epoch.append(batch_index == 0)
        self.last = now

    def rate(self, batch_size: int) -> float:
        """Images/s over the whole timed window."""
        return batch_size * len(self.seconds) / sum(self.seconds)


class StepTimer(L.Callback):
    """Records every step's wall time into ``times`` once ``warmup`` steps are done."""

    def __init__(self, warmup: int):
        self.warmup, self.times = warmup, StepTimes()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.times.mark(trainer.global_step, batch_idx, self.warmup)
        self.times.steps_per_epoch = trainer.num_training_batches


def lightning_run(args) -> tuple[StepTimes, tuple[float, float]]:
    """(step times of ``dermlab fit`` without the per-epoch ``last.ckpt``, (seconds one checkpoint save takes,
    seconds training waits for it with asynchronous saving)).

    The bare loop saves nothing, so the timed loop leaves the checkpoint callback out and its cost is measured
    on its own: on the 600-image synthetic set an epoch is only 19 steps, where saving would weigh far more than
    in a real epoch."""
    timer = StepTimer(args.warmup)
    cli = build_cli(["-c", "experiments/demo_synthetic.yaml", "--data.init_args.root", args.root,
                     "--data.init_args.image_size", str(args.size), "--trainer.max_steps", str(args.steps),
                     "--trainer.max_epochs", "-1", "--trainer.limit_val_batches", "0", "--run.wandb", "disabled",
                     "--trainer.default_root_dir", "runs/bench", "--trainer.enable_model_summary", "false",
                     "--data.init_args.batch_size", str(args.batch_size)],
                    run=False)
    dropped = (ModelCheckpoint, *((ProgressBar,) if args.no_progress_bar else ()))
    cli.trainer.callbacks[:] = [c for c in cli.trainer.callbacks if not isinstance(c, dropped)]
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        cli.trainer.save_checkpoint(Path(folder) / "last.ckpt")
        saving = time.perf_counter() - start
        # the same save through Lightning's AsyncCheckpointIO (experiments/base/trainer/async_checkpoint.yaml):
        # training waits only for the copy of the tensors; the file is written by a background thread
        strategy = cli.trainer.strategy
        synchronous, strategy.checkpoint_io = strategy.checkpoint_io, AsyncCheckpointIO(TorchCheckpointIO())
        start = time.perf_counter()
        cli.trainer.save_checkpoint(Path(folder) / "async.ckpt")
        blocking = time.perf_counter() - start
        strategy.checkpoint_io.teardown()  # waits for the write
        strategy.checkpoint_io = synchronous
    return timer.times, (saving, blocking)


def bare_run(args) -> StepTimes:
    torch.manual_seed(0)
    data = ISIC2017DataModule(args.root, image_size=args.size, batch_size=args.batch_size)  # workers: the default
    data.setup("fit")
    model = create_backbone("resnet18", data.num_classes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loader = data.train_dataloader()
    model.train()
    times, step = StepTimes(steps_per_epoch=len(loader)), 0
    while step < args.steps:
        for index, batch in enumerate(loader):
            loss = F.cross_entropy(model(batch["image"]), batch["label"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            times.mark(step, index, args.warmup)
            if step == args.steps:
                break
    return times


def per_step_cost(runs: list[StepTimes]) -> tuple[float, float]:
    """(median seconds of a step inside an epoch, median extra seconds of a step that opens an epoch)."""
    inside = [s for run in runs for s, first in zip(run.seconds, run.opens_epoch, strict=True) if not first]
    opening = [s for run in runs for s, first in zip(run.seconds, run.opens_epoch, strict=True) if first]
    step = statistics.median(inside)
    return step, (statistics.median(opening) - step) if opening else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data/synthetic/isic2017")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)  # the demo config's batch size
    parser.add_argument("--no-progress-bar", action="store_true",
                        help="diagnostic: dermlab fit without its rich progress bar")
    args = parser.parse_args()
    ensure_synthetic("isic2017", args.root, n=600, size=64, seed=0)
    keep_freed_memory()  # what `dermlab fit` sets (process-wide): both loops run with it
    torch.set_flush_denormal(True)  # likewise (--run.flush_denormal)
    bare, lightning, saving = [], [], []
    for repeat in range(args.repeats):
        if repeat % 2:  # every other pair starts with Lightning: neither side always runs first
            times, seconds = lightning_run(args)
            bare.append(bare_run(args))
        else:
            bare.append(bare_run(args))
            times, seconds = lightning_run(args)
        lightning.append(times)
        saving.append(seconds)
    n = args.batch_size
    b = statistics.median(run.rate(n) for run in bare)
    lt = statistics.median(run.rate(n) for run in lightning)
    print(f"bare PyTorch loop : {b:8.1f} images/s  (runs: {', '.join(f'{r.rate(n):.1f}' for r in bare)})")
    print(f"dermlab fit       : {lt:8.1f} images/s  (runs: {', '.join(f'{r.rate(n):.1f}' for r in lightning)})")
    print(f"whole-window ratio Lightning/bare = {lt / b:.3f}  ({args.steps - args.warmup} timed steps of {n} "
          f"images at {args.size} px, {torch.get_num_threads()} threads, {args.repeats} runs each)")
    steps_per_epoch = bare[0].steps_per_epoch
    assert steps_per_epoch == lightning[0].steps_per_epoch, "the two loops must see the same epochs"
    bare_step, bare_boundary = per_step_cost(bare)
    lit_step, lit_boundary = per_step_cost(lightning)
    bare_epoch = steps_per_epoch * bare_step + bare_boundary
    lit_epoch = steps_per_epoch * lit_step + lit_boundary
    print(f"per-step: median step {bare_step * 1e3:.1f} ms bare, {lit_step * 1e3:.1f} ms dermlab fit "
          f"(ratio {bare_step / lit_step:.3f}); epoch boundary +{bare_boundary * 1e3:.0f} ms bare, "
          f"+{lit_boundary * 1e3:.0f} ms dermlab fit")
    print(f"per-step ratio Lightning/bare over a {steps_per_epoch}-step epoch = {bare_epoch / lit_epoch:.3f}")
    pairs = []
    for bare_run_times, lit_run_times in zip(bare, lightning, strict=True):
        (b_step, b_boundary), (l_step, l_boundary) = per_step_cost([bare_run_times]), per_step_cost([lit_run_times])
        pairs.append((steps_per_epoch * b_step + b_boundary) / (steps_per_epoch * l_step + l_boundary))
    print(f"per-step ratio of each run pair: {', '.join(f'{r:.3f}' for r in pairs)} (min {min(pairs):.3f})")
    save = statistics.median(seconds for seconds, _ in saving)
    wait = statistics.median(blocking for _, blocking in saving)
    print(f"saving last.ckpt (every epoch): {save:.2f} s, {save / (lit_epoch + save):.1%} of this synthetic epoch "
          f"({lit_epoch:.1f} s); per-step ratio with it = {bare_epoch / (lit_epoch + save):.3f}")
    print(f"asynchronous saving (AsyncCheckpointIO): training waits {wait:.3f} s; per-step ratio with it = "
          f"{bare_epoch / (lit_epoch + wait):.3f} (the write then shares the CPU with training)")
    setting = f"{args.size} px, batch {n}, {torch.get_num_threads()} threads" + (
        ", no progress bar" if args.no_progress_bar else "")
    figures = [Figure("bare PyTorch loop", b, "images/s"), Figure("dermlab fit", lt, "images/s"),
               Figure("whole-window ratio", lt / b, "ratio",
                      ratio_of=f"dermlab fit / bare images/s over the timed window of {args.steps - args.warmup} "
                               f"steps (median of {args.repeats} runs)"),
               Figure("median step, bare", 1e3 * bare_step, "ms"),
               Figure("median step, dermlab fit", 1e3 * lit_step, "ms"),
               Figure("epoch boundary extra, bare", 1e3 * bare_boundary, "ms"),
               Figure("epoch boundary extra, dermlab fit", 1e3 * lit_boundary, "ms"),
               Figure("per-step ratio (pooled)", bare_epoch / lit_epoch, "ratio",
                      ratio_of=f"dermlab fit / bare throughput over a {steps_per_epoch}-step epoch, "
                               "from median step times (all runs pooled)"),
               *(Figure(f"per-step ratio, run pair {i}", r, "ratio", ratio_of="the same, one run pair")
                 for i, r in enumerate(pairs, 1)),
               Figure("saving last.ckpt", save, "s"),
               Figure("per-step ratio with last.ckpt", bare_epoch / (lit_epoch + save), "ratio",
                      ratio_of="per-step ratio, dermlab fit saving last.ckpt every epoch"),
               Figure("training waits for an asynchronous save", wait, "s"),
               Figure("per-step ratio with asynchronous last.ckpt", bare_epoch / (lit_epoch + wait), "ratio",
                      ratio_of="per-step ratio, dermlab fit saving last.ckpt with AsyncCheckpointIO")]
    record("lightning_vs_bare", figures, setting=setting)


if __name__ == "__main__":
    main()
