"""Training throughput (images/s) of EfficientNet-Lite0 (the real demo's backbone) next to ResNet-18, side by side.

One training step = forward, cross-entropy, backward and an AdamW step on a random batch, in plain PyTorch (the
Lightning overhead is `lightning_vs_bare.py`'s subject). The two networks take turns in rounds of a few steps so
machine drift hits both alike; the first step of every round is not timed. Prints the median images/s of each
and their ratio.

    python benchmarks/backbone_throughput.py [--size 224 --batch 16 --rounds 3 --steps 3 --threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import timm
import torch
from results import Figure, record  # benchmarks/ is on sys.path when run as a script

BACKBONES = ("tf_efficientnet_lite0", "resnet18")


def step_times(net: torch.nn.Module, optimiser, images: torch.Tensor, labels: torch.Tensor, steps: int) -> list[float]:
    times = []
    for index in range(steps + 1):
        start = time.perf_counter()
        optimiser.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(images), labels).backward()
        optimiser.step()
        if index:  # the first step of a round warms caches up
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per network and round (plus one untimed)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images, labels = torch.randn(args.batch, 3, args.size, args.size), torch.randint(0, 2, (args.batch,))
    nets = {name: timm.create_model(name, pretrained=False, num_classes=2).train() for name in BACKBONES}
    optimisers = {name: torch.optim.AdamW(net.parameters(), lr=1e-4) for name, net in nets.items()}
    times: dict[str, list[float]] = {name: [] for name in BACKBONES}
    for _ in range(args.rounds):
        for name in BACKBONES:
            times[name] += step_times(nets[name], optimisers[name], images, labels, args.steps)
    rates = {name: args.batch / statistics.median(values) for name, values in times.items()}
    print(f"training throughput at {args.size} px, batch {args.batch}, {args.threads} threads, "
          f"{args.rounds}×{args.steps} timed steps each")
    for name, rate in rates.items():
        print(f"  {name:24s} {rate:7.1f} images/s")
    print(f"  EfficientNet-Lite0 / ResNet-18 = {rates[BACKBONES[0]] / rates[BACKBONES[1]]:.2f}×")
    record("backbone_throughput", [
        *(Figure(name, rate, "images/s") for name, rate in rates.items()),
        Figure("throughput ratio", rates[BACKBONES[0]] / rates[BACKBONES[1]], "ratio",
               ratio_of="EfficientNet-Lite0 / ResNet-18 training images/s")],
        setting=f"{args.size} px, batch {args.batch}, {args.threads} threads")


if __name__ == "__main__":
    main()
