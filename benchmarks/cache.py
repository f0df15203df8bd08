"""Epoch time of the loader over full-size images, with and without the preprocessing cache.

Writes 200 synthetic 1500×1100 JPEGs (ISIC 2017 layout), then times one epoch of the training
DataLoader (224 px, default augmentation, same workers) three ways in one run: reading the
originals, filling the cache (first use), and reading the filled cache. Prints the times and the
speed-up of the filled cache over the originals.

    python benchmarks/cache.py [--n 200 --width 1500 --height 1100 --max-side 512 --workers 2]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from datamodules import ISIC2017DataModule
from datamodules.synthetic import write_synthetic


def full_size_copy(source: Path, width: int, height: int, n: int) -> None:
    """Upscale a small synthetic set to full size (decoding cost is what matters, not detail)."""
    for path in source.rglob("ISIC_???????.jpg"):
        image = Image.open(path).resize((width, height), Image.BICUBIC)
        noise = np.random.default_rng(len(path.name)).normal(0, 4, (height, width, 3))
        Image.fromarray(np.clip(np.asarray(image) + noise, 0, 255).astype(np.uint8)).save(path, quality=90)


def epoch_seconds(data: ISIC2017DataModule) -> float:
    start = time.perf_counter()
    for _ in data.train_dataloader():
        pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--width", type=int, default=1500)
    parser.add_argument("--height", type=int, default=1100)
    parser.add_argument("--max-side", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dermlab-cache-bench-"))
    try:
        root = work / "isic2017"
        write_synthetic("isic2017", root, n=args.n, size=128, seed=0)
        full_size_copy(root, args.width, args.height, args.n)
        common = dict(image_size=224, batch_size=32, num_workers=args.workers)
        plain = ISIC2017DataModule(str(root), **common)
        cached = ISIC2017DataModule(str(root), cache_dir=str(work / "cache"), max_side=args.max_side, **common)
        original = epoch_seconds(plain)
        filling = epoch_seconds(cached)
        warm = epoch_seconds(cached)
        original_again = epoch_seconds(plain)  # once more, so both sides see a warm page cache
        base = min(original, original_again)
        print(f"{args.n} images of {args.width}x{args.height} JPEG, 224 px crops, {args.workers} workers")
        print(f"epoch reading originals : {base:6.2f} s  (runs: {original:.2f}, {original_again:.2f})")
        print(f"epoch filling the cache : {filling:6.2f} s  (first use, max side {args.max_side})")
        print(f"epoch from the cache    : {warm:6.2f} s")
        print(f"speed-up of the cache = {base / warm:.1f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
