"""Training step time of patch attention vs plain multi-crop averaging on the same backbone, side by side.

``patch`` paper: the attention block adds N_C² + N_C parameters per block (≈ 0.001 % of the network) and,
since all crops go through the backbone as one (N_B·N_C) batch, almost no time. Both models (timm
``densenet121`` by default, 7 classes, 9 crops) train with Adam on the same random batch; steps alternate
between them after a warm-up so machine drift hits both alike. Prints the median step times, their ratio
(goal ≤ 1.02) and the parameter difference.

    python benchmarks/patch_step_time.py [--backbone densenet121 --size 224 --images 2 --crops 9 --steps 10 --warmup 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import timm
import torch
from results import Figure, record  # benchmarks/ is on sys.path when run as a script

from lightning_modules.nets.patch_attention import CropNet


def step(net, optimizer, crops, labels) -> float:
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    log_probabilities = net(crops).log_softmax(-1).logsumexp(1)  # mean of the crops' predictions (up to a constant)
    torch.nn.functional.nll_loss(log_probabilities, labels).backward()
    optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="densenet121")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--crops", type=int, default=9)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first (allocator, caches)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    nets = {attention: CropNet(timm.create_model(args.backbone, num_classes=7), args.crops, 7, attention).train()
            for attention in ("none", "end", "dual")}
    for net in nets.values():
        net.load_state_dict(nets["none"].state_dict(), strict=False)  # the same backbone weights
    optimizers = {name: torch.optim.Adam(net.parameters(), lr=1e-4) for name, net in nets.items()}
    crops = torch.randn(args.images, args.crops, 3, args.size, args.size)
    labels = torch.randint(0, 7, (args.images,))
    times = {name: [] for name in nets}
    for index in range(args.warmup + args.steps):
        for name, net in nets.items():
            elapsed = step(net, optimizers[name], crops, labels)
            if index >= args.warmup:
                times[name].append(elapsed)
    medians = {name: statistics.median(values) for name, values in times.items()}
    params = {name: sum(p.numel() for p in net.parameters()) for name, net in nets.items()}
    for name in nets:
        runs = ", ".join(f"{t:.3f}" for t in times[name])
        print(f"attention={name:5s}: {medians[name]:6.3f} s/step  (runs: {runs}), "
              f"{params[name]:,} parameters (+{params[name] - params['none']}, "
              f"{100 * (params[name] - params['none']) / params['none']:.4f} %)")
    print(f"step-time ratio end attention / multi-crop = {medians['end'] / medians['none']:.3f}, dual / multi-crop = "
          f"{medians['dual'] / medians['none']:.3f}  ({args.backbone}, {args.images} images × {args.crops} crops of "
          f"{args.size} px, {args.threads} threads, {args.steps} timed steps each)")
    labels = {"none": "multi-crop", "end": "end attention", "dual": "dual attention"}
    record("patch_step_time", [
        *(Figure(f"{labels[name]} step", medians[name], "s") for name in nets),
        *(Figure(f"step-time ratio, {labels[name]}", medians[name] / medians["none"], "ratio",
                 ratio_of=f"{labels[name]} / multi-crop median training step time") for name in ("end", "dual")),
        *(Figure(f"parameters added, {labels[name]}", params[name] - params["none"], "parameters")
          for name in ("end", "dual"))],
        setting=f"{args.backbone}, {args.images} images × {args.crops} crops of {args.size} px, "
                f"{args.threads} threads")


if __name__ == "__main__":
    main()
