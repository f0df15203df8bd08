"""Epoch of the training loader on ISIC-sized JPEGs: from the originals, filling the cache, from the cache.

Writes ``--n`` synthetic lesions (ISIC 2017 layout) upscaled to real ISIC sizes with noise, JPEG quality 92,
in a fixed mix per 10 images (:data:`SIZE_MIX`: 3× 1022×767, 2× 1504×1129, 2× 3008×2000, 2× 4288×2848,
1× 6000×4000; 6.6 MP on average), then in one process, side by side (rounds alternate the paths, so load from
elsewhere hits all of them, and the best round counts), with the same resize and augmentation (224 px,
``default`` preset) and the same ``--workers`` DataLoader workers:

* the epoch reading the originals (full decode), the epoch filling the cache (``npy``, JPEG ``draft``
  decoding at reduced scale) and the epoch reading it, for both cache formats (``png`` entries are written
  from the ``npy`` ones: same pixels);
* images/s per core for decode + augment + collate: the same loader run in-process (``num_workers=0``,
  OpenCV and torch on one thread), with where the time goes (read, augment, the rest); and the cores one
  GPU consuming 2,000 images/s would need on each path;
* the originals' read time per image size (to re-weight for another mix), full decode by Pillow alone against
  :func:`~dermlab.files.io.load_rgb` (OpenCV, :mod:`dermlab.files.jpeg`), and the disk the cache takes.

Default run: 60 images, 1.5–2 min on the 2-core CPU (while other work shared the cores).

    python benchmarks/cache.py [--n 60 --max-side 512 --workers 2 --rounds 3]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from results import Figure, record  # benchmarks/ is on sys.path when run as a script
from torch.utils.data import DataLoader

from datamodules import ISIC2017DataModule
from datamodules.cache import ImageCache
from datamodules.synthetic import write_synthetic
from dermlab.files.io import load_rgb, upright

SIZE_MIX = ((1022, 767), (1504, 1129), (3008, 2000), (1022, 767), (4288, 2848),
            (1504, 1129), (3008, 2000), (1022, 767), (4288, 2848), (6000, 4000))  # per 10 images
GPU_IMAGES_PER_SECOND = 2000
ISIC_2019_TRAINING_IMAGES = 25_331


def upscale(path: Path, width: int, height: int) -> None:
    """Upscale one synthetic lesion to ``width``×``height`` with noise, so that its JPEG has real entropy."""
    noise = np.random.default_rng(len(path.name) + width).normal(0, 4, (509, 509, 3)).astype(np.int16)
    tiled = np.tile(noise, (height // 509 + 1, width // 509 + 1, 1))[:height, :width]  # a tile off the 8×8 grid
    image = np.asarray(Image.open(path).resize((width, height), Image.BICUBIC), np.int16)
    Image.fromarray(np.clip(image + tiled, 0, 255).astype(np.uint8)).save(path, quality=92)


def isic_sized(root: Path, workers: int) -> dict[Path, tuple[int, int]]:
    """The training images upscaled to the sizes of :data:`SIZE_MIX`, in turn; returns each one's (width, height)."""
    paths = sorted((root / "ISIC-2017_Training_Data").glob("ISIC_???????.jpg"))
    sizes = {path: SIZE_MIX[index % len(SIZE_MIX)] for index, path in enumerate(paths)}
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(upscale, sizes, *zip(*sizes.values(), strict=True)))
    return sizes


def epoch_seconds(loader: DataLoader) -> float:
    start = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - start


class Timed:
    """``function`` (any callable object, whose attributes stay reachable), adding up the seconds its calls take."""

    def __init__(self, function):
        self.function, self.seconds, self.calls = function, [], []

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        result = self.function(*args, **kwargs)
        self.seconds.append(time.perf_counter() - start)
        self.calls.append(args)
        return result

    def __getattr__(self, name):
        return getattr(self.function, name)


def per_core(data: ISIC2017DataModule, sizes: dict[Path, tuple[int, int]]) -> dict:
    """One in-process epoch (one core): images/s and ms per image; within the same pass, the read and augment ms
    per image and the read ms per image size."""
    loader = data.train_dataloader()
    assert loader.num_workers == 0
    dataset = loader.dataset
    dataset._read, dataset.transform = read, augment = Timed(dataset._read), Timed(dataset.transform)
    total = epoch_seconds(loader)
    images = len(dataset)
    by_size = defaultdict(list)
    for (index,), seconds in zip(read.calls, read.seconds, strict=True):
        by_size[sizes[dataset.table.paths[index]]].append(1000 * seconds)
    return {"rate": images / total, "ms": 1000 * total / images, "read": 1000 * sum(read.seconds) / images,
            "augment": 1000 * sum(augment.seconds) / images,
            "by_size": {size: float(np.mean(values)) for size, values in sorted(by_size.items())}}


