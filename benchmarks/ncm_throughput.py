"""Prediction throughput of nearest-class-mean vs softmax (``isic2018`` paper 002 §3), side by side.

Both rules share the backbone and the embedding; softmax adds one FC layer, nearest-class-mean the distances to
the 7 × 100 reference embeddings. The references are embedded once per evaluation (``TripletClassifier``
does so at the start of validation / test / predict), so their cost is paid once, not per batch: this script
times it apart and then both rules over the same test batches, alternating, in evaluation mode.

    python benchmarks/ncm_throughput.py [--backbone resnet101 --size 128 --batch 16 --batches 6 --threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import timm
import torch
from results import Figure, record  # benchmarks/ is on sys.path when run as a script

from lightning_modules.nets.embedding import EmbeddingClassifier, nearest_class_mean


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet101")
    parser.add_argument("--size", type=int, default=128, help="input side (the paper's 256 quadruples the time)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=6, help="timed test batches per rule (after one untimed)")
    parser.add_argument("--references", type=int, default=100, help="reference images per class")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    net = EmbeddingClassifier(timm.create_model(args.backbone, num_classes=0), 7, 256).eval()
    start = time.perf_counter()
    references = torch.cat([net.embed(torch.randn(args.batch, 3, args.size, args.size))
                            for _ in range(-(-7 * args.references // args.batch))])[:7 * args.references]
    references = references.view(7, args.references, -1)
    reference_time = time.perf_counter() - start
    batch = torch.randn(args.batch, 3, args.size, args.size)
    rules = {"softmax": lambda x: net(x).softmax(1).argmax(1),
             "nearest class mean": lambda x: nearest_class_mean(net.embed(x), references)}
    times = {name: [] for name in rules}
    for index in range(args.batches + 1):
        for name, rule in rules.items():
            start = time.perf_counter()
            rule(batch)
            if index:
                times[name].append(time.perf_counter() - start)
    rate = {name: args.batch / statistics.median(values) for name, values in times.items()}
    start = time.perf_counter()
    for _ in range(20):
        nearest_class_mean(torch.randn(args.batch, 256), references)
    distance_time = (time.perf_counter() - start) / 20
    for name in rules:
        print(f"{name:18s}: {rate[name]:7.1f} images/s (median of {args.batches} batches of {args.batch})")
    print(f"nearest class mean / softmax throughput = {rate['nearest class mean'] / rate['softmax']:.3f}; the "
          f"distances alone take {1000 * distance_time:.2f} ms per batch; embedding the 7 × {args.references} "
          f"references once took {reference_time:.1f} s ({args.backbone}, {args.size} px, {args.threads} threads)")
    record("ncm_throughput", [
        *(Figure(name, rate[name], "images/s") for name in rules),
        Figure("throughput ratio", rate["nearest class mean"] / rate["softmax"], "ratio",
               ratio_of="nearest class mean / softmax images/s (median batch)"),
        Figure("distances to the references", 1000 * distance_time, "ms/batch"),
        Figure(f"embedding the 7 × {args.references} references (once)", reference_time, "s")],
        setting=f"{args.backbone}, {args.size} px, batch {args.batch}, {args.threads} threads")


if __name__ == "__main__":
    main()
