"""Set-up time of the split audit on a HAM10000-sized pool: first (decoding every image) and cached.

Writes ``--n`` synthetic HAM10000 images at the real 600×450 (drawn at 64 px, upscaled with per-image noise, so
no two images share pixels), then times in one run:

* set-up without the pixel audit (ids and lesion ids only: what set-up cost before the audit), after a warm-up,
* set-up with it and an empty fingerprint cache (every image decoded and hashed),
* set-up with it again (fingerprints read from the cache),
* one pass of the training DataLoader over ``--epoch-sample`` images (decode + 224 px augmentation), scaled to
  the training split: the input-pipeline part of one epoch, next to which the set-up should be small.

    python benchmarks/audit_setup.py [--n 10015 --workers 2 --root DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from results import Figure, record  # benchmarks/ is on sys.path when run as a script

from dermlab.runtime.resources import available_cores


def upscale(path: Path) -> None:
    image = Image.open(path).resize((600, 450), Image.BICUBIC)
    noise = np.random.default_rng(abs(hash(path.name)) % 2**32).normal(0, 4, (450, 600, 3))
    Image.fromarray(np.clip(np.asarray(image) + noise, 0, 255).astype(np.uint8)).save(path, quality=90)


def write_pool(root: Path, n: int, workers: int) -> None:
    from datamodules.synthetic import write_synthetic

    write_synthetic("ham10000", root, n=n, size=64, seed=0)
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(upscale, sorted(root.rglob("ISIC_*.jpg")), chunksize=64))


def timed_setup(root: Path, **kwargs) -> tuple[float, object]:
    from datamodules import HAM10000DataModule

    data = HAM10000DataModule(str(root), split="patch", fold=0, image_size=224, num_workers=0, **kwargs)
    start = time.perf_counter()
    data.setup("fit")
    return time.perf_counter() - start, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="images in the pool (HAM10000: 10015)")
    parser.add_argument("--workers", type=int, default=available_cores())
    parser.add_argument("--epoch-sample", type=int, default=256, help="images timed through the training loader")
    parser.add_argument("--root", default=None, help="reuse (or keep) the synthetic pool in this folder")
    args = parser.parse_args()
    root = Path(args.root or tempfile.mkdtemp(prefix="audit-bench-"))
    if not (root / "HAM10000_metadata.csv").is_file():
        start = time.perf_counter()
        write_pool(root, args.n, args.workers)
        print(f"wrote {args.n} images of 600×450 in {time.perf_counter() - start:.0f} s")
    cache = Path(tempfile.mkdtemp(prefix="audit-bench-cache-"))
    os.environ["DERMLAB_CACHE_DIR"] = str(cache)
    try:
        timed_setup(root, audit_pixels=False)  # warm-up: imports, the file system's cache, the split's memo
        ids_only, _ = timed_setup(root, audit_pixels=False)
        first, data = timed_setup(root)
        cached, _ = timed_setup(root)
        train = data.dataset("train")
        sample = min(args.epoch_sample, len(train))
        start = time.perf_counter()
        for i in range(sample):
            train[i]
        loader_epoch = (time.perf_counter() - start) / sample * len(train) / args.workers
        print(json.dumps({
            "images": sum(data.split_audit.splits[s] or 0 for s in ("train", "val", "test")),
            "fingerprinted": data.split_audit.fingerprinted, "leak": data.split_audit.leak,
            "setup_ids_only_s": round(ids_only, 2), "setup_first_s": round(first, 2),
            "setup_cached_s": round(cached, 2), "first_over_cached": round(first / cached, 1),
            "train_images": len(train), "decode_augment_epoch_s_estimate": round(loader_epoch, 1),
            "cached_setup_share_of_that_epoch": round(cached / loader_epoch, 4), "workers": args.workers}, indent=1))
        record("audit_setup", [
            Figure("set-up without the pixel audit (ids only)", ids_only, "s"),
            Figure("set-up with the audit, first (every image decoded)", first, "s"),
            Figure("set-up with the audit, cached fingerprints", cached, "s"),
            Figure("first / cached set-up", first / cached, "ratio", ratio_of="first / cached set-up seconds"),
            Figure(f"decode + augment epoch of {len(train)} training images (estimate)", loader_epoch, "s"),
            Figure("cached set-up / that epoch", cached / loader_epoch, "ratio",
                   ratio_of="cached set-up seconds / decode + augment epoch seconds")],
            setting=f"{args.n} HAM10000-sized images (600×450), {args.workers} workers")
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
