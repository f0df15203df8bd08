"""Does the scale of the CB / ES class weights matter under Adam? Raw weights (Eq. 7–8 as printed) against the same
weights scaled to sum to C, on the ``weighting`` paper's Adam settings (Tables 2–3: lr 1e-5, β 0.9 / 0.999,
ε 1e-8, no weight decay, batch 20).

The loss is (1/M) Σ_j w_j ℓ_j (Eq. 3), so multiplying every weight by k multiplies every gradient by k. Adam's
step m̂ / (√v̂ + ε) is then unchanged except that ε acts as ε / k: the two readings differ only where √v̂ (the
gradient's running RMS) is not ≫ ε. On the HAM10000 training counts raw ES weighs 7.5e-4 per sample on average
(k = C / Σ_c w_c ≈ 300 to reach Σw = C), raw CB 7 (k ≈ 1/32). This script measures, on the synthetic HAM10000
twin (``datamodules.synthetic``) with the class weights of the real HAM10000 80 % training counts:

* per parameter tensor, √v̂ / ε of the raw-ES run over its elements (the smallest tensor median, the 1st
  percentile of all elements, and the share of elements below 100 ε, where ε shrinks a step by more than 1 %);
* the relative difference of the two runs' parameter displacements after N steps from the same seed, batches and
  dropout masks, beside a control run (raw weights with ε / k, mathematically the Σw = C run: its difference is
  floating-point noise);
* the final training loss (in the Σw = C scale) and the balanced accuracy on the split's 20 % test part, at the
  paper's lr and, for ES, at the grids' synthetic lr 1e-3 (a run that learns in a few hundred steps).

Models: the grids' CPU stand-in for VGG16 (timm ``test_resnet`` under the flat CBAM head) for the full run, and
VGG16 itself (random He init: no ImageNet weights offline) for a few steps of the √v̂ / ε statistics; 32 px
images keep the whole script near 2 CPU minutes.

    python benchmarks/weighting_adam_scale.py [--steps 300 --vgg-steps 3 --size 32 --threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from results import Figure, record  # benchmarks/ is on sys.path when run as a script

from datamodules import HAM10000DataModule
from datamodules.synthetic import write_synthetic
from dermlab.metrics import definitions
from lightning_modules import CBAMClassifier
from lightning_modules.losses import class_weights
from lightning_modules.nets.cbam import LEAVES

REPO = Path(__file__).resolve().parents[1]
#: HAM10000's class counts (MEL NV BCC AKIEC BKL DF VASC, 10015 images) × 0.8: the paper's 80 % training part.
HAM_TRAIN_COUNTS = [round(0.8 * c) for c in (1113, 6705, 514, 327, 1099, 115, 142)]
EPS = 1e-8
LR = 1e-5


def batches(root: Path, size: int, epochs: int) -> tuple[list[dict], list[dict]]:
    """``epochs`` epochs of augmented training batches (20 images, the paper's M; a last partial batch left out) and
    the test batches of split 0."""
    data = HAM10000DataModule(root=str(root), split="weighting", fold=0, val_fraction=0.0, image_size=size,
                              batch_size=20, num_workers=0,
                              train_transforms=str(REPO / "experiments/base/augment/weighting.yaml"),
                              eval_transforms=str(REPO / "experiments/base/augment/weighting_eval.yaml"))
    data.setup("fit")
    data.setup("test")
    train = [{"image": b["image"], "label": b["label"]} for _ in range(epochs) for b in data.train_dataloader()
             if len(b["label"]) == 20]  # full batches only (batch norm needs more than one value per channel)
    test = [{"image": b["image"], "label": b["label"]} for b in data.test_dataloader()]
    return train, test


def model(backbone: str, weights: torch.Tensor, seed: int = 0) -> CBAMClassifier:
    """The flat model (§4.1) with ``weights`` as its class weights, initialised from ``seed``."""
    torch.manual_seed(seed)
    module = CBAMClassifier(backbone=backbone, num_classes=7, class_names=LEAVES, cbam_dropout=0.5,
                            class_weighting="effective_number")
    module.class_weights.copy_(weights)
    return module.train()


def run(backbone: str, weights: torch.Tensor, train: list[dict], steps: int, eps: float, lr: float = LR) -> dict:
    """``steps`` Adam steps (lr 1e-5: the paper's Tables 2–3) on the cycled ``train`` batches from seed 0.

    Returns the displacement θ_N − θ_0 (one flat tensor), √v̂ of every parameter tensor after the last step, the
    mean loss of the last 20 steps, the median gradient norm over the steps and the module."""
    module = model(backbone, weights)
    start = torch.cat([p.detach().flatten().clone() for p in module.parameters()])
    optimizer = torch.optim.Adam(module.parameters(), lr=lr, betas=(0.9, 0.999), eps=eps, weight_decay=0.0)
    torch.manual_seed(1)  # the same dropout masks in every run
    losses, norms = [], []
    for step in range(steps):
        batch = train[step % len(train)]
        optimizer.zero_grad(set_to_none=True)
        loss = module.compute_loss(module(batch["image"]), batch)
        loss.backward()
        norms.append(torch.cat([p.grad.flatten() for p in module.parameters() if p.grad is not None]).norm().item())
        optimizer.step()
        losses.append(loss.item())
    correction = 1 - 0.999 ** steps
    rms = {name: (optimizer.state[p]["exp_avg_sq"] / correction).sqrt() for name, p in module.named_parameters()}
    end = torch.cat([p.detach().flatten() for p in module.parameters()])
    return {"delta": end - start, "rms": rms, "loss": sum(losses[-20:]) / len(losses[-20:]), "module": module,
            "grad_norm": sorted(norms)[len(norms) // 2]}


def balanced_accuracy(module: CBAMClassifier, test: list[dict]) -> float:
    """Balanced accuracy on the test batches, by the suite's one definition
    (:func:`dermlab.metrics.definitions.balanced_accuracy`: classes without test images left out)."""
    module.eval()
    with torch.no_grad():
        scores = torch.cat([module(b["image"]).float() for b in test])
    labels = torch.cat([b["label"] for b in test])
    return float(definitions.balanced_accuracy(labels.numpy(), scores.double().numpy())[0])


def rms_figures(rms: dict[str, torch.Tensor], prefix: str) -> list[Figure]:
    """√v̂ / ε statistics over a run's parameter tensors (elements whose gradient was always 0 left out)."""
    ratios = {name: (r[r > 0] / EPS) for name, r in rms.items() if (r > 0).any()}
    medians = {name: r.median().item() for name, r in ratios.items()}
    smallest = min(medians, key=medians.get)
    everything = torch.cat(list(ratios.values()))
    low = (everything < 100).float().mean().item()
    print(f"{prefix}: smallest tensor median √v̂/ε {medians[smallest]:.3g} ({smallest}), 1st percentile of all "
          f"{everything.quantile(0.01).item():.3g}, share of elements below 100 ε {100 * low:.3g} %")
    for name, value in sorted(medians.items(), key=lambda item: item[1])[:5]:
        print(f"    {name:50s} median √v̂/ε {value:10.3g}")
    return [Figure(f"{prefix}: smallest median √v̂/ε of a parameter tensor", medians[smallest], "ratio",
                   ratio_of=f"√v̂ / ε, median over the elements of {smallest}"),
            Figure(f"{prefix}: 1st percentile √v̂/ε over all elements", everything.quantile(0.01).item(), "ratio",
                   ratio_of="√v̂ / ε"),
            Figure(f"{prefix}: elements with √v̂ < 100 ε", 100 * low, "%")]


def difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖ / ‖b‖ of two displacements."""
    return ((a - b).norm() / b.norm()).item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="Adam steps of the stand-in runs")
    parser.add_argument("--vgg-steps", type=int, default=3, help="Adam steps of the VGG16 runs (0: skip)")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steady on a shared CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    began = time.process_time()
    with tempfile.TemporaryDirectory() as folder:
        write_synthetic("ham10000", Path(folder) / "ham", n=400, size=64, seed=0)
        train, test = batches(Path(folder) / "ham", args.size, epochs=2)
    figures: list[Figure] = []
    for scheme, label in (("effective_number", "ES"), ("inverse", "CB")):
        raw = class_weights(HAM_TRAIN_COUNTS, scheme, 1.0, "none")
        scaled = class_weights(HAM_TRAIN_COUNTS, scheme, 1.0, "sum_to_classes")
        k = (scaled[0] / raw[0]).item()
        mean = (raw * torch.tensor(HAM_TRAIN_COUNTS)).sum().item() / sum(HAM_TRAIN_COUNTS)
        print(f"{label}: raw mean weight per sample {mean:.3g}, Σw = C is raw × k = {k:.4g}")
        runs = {"raw": run("test_resnet", raw, train, args.steps, EPS),
                "Σw=C": run("test_resnet", scaled, train, args.steps, EPS)}
        if label == "ES":
            runs["control"] = run("test_resnet", raw, train, args.steps, EPS / k)
        reference = runs["Σw=C"]["delta"]
        for name, result in runs.items():
            result["bacc"] = balanced_accuracy(result["module"], test)
            shown = result["loss"] * (1 if name == "Σw=C" else k)
            print(f"  {name:8s}: loss of the last 20 steps (Σw=C scale) {shown:.5f}, test BAcc {result['bacc']:.3f}, "
                  f"median gradient norm {result['grad_norm']:.3g}, ‖Δθ‖ {result['delta'].norm().item():.4g}")
        figures += rms_figures(runs["raw"]["rms"], f"{label} raw, stand-in, {args.steps} steps")
        change = difference(runs["raw"]["delta"], reference)
        print(f"  ‖Δθ_raw − Δθ_Σw=C‖ / ‖Δθ_Σw=C‖ after {args.steps} steps: {change:.3g}")
        figures += [Figure(f"{label}: raw mean weight per sample", mean, "weight"),
                    Figure(f"{label}: displacement difference raw vs Σw=C after {args.steps} steps", change, "ratio",
                           ratio_of="‖Δθ_raw − Δθ_Σw=C‖ / ‖Δθ_Σw=C‖"),
                    Figure(f"{label}: median gradient norm per step, raw", runs["raw"]["grad_norm"], "norm"),
                    Figure(f"{label}: median gradient norm per step, Σw=C", runs["Σw=C"]["grad_norm"], "norm"),
                    Figure(f"{label}: final loss raw (Σw=C scale)", runs["raw"]["loss"] * k, "loss"),
                    Figure(f"{label}: final loss Σw=C", runs["Σw=C"]["loss"], "loss"),
                    Figure(f"{label}: test BAcc raw", runs["raw"]["bacc"], "fraction"),
                    Figure(f"{label}: test BAcc Σw=C", runs["Σw=C"]["bacc"], "fraction")]
        if label == "ES":
            noise = difference(runs["control"]["delta"], reference)
            print(f"  control (raw, ε / k): {noise:.3g}")
            figures.append(Figure(f"ES: displacement difference, control raw with ε/k vs Σw=C after {args.steps} "
                                  "steps", noise, "ratio", ratio_of="‖Δθ_control − Δθ_Σw=C‖ / ‖Δθ_Σw=C‖"))
    # the grids' synthetic stand-in rate (1e-3): a run that learns, so loss and BAcc can tell the two apart
    raw = class_weights(HAM_TRAIN_COUNTS, "effective_number", 1.0, "none")
    scaled = class_weights(HAM_TRAIN_COUNTS, "effective_number", 1.0, "sum_to_classes")
    k = (scaled[0] / raw[0]).item()
    fast = {name: run("test_resnet", w, train, args.steps, EPS, lr=1e-3)
            for name, w in (("raw", raw), ("Σw=C", scaled))}
    for name, result in fast.items():
        result["bacc"] = balanced_accuracy(result["module"], test)
        print(f"  lr 1e-3, ES {name:5s}: loss of the last 20 steps (Σw=C scale) "
              f"{result['loss'] * (1 if name == 'Σw=C' else k):.4f}, test BAcc {result['bacc']:.3f}")
    change = difference(fast["raw"]["delta"], fast["Σw=C"]["delta"])
    print(f"  lr 1e-3: ‖Δθ_raw − Δθ_Σw=C‖ / ‖Δθ_Σw=C‖ after {args.steps} steps: {change:.3g}")
    figures += [Figure(f"ES, lr 1e-3: displacement difference raw vs Σw=C after {args.steps} steps", change,
                       "ratio", ratio_of="‖Δθ_raw − Δθ_Σw=C‖ / ‖Δθ_Σw=C‖"),
                Figure("ES, lr 1e-3: final loss raw (Σw=C scale)", fast["raw"]["loss"] * k, "loss"),
                Figure("ES, lr 1e-3: final loss Σw=C", fast["Σw=C"]["loss"], "loss"),
                Figure("ES, lr 1e-3: test BAcc raw", fast["raw"]["bacc"], "fraction"),
                Figure("ES, lr 1e-3: test BAcc Σw=C", fast["Σw=C"]["bacc"], "fraction")]
    if args.vgg_steps:
        vgg = {name: run("vgg16", w, train, args.vgg_steps, EPS) for name, w in (("raw", raw), ("Σw=C", scaled))}
        figures += rms_figures(vgg["raw"]["rms"], f"ES raw, VGG16 (random init), {args.vgg_steps} steps")
        change = difference(vgg["raw"]["delta"], vgg["Σw=C"]["delta"])
        print(f"  VGG16: ‖Δθ_raw − Δθ_Σw=C‖ / ‖Δθ_Σw=C‖ after {args.vgg_steps} steps: {change:.3g}")
        figures.append(Figure(f"ES: VGG16 displacement difference raw vs Σw=C after {args.vgg_steps} steps", change,
                              "ratio", ratio_of="‖Δθ_raw − Δθ_Σw=C‖ / ‖Δθ_Σw=C‖"))
    print(f"{time.process_time() - began:.0f} CPU seconds")
    record("weighting_adam_scale", figures,
           setting=f"flat CBAM model, synthetic HAM10000 {args.size} px, batch 20, Adam lr 1e-5, "
                   f"{args.steps} / {args.vgg_steps} steps, {args.threads} thread{'' if args.threads == 1 else 's'}")


if __name__ == "__main__":
    main()
