"""Training step time of ARL-CNN50 vs ResNet-50, side by side in one run (arl paper: attention adds no layers).

Both models are built the same way (timm, 2 classes), trained with SGD(momentum 0.9) on the same random
batches; steps alternate between the two models after a warm-up so machine drift hits both alike. Prints
the median step time of each, their ratio (goal ≤ 1.10) and the parameter difference (the α's).

    python benchmarks/arl_step_time.py [--size 224 --batch 8 --steps 6 --threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import timm
import torch
import torch.nn.functional as F
from results import Figure, record  # benchmarks/ is on sys.path when run as a script

import lightning_modules.nets  # noqa: F401  (registers arl_cnn50)


def step(model, optimizer, images, labels) -> float:
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(model(images), labels).backward()
    optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    models = {name: timm.create_model(name, num_classes=2).train() for name in ("resnet50", "arl_cnn50")}
    optimizers = {n: torch.optim.SGD(m.parameters(), lr=1e-4, momentum=0.9) for n, m in models.items()}
    images = torch.randn(args.batch, 3, args.size, args.size)
    labels = torch.randint(0, 2, (args.batch,))
    times = {name: [] for name in models}
    for index in range(args.steps + 1):  # the first round is the warm-up
        for name, model in models.items():
            elapsed = step(model, optimizers[name], images, labels)
            if index:
                times[name].append(elapsed)
    medians = {name: statistics.median(values) for name, values in times.items()}
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    for name in models:
        print(f"{name:10s}: {medians[name]:6.3f} s/step  (runs: {', '.join(f'{t:.3f}' for t in times[name])}), "
              f"{params[name]:,} parameters")
    print(f"step-time ratio ARL-CNN50 / ResNet-50 = {medians['arl_cnn50'] / medians['resnet50']:.3f}  "
          f"(batch {args.batch} at {args.size} px, {args.threads} threads, {args.steps} timed steps each)")
    print(f"parameter difference = {params['arl_cnn50'] - params['resnet50']} (one α per ARL block)")
    record("arl_step_time", [
        Figure("ResNet-50 step", medians["resnet50"], "s"), Figure("ARL-CNN50 step", medians["arl_cnn50"], "s"),
        Figure("step-time ratio", medians["arl_cnn50"] / medians["resnet50"], "ratio",
               ratio_of="ARL-CNN50 / ResNet-50 median training step time"),
        Figure("parameter difference", params["arl_cnn50"] - params["resnet50"], "parameters")],
        setting=f"batch {args.batch}, {args.size} px, {args.threads} threads")


if __name__ == "__main__":
    main()
