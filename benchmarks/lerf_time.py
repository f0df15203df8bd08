"""``dermlab lerf`` speed: receptive-field crops against whole-image gradients, and the full command's wall time.

1. Per initialisation of VGG13-BN at 224 px, the ten layers' ∂q/∂p maps computed from receptive-field crops and
   from the whole image, in turns (same weights and input each round); prints the median seconds of each and
   the ratio.
2. The full command the ``dds`` paper's table needs, ``dermlab lerf --backbone vgg13_bn --size 224 --inits 20``,
   in a fresh process: wall time including start-up (goal ≤ 60 s) and the LERF values it prints.

    python benchmarks/lerf_time.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from results import Figure, record  # benchmarks/ is on sys.path when run as a script

from lightning_modules.nets.lerf import conv_layers, create_net, gradient_maps, he_initialise


def per_init_seconds(rounds: int) -> dict[bool, list[float]]:
    net = create_net("vgg13_bn").eval()
    net.requires_grad_(False)
    layers = list(conv_layers(net))
    times: dict[bool, list[float]] = {True: [], False: []}
    for round_index in range(rounds):
        he_initialise(net, torch.Generator().manual_seed(round_index))
        for windowed in (True, False):
            start = time.perf_counter()
            gradient_maps(net, layers, 224, torch.Generator().manual_seed(round_index), windowed=windowed)
            times[windowed].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    times = per_init_seconds(args.rounds)
    cropped, whole = statistics.median(times[True]), statistics.median(times[False])
    print(f"LERF maps of VGG13-BN's 10 conv layers at 224 px, per initialisation ({torch.get_num_threads()} threads, "
          f"median of {args.rounds}): receptive-field crops {cropped:.2f} s, whole image {whole:.2f} s, "
          f"{whole / cropped:.1f}x faster")
    dermlab = Path(sys.executable).with_name("dermlab")
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        done = subprocess.run([str(dermlab), "lerf", "--backbone", "vgg13_bn", "--size", "224", "--inits", "20",
                               "--out", out], capture_output=True, text=True, env=os.environ)
        wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    print(f"dermlab lerf --backbone vgg13_bn --size 224 --inits 20: {wall:.1f} s wall including start-up "
          f"(goal ≤ 60 s)")
    print(done.stdout.strip())
    record("lerf_time", [
        Figure("receptive-field crops", cropped, "s/init"), Figure("whole image", whole, "s/init"),
        Figure("crops speed-up", whole / cropped, "ratio", ratio_of="whole image / receptive-field crops, seconds "
               "per initialisation for the 10 conv layers' maps"),
        Figure("dermlab lerf --backbone vgg13_bn --size 224 --inits 20, wall time with start-up", wall, "s")],
        setting=f"VGG13-BN, 224 px, {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