def decoders(paths, rounds: int) -> tuple[float, float, bool]:
    """Full decode of every original by Pillow alone (the reader before OpenCV) and by :func:`load_rgb` (OpenCV for
    RGB JPEGs), alternating, ``rounds`` times: the mean over images of each one's best ms, and whether all pixels
    are identical."""
    pillow, opencv, same = defaultdict(list), defaultdict(list), True
    for _ in range(rounds):
        for path in paths:
            start = time.perf_counter()
            with Image.open(path) as image:
                reference = np.asarray(upright(image))
            middle = time.perf_counter()
            fast = load_rgb(path)
            pillow[path].append(middle - start)
            opencv[path].append(time.perf_counter() - middle)
            same = same and np.array_equal(reference, fast)
    best = lambda times: 1000 * float(np.mean([min(t) for t in times.values()]))  # noqa: E731
    return best(pillow), best(opencv), same


def megabytes(folder: Path, suffix: str) -> tuple[float, int]:
    files = list(folder.rglob(f"*{suffix}"))
    return sum(f.stat().st_size for f in files) / 1e6, len(files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60, help="training images (a multiple of 10 keeps the mix exact)")
    parser.add_argument("--max-side", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the epochs; the best counts")
    args = parser.parse_args()
    cv2.setNumThreads(1)  # one thread each: the per-core figures mean one core (workers run one thread anyway)
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="dermlab-cache-bench-"))
    try:
        root = work / "isic2017"
        load = os.getloadavg()
        start = time.perf_counter()
        write_synthetic("isic2017", root, n=args.n, size=256, seed=0)
        sizes = isic_sized(root, args.workers)
        written = time.perf_counter() - start
        common = dict(image_size=224, batch_size=32, max_side=args.max_side)
        make = lambda workers, **kw: ISIC2017DataModule(str(root), num_workers=workers, **{**common, **kw})  # noqa: E731
        originals = make(args.workers, max_side=None)
        npy = make(args.workers, cache_dir=str(work / "cache"), cache_format="npy")
        png = make(args.workers, cache_dir=str(work / "cache"), cache_format="png")

        filling = epoch_seconds(npy.train_dataloader())
        npy_cache, png_cache = npy.cache, ImageCache(work / "cache", args.max_side, "png")
        for path in sizes:  # the same pixels as PNG entries, without decoding the originals again
            png_cache._write(png_cache.entry(path, "rgb"), npy_cache.image(path))
        loaders = {"originals": originals.train_dataloader(), "npy": npy.train_dataloader(),
                   "png": png.train_dataloader()}
        epochs = defaultdict(list)
        for _ in range(args.rounds):
            for name, loader in loaders.items():
                epochs[name].append(epoch_seconds(loader))
        best = {name: min(times) for name, times in epochs.items()}
        core = {}
        for _ in range(args.rounds):
            for name, kw in (("originals", {"max_side": None}), ("npy", {"cache_format": "npy"}),
                             ("png", {"cache_format": "png"})):
                rates = per_core(make(0, cache_dir=str(work / "cache"), **kw), sizes)
                if name not in core or rates["rate"] > core[name]["rate"]:
                    core[name] = rates
        pillow_ms, opencv_ms, same = decoders(sizes, args.rounds)
        npy_mb, entries = megabytes(work / "cache", ".npy")
        png_mb, _ = megabytes(work / "cache", ".png")
        source_mb = sum(p.stat().st_size for p in sizes) / 1e6

        print(f"load average (1 min) at the start {load[0]:.1f}, at the end {os.getloadavg()[0]:.1f}: other work on "
              "the same cores slows every path")
        print(f"{args.n} ISIC-sized JPEGs (mean {np.mean([w * h for w, h in sizes.values()]) / 1e6:.1f} MP, "
              f"{source_mb / args.n:.2f} MB each, written in {written:.0f} s); 224 px, default augmentation, "
              f"batch 32, {args.workers} workers, cache max side {args.max_side}, best of {args.rounds} rounds")
        print(f"epoch reading originals    : {best['originals']:6.2f} s   (rounds: "
              f"{', '.join(f'{t:.2f}' for t in epochs['originals'])})")
        print(f"epoch filling the cache    : {filling:6.2f} s   (first use, npy)")
        for name in ("npy", "png"):
            print(f"epoch from the cache ({name}) : {best[name]:6.2f} s   (rounds: "
                  f"{', '.join(f'{t:.2f}' for t in epochs[name])})  "
                  f"cached / originals = {best['originals'] / best[name]:.1f}x")
        print(f"per core (in-process, num_workers=0, 1 thread), {GPU_IMAGES_PER_SECOND:,} images/s need:")
        for name, label in (("originals", "originals"), ("npy", "cache npy"), ("png", "cache png")):
            rates = core[name]
            print(f"  {label:10s}: {rates['rate']:7.1f} images/s/core = {rates['ms']:6.2f} ms/image (read "
                  f"{rates['read']:6.2f}, augment {rates['augment']:5.2f}, collate and rest "
                  f"{rates['ms'] - rates['read'] - rates['augment']:5.2f})  -> "
                  f"{math.ceil(GPU_IMAGES_PER_SECOND / rates['rate'])} cores")
        print("read ms per image by size: originals (full decode) "
              + ", ".join(f"{w}x{h} {ms:.0f}" for (w, h), ms in core["originals"]["by_size"].items())
              + "; cache npy " + ", ".join(f"{ms:.2f}" for ms in core["npy"]["by_size"].values()))
        print(f"full decode of the originals, alternating, best of {args.rounds}: Pillow alone {pillow_ms:.1f} "
              f"ms/image, OpenCV (load_rgb) {opencv_ms:.1f} ms/image = {pillow_ms / opencv_ms:.2f}x; "
              f"identical pixels: {same}")
        share = ISIC_2019_TRAINING_IMAGES / entries
        print(f"cache on disk for {entries} images at max side {args.max_side}: npy {npy_mb:.1f} MB, png "
              f"{png_mb:.1f} MB (originals {source_mb:.1f} MB); for {ISIC_2019_TRAINING_IMAGES:,} ISIC 2019 images: "
              f"npy {npy_mb * share / 1e3:.1f} GB, png {png_mb * share / 1e3:.1f} GB (png size depends on content)")
        figures = [Figure("epoch reading the originals", best["originals"], "s"),
                   Figure("epoch filling the cache (npy)", filling, "s"),
                   *(Figure(f"epoch from the cache ({name})", best[name], "s") for name in ("npy", "png")),
                   *(Figure(f"cache ({name}) speed-up", best["originals"] / best[name], "ratio",
                            ratio_of=f"epoch from the originals / epoch from the {name} cache")
                     for name in ("npy", "png"))]
        for name, label in (("originals", "originals"), ("npy", "cache npy"), ("png", "cache png")):
            rates = core[name]
            figures += [Figure(f"per core, {label}", rates["rate"], "images/s/core"),
                        Figure(f"per core, {label}: read", rates["read"], "ms/image"),
                        Figure(f"per core, {label}: augment", rates["augment"], "ms/image"),
                        Figure(f"per core, {label}: collate and rest", rates["ms"] - rates["read"] - rates["augment"],
                               "ms/image"),
                        Figure(f"cores for {GPU_IMAGES_PER_SECOND:,} images/s, {label}",
                               math.ceil(GPU_IMAGES_PER_SECOND / rates["rate"]), "cores")]
        figures += [Figure(f"read originals (full decode), {w}x{h}", ms, "ms/image")
                    for (w, h), ms in core["originals"]["by_size"].items()]
        figures += [Figure("full decode, Pillow alone", pillow_ms, "ms/image"),
                    Figure("full decode, OpenCV (load_rgb)", opencv_ms, "ms/image"),
                    Figure("OpenCV speed-up", pillow_ms / opencv_ms, "ratio", ratio_of="Pillow / OpenCV ms per image"),
                    Figure(f"cache on disk, npy ({entries} images)", npy_mb, "MB"),
                    Figure(f"cache on disk, png ({entries} images)", png_mb, "MB"),
                    Figure(f"originals on disk ({entries} images)", source_mb, "MB")]
        record("cache", figures, setting=f"{args.n} ISIC-sized JPEGs, 224 px, batch 32, {args.workers} workers, "
                                         f"max side {args.max_side}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
