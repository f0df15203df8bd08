"""Classify throughput (images/s) of a model package in PyTorch against ONNX Runtime, side by side.

``dermlab classify --model PKG IMAGES [--onnx]`` runs the package's network in PyTorch or its ``model.onnx`` in
onnxruntime; everything else (decoding, the evaluation preprocessing, the prediction rule) is the same code,
:meth:`lightning_modules.nets.package.ModelPackage.batches`. This script times both backends on the same package
and the same images, in turns, after an untimed warm-up of each (two batches):

- **end to end**: every image through ``ModelPackage.batches`` (decode + preprocess + network + fusion), as
  classify does it (``fused=onnx_backend(...)`` for ONNX), images/s of the median pass;
- **network alone**: one fixed preprocessed batch through the package's predictor against the onnxruntime session,
  images/s of the median batch, so that the decoding's share is apart;
- **decode + preprocess alone**: the same DataLoader with no network, for scale;

and the ONNX / PyTorch ratio of each (PyTorch as classify runs it, weights channels-last, with PyTorch's default
NCHW beside it), plus the package's files on disk (MB). Torch and onnxruntime get the same number of threads
(``--threads``). Without ``--model`` it writes its own package: the real demo's network (EfficientNet-Lite0, 224 px,
2 classes, its pretrained normalisation and one-view ``none`` preprocessing) with random weights — throughput does
not depend on the weights — exported to ONNX as ``dermlab export --onnx`` does.
Without ``--images`` it classifies the shipped sample ``data_samples/isic_uda1`` (275 JPEGs of 250 px), or, where
that folder is missing, as many synthetic 250 px JPEGs.

    python benchmarks/classify_throughput.py [--model PKG_DIR --images DIR_OR_FILES... --passes 3 --batch 16
                                              --threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from results import Figure, record  # benchmarks/ is on sys.path when run as a script

from datamodules.datasets.image_files import collect_images
from lightning_modules.nets.onnx_export import export_onnx, onnx_backend
from lightning_modules.nets.package import ONNX, WEIGHTS, ModelPackage, write_config, write_package

SAMPLE = Path(__file__).resolve().parents[1] / "data_samples" / "isic_uda1"
BACKBONE, SIZE = "tf_efficientnet_lite0", 224


def demo_package(folder: Path) -> Path:
    """The real demo's network with random weights as a model package with ``model.onnx``, configured as
    ``dermlab export`` configures a package (recipe, classes, evaluation preprocessing, prediction rule)."""
    from dermlab.files.io import file_sha256
    from lightning_modules.nets.recipes import build_from_recipe
    from lightning_modules.normalisation import backbone_normalisation

    recipe = {"builder": "timm", "arguments": {"backbone": BACKBONE, "num_classes": 2, "pretrained_weights": None,
                                               "drop_rate": 0.2, "backbone_args": {}}}
    net = build_from_recipe(recipe["builder"], recipe["arguments"]).eval()
    normalisation = backbone_normalisation(net)
    config = {"architecture": recipe, "class_names": ["not melanoma", "melanoma"], "num_classes": 2,
              "preprocessing": {"image_size": SIZE, "eval_transforms": "none", "resize_to": None, "max_side": None,
                                "mean": list(normalisation.mean), "std": list(normalisation.std), "views": 1,
                                "crops": 0, "crop_size": SIZE, "crop_positions": "ordered", "seed": 0},
              "prediction": {"fusion": "views", "crop_fusion": None, "tta": "none", "temperature": None},
              "source": {"method": "random weights (benchmarks/classify_throughput.py)"}}
    write_package(folder, net, config)
    package = ModelPackage.load(folder, channels_last=False)  # ONNX is exported from NCHW, as dermlab export does
    export_onnx(package, folder / ONNX)
    package.config["files"][ONNX] = file_sha256(folder / ONNX)
    write_config(folder, package.config)
    return folder


def synthetic_images(folder: Path, count: int, side: int = 250) -> list[Path]:
    """``count`` random smooth 250 px JPEGs (a blurred noise field: a JPEG of the sample's size and entropy)."""
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        noise = Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))
        paths.append(folder / f"synthetic_{index:04d}.jpg")
        noise.filter(ImageFilter.GaussianBlur(3)).save(paths[-1], quality=92)
    return paths


def pass_time(package: ModelPackage, images: list[Path], batch: int, backend) -> float:
    """Seconds to classify every image through ``ModelPackage.batches`` (``backend`` None: PyTorch)."""
    start = time.perf_counter()
    for _indices, _probabilities, errors in package.batches(images, batch_size=batch, fused=backend):
        assert not errors, errors
    return time.perf_counter() - start


