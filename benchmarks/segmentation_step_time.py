"""Training step time of SegAN vs the DeepLabV3+ baseline (``isic2018`` paper 002 §1), side by side.

A SegAN step is a critic step (segmentor forward without gradients, two critic passes, backward) followed by a
segmentor step (segmentor forward, two critic passes, backward through both); the DeepLabV3+ step is one
forward / backward with pixel-wise cross-entropy. Both run their real ``training_step`` in a Lightning Trainer
on the same random batch; the two models take turns in rounds of a few steps so machine drift hits both alike.
The first step of every round is not timed. Prints the median step times and their ratio.

Defaults are the paper's networks (SE-VGG19-BN U-Net + critic of width 64; DeepLabV3+ on ResNet-101) at the
paper's 224 px crops, with a batch of 4 instead of 25 so that a CPU finishes in minutes. The SegAN segmentor
trained alone with cross-entropy ("U-Net (CE)") is timed too, to separate the adversarial overhead.

    python benchmarks/segmentation_step_time.py [--size 224 --batch 4 --rounds 3 --steps 3 --threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import lightning.pytorch as L
import torch
from results import Figure, record  # benchmarks/ is on sys.path when run as a script

from lightning_modules.segmentation import LesionSegmenter, SegAN


class StepTimer(L.Callback):
    def __init__(self):
        self.times: list[float] = []

    def on_train_start(self, trainer, module):
        self.first = True

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if not self.first:  # the first step of a round warms caches up
            self.times.append(time.perf_counter() - self.start)
        self.first = False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per model and round (plus one untimed)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--segan-encoder", default="vgg19_bn")
    parser.add_argument("--critic-width", type=int, default=64)
    parser.add_argument("--deeplab-encoder", default="resnet101")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    batch = {"image": torch.randn(args.batch, 3, args.size, args.size),
             "mask": (torch.rand(args.batch, 1, args.size, args.size) > 0.5).float()}
    samples = [{k: v[i] for k, v in batch.items()} for i in range(args.batch)] * (args.steps + 1)
    loader = torch.utils.data.DataLoader(samples, batch_size=args.batch)  # steps + 1 identical batches
    models = {"SegAN": SegAN(encoder=args.segan_encoder, critic_width=args.critic_width, freeze_encoder_epochs=0),
              "U-Net (CE)": LesionSegmenter("unet", args.segan_encoder, se_blocks=True),
              "DeepLabV3+": LesionSegmenter("deeplabv3plus", args.deeplab_encoder)}
    timers = {name: StepTimer() for name in models}
    for _ in range(args.rounds):
        for name, module in models.items():
            trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False,
                                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                                callbacks=[timers[name]], limit_val_batches=0)
            trainer.fit(module, loader)
    medians = {name: statistics.median(timer.times) for name, timer in timers.items()}
    params = {name: sum(p.numel() for p in module.parameters()) for name, module in models.items()}
    for name in models:
        runs = ", ".join(f"{t:.2f}" for t in timers[name].times)
        print(f"{name:11s}: {medians[name]:6.2f} s/step  (runs: {runs}), {params[name]:,} parameters")
    print(f"step-time ratio SegAN / DeepLabV3+ = {medians['SegAN'] / medians['DeepLabV3+']:.2f}, "
          f"SegAN / its segmentor alone with cross-entropy = {medians['SegAN'] / medians['U-Net (CE)']:.2f}  "
          f"({args.segan_encoder} U-Net + critic width {args.critic_width} vs {args.deeplab_encoder} DeepLabV3+, "
          f"batch {args.batch} of {args.size} px, {args.threads} threads, {len(timers['SegAN'].times)} timed steps "
          "each)")
    record("segmentation_step_time", [
        *(Figure(f"{name} step", medians[name], "s") for name in models),
        Figure("step-time ratio, SegAN / DeepLabV3+", medians["SegAN"] / medians["DeepLabV3+"], "ratio",
               ratio_of="SegAN / DeepLabV3+ median training step time"),
        Figure("step-time ratio, SegAN / its segmentor alone", medians["SegAN"] / medians["U-Net (CE)"], "ratio",
               ratio_of="SegAN / U-Net (CE) median training step time"),
        *(Figure(f"{name} parameters", params[name], "parameters") for name in models)],
        setting=f"{args.segan_encoder} U-Net + critic width {args.critic_width} vs {args.deeplab_encoder} "
                f"DeepLabV3+, batch {args.batch} of {args.size} px, {args.threads} threads")


if __name__ == "__main__":
    main()
