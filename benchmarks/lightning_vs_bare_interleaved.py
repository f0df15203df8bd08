"""``dermlab fit`` against a bare PyTorch loop, step by step in one process: drift cannot favour either side.

`lightning_vs_bare.py` times the two loops in separate runs, so a shared machine's slow minutes land on one side.
Here a callback at the end of every ``dermlab fit`` training step runs one step of a bare loop (its own ResNet-18,
AdamW and DataLoader over the same synthetic set and settings), so the two alternate every few hundred
milliseconds. A Lightning step is the wall time from the end of the bare step to the end of the next Lightning
step (batch fetch, training step, optimiser, every callback hook, epoch ends); a bare step is its own wall time
(batch fetch, forward, backward, AdamW, a new iterator at its epoch ends). Threads the process runs besides the
main one (a progress bar's redraws) slow both sides alike and are not seen here.

Prints the ratio Lightning / bare in images/s over all timed steps, of the median steps, and per block of
``--block`` consecutive steps (goal: >= 0.97 in every block).

    python benchmarks/lightning_vs_bare_interleaved.py [--steps 130 --warmup 10 --block 20 --size 64]
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from results import Figure, record  # benchmarks/ is on sys.path when run as a script

from datamodules import ISIC2017DataModule
from datamodules.synthetic import ensure_synthetic
from dermlab.commands.trainer import build_cli
from lightning_modules.nets.backbone import create_backbone


class BareLoop:
    """A bare PyTorch training loop advanced one step at a time."""

    def __init__(self, root: str, size: int, batch_size: int):
        torch.manual_seed(0)
        data = ISIC2017DataModule(root, image_size=size, batch_size=batch_size)  # workers: the suite's default
        data.setup("fit")
        self.model = create_backbone("resnet18", data.num_classes).train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3, weight_decay=1e-4)
        self.loader = data.train_dataloader()
        self.batches = iter(self.loader)

    def step(self) -> float:
        """Seconds one training step takes, its batch fetch included."""
        start = time.perf_counter()
        try:
            batch = next(self.batches)
        except StopIteration:  # an epoch ended: a new iterator, as a `for` loop over the loader makes
            self.batches = iter(self.loader)
            batch = next(self.batches)
        loss = F.cross_entropy(self.model(batch["image"]), batch["label"])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return time.perf_counter() - start


class Interleave(L.Callback):
    """After every Lightning training step, one bare step; records both durations after ``warmup`` steps."""

    def __init__(self, bare: BareLoop, warmup: int):
        self.bare, self.warmup = bare, warmup
        self.lightning_seconds: list[float] = []
        self.bare_seconds: list[float] = []
        self.resumed: float | None = None  # when the last bare step ended and Lightning took over

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        ended = time.perf_counter()
        timed = trainer.global_step > self.warmup
        if timed and self.resumed is not None:
            self.lightning_seconds.append(ended - self.resumed)
        bare = self.bare.step()
        if timed:
            self.bare_seconds.append(bare)
        self.resumed = time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data/synthetic/isic2017")
    parser.add_argument("--steps", type=int, default=130)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--block", type=int, default=20, help="steps per block of the per-block ratios")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)  # the demo config's batch size
    args = parser.parse_args()
    ensure_synthetic("isic2017", args.root, n=600, size=64, seed=0)
    cli = build_cli(["-c", "experiments/demo_synthetic.yaml", "--data.init_args.root", args.root,
                     "--data.init_args.image_size", str(args.size), "--trainer.max_steps", str(args.steps),
                     "--trainer.max_epochs", "-1", "--trainer.limit_val_batches", "0", "--run.wandb", "disabled",
                     "--trainer.default_root_dir", "runs/bench", "--trainer.enable_model_summary", "false",
                     "--data.init_args.batch_size", str(args.batch_size)],
                    run=False)  # the CLI sets the suite's process settings (freed memory, denormals) for both
    # the bare loop saves nothing: the per-epoch last.ckpt is left out (lightning_vs_bare.py prints its cost)
    cli.trainer.callbacks[:] = [c for c in cli.trainer.callbacks if not isinstance(c, ModelCheckpoint)]
    interleave = Interleave(BareLoop(args.root, args.size, args.batch_size), args.warmup)
    cli.trainer.callbacks.append(interleave)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)

    lit, bare = interleave.lightning_seconds, interleave.bare_seconds[:len(interleave.lightning_seconds)]
    blocks = [sum(bare[i:i + args.block]) / sum(lit[i:i + args.block]) for i in range(0, len(lit), args.block)]
    print(f"interleaved, {len(lit)} timed steps of {args.batch_size} images at {args.size} px, "
          f"{torch.get_num_threads()} threads")
    print(f"bare PyTorch loop : {args.batch_size * len(bare) / sum(bare):8.1f} images/s  "
          f"(median step {statistics.median(bare) * 1e3:.1f} ms)")
    print(f"dermlab fit       : {args.batch_size * len(lit) / sum(lit):8.1f} images/s  "
          f"(median step {statistics.median(lit) * 1e3:.1f} ms)")
    print(f"ratio Lightning/bare = {sum(bare) / sum(lit):.3f} over all steps, "
          f"{statistics.median(bare) / statistics.median(lit):.3f} of the median steps")
    print(f"per block of {args.block} steps: {', '.join(f'{r:.3f}' for r in blocks)} (min {min(blocks):.3f})")
    record("lightning_vs_bare_interleaved", [
        Figure("bare PyTorch loop", args.batch_size * len(bare) / sum(bare), "images/s"),
        Figure("dermlab fit", args.batch_size * len(lit) / sum(lit), "images/s"),
        Figure("median step, bare", 1e3 * statistics.median(bare), "ms"),
        Figure("median step, dermlab fit", 1e3 * statistics.median(lit), "ms"),
        Figure("ratio over all steps", sum(bare) / sum(lit), "ratio",
               ratio_of=f"dermlab fit / bare images/s over {len(lit)} interleaved steps"),
        Figure("ratio of the median steps", statistics.median(bare) / statistics.median(lit), "ratio",
               ratio_of="dermlab fit / bare throughput, from the median step times"),
        *(Figure(f"ratio, block {i}", r, "ratio", ratio_of=f"dermlab fit / bare images/s over steps "
                 f"{(i - 1) * args.block + 1}–{min(i * args.block, len(lit))}")
          for i, r in enumerate(blocks, 1))],
        setting=f"{args.size} px, batch {args.batch_size}, {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