def decode_time(package: ModelPackage, images: list[Path], batch: int) -> float:
    """Seconds to decode and preprocess every image (the same dataset and collation, no network)."""
    from torch.utils.data import DataLoader

    from datamodules.datasets.image_files import skip_unreadable

    start = time.perf_counter()
    for _ in DataLoader(package.dataset(images), batch_size=batch, collate_fn=skip_unreadable):
        pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None,
                        help="a model package with model.onnx (default: the demo network, random weights)")
    parser.add_argument("--images", nargs="+", default=None,
                        help="image files / folders (default: data_samples/isic_uda1, else synthetic JPEGs)")
    parser.add_argument("--count", type=int, default=275, help="synthetic images where the sample is missing")
    parser.add_argument("--passes", type=int, default=3, help="timed end-to-end passes over all images per backend")
    parser.add_argument("--batches", type=int, default=10,
                        help="timed network-alone batches per backend (plus one untimed)")
    parser.add_argument("--batch", type=int, default=16, help="images per forward pass (classify's default)")
    parser.add_argument("--threads", type=int, default=2, help="torch and onnxruntime intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="dermlab-classify-bench-") as work:  # the package and images it writes
        measure(args, parser, Path(work))


def measure(args: argparse.Namespace, parser: argparse.ArgumentParser, work: Path) -> None:
    start = time.perf_counter()
    folder = args.model or demo_package(work / "package")
    if not (folder / ONNX).is_file():
        parser.error(f"'{folder / ONNX}' does not exist: export the package with --onnx")
    package = ModelPackage.load(folder)
    built = f" (written and exported in {time.perf_counter() - start:.0f} s)"
    images = collect_images(args.images or [SAMPLE]) if args.images or SAMPLE.is_dir() else (
        synthetic_images(work / "images", args.count))
    nchw = ModelPackage.load(folder, channels_last=False).predictor()  # PyTorch's default layout, for comparison
    backends = {"PyTorch": None, "PyTorch NCHW": nchw,
                "ONNX Runtime": onnx_backend(folder / ONNX, threads=args.threads)}

    # end to end, as classify runs: passes over all images, backends in turns, after an untimed warm-up of each
    for backend in backends.values():
        pass_time(package, images[:2 * args.batch], args.batch, backend)
    passes: dict[str, list[float]] = {name: [] for name in backends}
    decoding: list[float] = []
    for _ in range(args.passes):
        for name, backend in backends.items():
            passes[name].append(pass_time(package, images, args.batch, backend))
        decoding.append(decode_time(package, images, args.batch))
    end_to_end = {name: len(images) / statistics.median(values) for name, values in passes.items()}
    decode_rate = len(images) / statistics.median(decoding)

    # the network alone: one preprocessed batch, backends alternating batch by batch
    dataset = package.dataset(images[:args.batch])
    batch = torch.stack([dataset[i]["image"] for i in range(len(dataset))])[:, None]  # (B, 1, 3, H, W)
    predictor = package.predictor()
    nets = {"PyTorch": predictor, "PyTorch NCHW": nchw, "ONNX Runtime": backends["ONNX Runtime"]}
    times: dict[str, list[float]] = {name: [] for name in nets}
    with torch.inference_mode():
        for index in range(args.batches + 1):
            for name, net in nets.items():
                start = time.perf_counter()
                net(batch)
                if index:
                    times[name].append(time.perf_counter() - start)
    network = {name: len(batch) / statistics.median(values) for name, values in times.items()}
    sizes = {name: (folder / name).stat().st_size / 1e6 for name in (WEIGHTS, ONNX)}

    name = package.config["architecture"]["arguments"].get("backbone", package.config["architecture"]["builder"])
    side = package.preprocessing["image_size"]
    what = folder if args.model else f"the demo network with random weights{built}"
    print(f"classify throughput of {what}: {name}, {side} px, {len(images)} images, batch {args.batch}, "
          f"{args.threads} threads; end to end the median of {args.passes} passes, the network alone of "
          f"{args.batches} batches")
    for backend in backends:
        print(f"  {backend:13s} end to end {end_to_end[backend]:7.1f} images/s, network alone "
              f"{network[backend]:7.1f} images/s")
    print(f"  decode + preprocess alone {decode_rate:7.1f} images/s")
    print(f"  ONNX Runtime / PyTorch: end to end {end_to_end['ONNX Runtime'] / end_to_end['PyTorch']:.2f}×, "
          f"network alone {network['ONNX Runtime'] / network['PyTorch']:.2f}×")
    print(f"  PyTorch channels-last / NCHW: end to end {end_to_end['PyTorch'] / end_to_end['PyTorch NCHW']:.2f}×, "
          f"network alone {network['PyTorch'] / network['PyTorch NCHW']:.2f}×")
    print(f"  on disk: {WEIGHTS} {sizes[WEIGHTS]:.1f} MB, {ONNX} {sizes[ONNX]:.1f} MB")
    source = "random weights" if args.model is None else "package"
    images_text = ("the shipped sample" if not args.images and SAMPLE.is_dir() else
                   "synthetic JPEGs" if not args.images else "given images")
    record("classify_throughput", [
        *(Figure(f"{backend}, end to end", end_to_end[backend], "images/s") for backend in backends),
        *(Figure(f"{backend}, network alone", network[backend], "images/s") for backend in backends),
        Figure("decode + preprocess alone", decode_rate, "images/s"),
        Figure("ONNX / PyTorch, end to end", end_to_end["ONNX Runtime"] / end_to_end["PyTorch"], "ratio",
               ratio_of="ONNX Runtime / PyTorch images/s (decode + preprocess + network)"),
        Figure("ONNX / PyTorch, network alone", network["ONNX Runtime"] / network["PyTorch"], "ratio",
               ratio_of="ONNX Runtime / PyTorch images/s (one preprocessed batch)"),
        Figure("PyTorch channels-last / NCHW, end to end", end_to_end["PyTorch"] / end_to_end["PyTorch NCHW"], "ratio",
               ratio_of="PyTorch images/s, weights channels-last (classify's default) / NCHW"),
        *(Figure(file, size, "MB") for file, size in sizes.items())],
        setting=f"{name} ({source}), {side} px, {len(images)} images ({images_text}), batch {args.batch}, "
                f"{args.threads} threads")


if __name__ == "__main__":
    main()
