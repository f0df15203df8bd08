"""Training images/s of channels-last (NHWC) against the default NCHW memory format on the CPU, per backbone.

For each backbone two copies with the same initial weights train on one random batch (forward, cross-entropy,
backward, AdamW), one in each memory format (:func:`lightning_modules.nets.acceleration.use_channels_last`, what
``--model.init_args.channels_last true`` applies), taking turns in rounds so machine drift hits both alike; both
run with the suite's process settings (freed memory kept, denormals flushed). Prints the median images/s of
each and the ratio NHWC / NCHW, which says where ``channels_last: true`` is worth setting on a CPU.

    python benchmarks/channels_last.py [--rounds 3 --steps 3 --threads 0]
"""

from __future__ import annotations

import argparse
import statistics

import timm
import torch
from backbone_throughput import step_times  # this folder is on sys.path when run as a script
from results import Figure, record  # benchmarks/ is on sys.path when run as a script

from dermlab.runtime.resources import keep_freed_memory
from lightning_modules.nets.acceleration import use_channels_last

# (timm name, image size, batch): the real demo's backbone at its fine-tuning size, then the papers' trunks
CASES = (("tf_efficientnet_lite0", 192, 32), ("resnet18", 64, 32), ("resnet50", 224, 16), ("densenet121", 224, 16))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per format and round (plus one untimed)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    keep_freed_memory()
    torch.set_flush_denormal(True)
    print(f"training images/s, NCHW vs channels-last, {torch.get_num_threads()} threads, "
          f"{args.rounds}×{args.steps} timed steps each")
    for name, size, batch in CASES:
        torch.manual_seed(0)
        images, labels = torch.randn(batch, 3, size, size), torch.randint(0, 2, (batch,))
        nets = {}
        for layout in ("NCHW", "NHWC"):
            torch.manual_seed(0)
            net = timm.create_model(name, pretrained=False, num_classes=2).train()
            nets[layout] = (use_channels_last(net) if layout == "NHWC" else net,
                            torch.optim.AdamW(net.parameters(), lr=1e-4))
        times: dict[str, list[float]] = {layout: [] for layout in nets}
        for _ in range(args.rounds):
            for layout, (net, optimiser) in nets.items():
                times[layout] += step_times(net, optimiser, images, labels, args.steps)
        rate = {layout: batch / statistics.median(values) for layout, values in times.items()}
        print(f"  {name:22s} {size:4d} px, batch {batch:2d}: NCHW {rate['NCHW']:6.1f}, NHWC {rate['NHWC']:6.1f} "
              f"images/s, NHWC / NCHW = {rate['NHWC'] / rate['NCHW']:.2f}×")
        setting = f"{name}, {size} px, batch {batch}, {torch.get_num_threads()} threads"
        record("channels_last", [*(Figure(layout, rate[layout], "images/s") for layout in ("NCHW", "NHWC")),
                                 Figure("NHWC / NCHW", rate["NHWC"] / rate["NCHW"], "ratio",
                                        ratio_of="channels-last / NCHW training images/s")],
               setting=setting)  # each backbone as it is done


if __name__ == "__main__":
    main()
