"""The model card (``README.md``) of an exported model package, written from the run's own files.

What it reads, all from the run folder: ``predictions_test.csv`` (the test metrics, recomputed by the suite's one
definition of each, :mod:`dermlab.metrics.definitions`, with stratified bootstrap intervals,
:func:`dermlab.stats.intervals.every_metric_interval`), ``splits/{train,val,test}.csv`` (images per class),
``splits/audit.json`` (the split audit), ``subgroups_test.csv`` (where the data had metadata) and the package's
``config.json`` (architecture, preprocessing, temperature, provenance). The card follows the Hugging Face Hub's
layout: a YAML header (``library_name``, ``tags``, ``datasets``, ``model-index`` with the test metrics, and
``dermlab``: each metric with its interval, machine-readable), then the sections people read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from dermlab.files.predictions import Predictions
from dermlab.stats.intervals import Interval, every_metric_interval
from dermlab.stats.subgroups import FEW

#: The licence of each data set's images and labels (``docs/datasets/index.md`` gives the same, with sources).
DATA_LICENCES = {
    "isic2016": "CC0", "isic2017": "CC0", "isic2018_task1": "CC BY-NC 4.0", "isic2018_task2": "CC BY-NC 4.0",
    "isic2018_task3": "CC BY-NC 4.0", "isic2019": "CC BY-NC 4.0", "isic2020": "CC BY-NC 4.0",
    "isic2024": "CC BY-NC 4.0 and the Kaggle competition's rules", "ham10000": "CC BY-NC 4.0",
    "derm7pt": "academic research use, no redistribution of the images",
    "vitiligo": "that of the set you use", "isic_sample": "CC0 1.0 (UDA-1 by Anonymous)", "pad_ufes20": "CC BY 4.0",
    "ddi": "Stanford research-use agreement, no redistribution of the images",
    "fitzpatrick17k": "CC BY-NC-SA 3.0 (annotations); images under their source sites' terms",
}
#: The intervals' bootstrap resamples, seed and level, the suite's defaults (as the subgroup tables and scoring).
N_BOOT, SEED, LEVEL = 2000, 0, 0.95

INTENDED_USE = """\
Research on dermoscopic images of skin lesions: reproducing and comparing published methods, as a baseline, and
as a starting point for fine-tuning on other dermoscopy data. Its outputs are the probabilities of the classes
above, for images like those it was trained on (dermoscopy, the data set named below)."""

NOT_FOR = """\
- **Diagnosing, screening or triaging patients**, or any decision about a person: it is not a medical device, it
  was not validated prospectively or on a clinical population, and its test set is one split of a public data
  set.
- **Images unlike its training images** (clinical or smartphone photographs, other dermatoscopes, other image
  sizes or crops) without an external test: performance there is unknown.
- **Skin types and populations not represented** in its training data: the public dermoscopy archives (ISIC) hold
  mostly lightly pigmented skin, and no per-skin-type result is given below unless the metadata allowed one.
- **Lesions outside its classes**: the model always answers one of them, however foreign the image."""


def _count_table(run: Path) -> pd.DataFrame | None:
    """Images per class (rows) and split (columns) from ``splits/<split>.csv``; None without the folder."""
    columns = {}
    for split in ("train", "val", "test"):
        path = run / "splits" / f"{split}.csv"
        if path.is_file():
            labels = pd.read_csv(path, dtype=str, keep_default_na=False)["label"]
            columns[split] = labels.replace("", "(unlabelled)").value_counts()
    if not columns:
        return None
    return pd.DataFrame(columns).fillna(0).astype(int)


def _audit_lines(run: Path) -> list[str]:
    path = run / "splits" / "audit.json"
    if not path.is_file():
        return ["No split audit was recorded (`splits/audit.json` is missing)."]
    audit = json.loads(path.read_text(encoding="utf-8"))
    shared = audit.get("shared_images") or {}
    verdict = "**leak found**" if audit.get("leak") else "no leak found"
    lines = [f"Split audit (`splits/audit.json`, {audit.get('fingerprinted', 0)} images fingerprinted): {verdict}."]
    if shared:
        lines.append("Identical images across splits: " + ", ".join(f"{k} {v}" for k, v in shared.items()) + ".")
    if audit.get("shared_lesions"):
        lines.append("Lesions across splits: " + ", ".join(f"{k} {v}" for k, v in audit["shared_lesions"].items()))
    if audit.get("leaks"):
        lines.append("Leaks: " + "; ".join(map(str, audit["leaks"][:5])))
    return lines


def _markdown_table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _transforms_text(spec: Any) -> str:
    """A pipeline spec in words: ``none`` is a plain resize to the square input (OpenCV bilinear, as
    albumentations' ``Resize``), a list is shown as its entries."""
    if spec in (None, "none"):
        return "none (a resize to the square input, OpenCV bilinear: albumentations' `Resize`)"
    return f"`{spec}`" if isinstance(spec, str) else f"`{json.dumps(spec)}`"


def _training_lines(training: dict[str, Any]) -> list[str]:
    """The training procedure section (what the export read from the run's config)."""
    if not training:
        return []
    items = [("epochs", f"{training.get('epoch')} of {training.get('max_epochs')} (the exported checkpoint's epoch; "
                        f"step {training.get('global_step')})"),
             ("selected by", training.get("selected_by")), ("optimiser", training.get("optimizer")),
             ("schedule", training.get("scheduler")), ("batch size", training.get("batch_size")),
             ("image size", training.get("image_size")), ("training augmentation", training.get("train_transforms")),
             ("sampling", training.get("sampling")), ("loss", training.get("loss")),
             ("class weighting", training.get("class_weighting")), ("precision", training.get("precision")),
             ("seed", training.get("seed"))]
    return ["", "## Training procedure", "", *(f"- {what}: `{value}`" if what != "epochs" else f"- {what}: {value}"
                                                for what, value in items if value is not None)]


def _weights_licence(started_from: dict[str, Any] | None) -> str:
    """``started_from`` is ``{"weights", "licence"}`` (the export names the licence of packaged weights)."""
    weights = (started_from or {}).get("weights")
    if not weights:
        return "none: trained from random initialisation (no third-party weights)"
    licence = started_from.get("licence")
    if licence:
        return f"`{weights}`: {licence}"
    return (f"`{Path(weights).name}` (a local weights file): its licence is that of its source, which the exporter "
            "cannot know: state it here before sharing the package")


def test_metrics(run: Path) -> tuple[Predictions, dict[str, Interval]]:
    """The run's test predictions (scored rows) and every test metric with its 95 % interval."""
    predictions = Predictions.read(run / "predictions_test.csv").kept()
    return predictions, every_metric_interval(predictions.target, predictions.probabilities,
                                              predictions.class_names, N_BOOT, SEED, LEVEL)


def model_card(run: Path, config: dict[str, Any]) -> str:
    """The card's Markdown (YAML header and sections) for the package ``config`` exported from ``run``."""
    predictions, metrics = test_metrics(run)
    source, data = config.get("source", {}), config.get("data") or {}
    name = data.get("name") or data.get("class") or "unknown data set"
    method = source.get("method", "classifier")
    backbone = config["architecture"]["arguments"].get("backbone")
    pre, prediction = config["preprocessing"], config["prediction"]
    header = {
        "library_name": "dermlab", "pipeline_tag": "image-classification",
        "tags": ["dermatology", "dermoscopy", "skin-lesion-classification", "image-classification", method],
        "datasets": [name], "license": "other", "license_name": "weights-and-training-data-terms",
        "license_link": "README.md",
        "model-index": [{"name": source.get("run_name") or run.name, "results": [{
            "task": {"type": "image-classification"},
            "dataset": {"name": name, "type": name, "split": "test"},
            "metrics": [{"type": k, "name": f"test/{k}", "value": round(v.estimate, 6)} for k, v in metrics.items()],
        }]}],
        "dermlab": {"test_metrics": {k: {"estimate": v.estimate, "low": v.low, "high": v.high} for k, v in
                                     metrics.items()},
                    "interval": {"method": "stratified bootstrap, percentile", "n_boot": N_BOOT, "seed": SEED,
                                 "level": LEVEL},
                    "test_images": len(predictions), "checkpoint_sha256": source.get("checkpoint_sha256")},
    }
    classes = ", ".join(f"`{c}`" for c in config["class_names"])
    lines = [f"---\n{yaml.safe_dump(header, sort_keys=False, allow_unicode=True)}---", "",
             f"# {method} ({backbone}) on {name}", "",
             f"A skin-lesion classifier trained with dermlab and exported by `dermlab export`. "
             f"Classes: {classes}. Input: {pre['image_size']} px RGB, normalised with mean {pre['mean']} and std "
             f"{pre['std']}.", "",
             "## Intended use", "", INTENDED_USE, "", "## What it must not be used for", "", NOT_FOR, "",
             "## Training data", "",
             f"Data set `{name}` (data module `{data.get('class', '?')}`); licence of its images and labels: "
             f"{DATA_LICENCES.get(name, 'see the data set’s own terms')}."]
    if data.get("synthetic"):
        lines += ["", "**The images are a synthetic twin** written by `dermlab synth` (the data set's layout, drawn "
                      "images): this model and its numbers only show that the pipeline runs, not how it does on skin."]
    counts = _count_table(run)
    if counts is not None:
        lines += ["", "Images per class and split (`splits/`):", "",
                  _markdown_table(counts.rename_axis("class").reset_index())]
    lines += ["", *_audit_lines(run), *_training_lines(config.get("training") or {}), "", "## Test results", ""]
    if data.get("test_on"):
        lines += [f"Tested on another data set's test split: `{data['test_on']}` (cross-data-set test).", ""]
    per_class = np.bincount(predictions.target, minlength=len(predictions.class_names))
    split_size = int(counts["test"].sum()) if counts is not None and "test" in counts else None
    if split_size and len(predictions) < split_size:
        lines += [f"**Partial test: {len(predictions)} of the split's {split_size} test images** were tested (a "
                  "limited test run, e.g. `limit_test_batches`); the numbers below are of those only.", ""]
    lines += [f"On {len(predictions)} test images ("
              + ", ".join(f"{c} {n}" for c, n in zip(predictions.class_names, per_class, strict=True))
              + f"), from `predictions_test.csv`; each number by the suite's one definition of it, with its 95 % "
              f"stratified bootstrap percentile interval ({N_BOOT} resamples within class, seed {SEED}).", "",
              "| metric | value | 95 % interval |", "|---|---|---|"]
    lines += [f"| {k} | {v.estimate:.4f} | [{v.low:.4f}, {v.high:.4f}] |" for k, v in metrics.items()]
    names = predictions.class_names
    if len(names) == 2:
        rule = (f"`{names[1]}` is the positive class: accuracy, sensitivity and specificity count "
                f"P({names[1]}) > 0.5 as positive (the ISIC scorer's threshold).")
    else:
        rule = "Accuracy, balanced accuracy and the recalls are of the argmax class; the AUCs are one-vs-rest."
    lines += ["", rule]
    few = [f"{c} ({n})" for c, n in zip(names, per_class, strict=True) if n < FEW]
    if few:
        lines += ["", f"Fewer than {FEW} test images of {', '.join(few)}: the stratified bootstrap keeps each class's "
                      "count, so these intervals are too narrow to trust (a class of one image resamples only itself)."]
    temperature = prediction.get("temperature")
    lines += ["", "## Calibration", "",
              f"Expected calibration error (15 bins) on the test split: {metrics['ece'].estimate:.4f} "
              f"[{metrics['ece'].low:.4f}, {metrics['ece'].high:.4f}]." if "ece" in metrics else "",
              f"Temperature scaling: T = {temperature:.4f}, fitted on the validation split and applied to every "
              "prediction." if temperature else "No temperature scaling (the probabilities are the softmax outputs)."]
    subgroups = run / "subgroups_test.csv"
    if subgroups.is_file():
        table = pd.read_csv(subgroups, keep_default_na=False)
        keep = [c for c in ("attribute", "group", "n", "positives", "auc", "auc_low", "auc_high", "sensitivity",
                            "specificity", "note") if c in table.columns]
        numbers = [c for c in keep if c not in ("attribute", "group", "n", "positives", "note")]
        table[numbers] = table[numbers].map(lambda v: f"{v:.4f}" if isinstance(v, float) else v)
        lines += ["", "## Subgroups", "", "From `subgroups_test.csv` (95 % stratified bootstrap intervals; small "
                  "groups' intervals are wide or flagged in `note`):", "", _markdown_table(table[keep])]
    lines += metadata_lines(config.get("metadata"))
    views = pre.get("crops") or pre.get("views", 1)
    lines += ["", "## Preprocessing and prediction", "",
              f"- evaluation transforms: {_transforms_text(pre['eval_transforms'])} at {pre['image_size']} px, then "
              f"normalised with mean {pre['mean']} and std {pre['std']}"
              + (f", after a first resize to {pre['resize_to']}" if pre.get("resize_to") else "")
              + (f", from copies with the longer side {pre['max_side']} px" if pre.get("max_side") else ""),
              f"- {'crops' if pre.get('crops') else 'views'} per image: {views}; fusion: {prediction['fusion']}"
              + (f" ({prediction['crop_fusion']})" if prediction.get("crop_fusion") else ""),
              f"- test-time augmentation: {prediction.get('tta', 'none')}"
              + (" (`dermlab classify --tta` applies the run's test-time views; the numbers above are with them)"
                 if views_at_test(config) else " (one view per image, as `dermlab classify` gives by default)"),
              "", "## Licences", "",
              f"- weights it started from: {_weights_licence(config.get('started_from'))}",
              f"- training data: {DATA_LICENCES.get(name, 'see the data set’s own terms')}"
              + (" — a model trained on non-commercial data may carry that restriction"
                 if "NC" in DATA_LICENCES.get(name, "") else ""),
              "- code: dermlab, MIT", "",
              "## How to use", "", *usage_lines(config.get("metadata")), "",
              "## Provenance", "",
              f"- run `{source.get('run_name', run.name)}`, checkpoint `{source.get('checkpoint')}` (epoch "
              f"{source.get('epoch')}, step {source.get('global_step')}), SHA-256 `{source.get('checkpoint_sha256')}`",
              f"- dermlab {source.get('dermlab_version')}, torch {source.get('torch_version')}, timm "
              f"{source.get('timm_version')}", ""]
    return "\n".join(lines)


def metadata_lines(metadata: dict[str, Any] | None) -> list[str]:
    """The "Patient metadata" section for a package with a metadata branch (``config.json``'s ``metadata``,
    :func:`lightning_modules.nets.package_metadata.metadata_summary`); nothing for an image-only model."""
    if not metadata:
        return []
    lines = ["", "## Patient metadata", "",
             f"Beside each image the model takes the patient's {', '.join(f'`{f}`' for f in metadata['fields'])} "
             "(the ISIC 2019 winners' metadata branch, Gessert et al., MethodsX 2020, doi:10.1016/j.mex.2020.100864): "
             "a dense network over the encoded fields, fused with the image features before the classifier. "
             "`dermlab classify` needs them (`--metadata CSV`, one row per image), and so does `predict` "
             "(`metadata=` a DataFrame, one row per image in order). The encoding was fitted on the training split; "
             "a missing value (empty, NaN or `unknown`) is a category of its own, and so is a category the training "
             "split never had (it is encoded as missing, and counted in a log line):", ""]
    for name, field in metadata["by_field"].items():
        columns = " or ".join(f"`{c}`" for c in field["accepted_columns"])
        if name == "age":
            how = (f"years, standardised with the training mean {field['mean']:.2f} and standard deviation "
                   f"{field['std']:.2f}, plus a missing indicator")
        else:
            how = ("one-hot over the training categories " + ", ".join(f"`{c}`" for c in field["categories"])
                   + ", plus `missing`")
        lines.append(f"- `{name}` (column {columns}): {how}")
    return lines


def usage_lines(metadata: dict[str, Any] | None) -> list[str]:
    """The "How to use" commands, with the metadata a metadata model needs."""
    if not metadata:
        return ["```bash", "dermlab classify --model PKG_DIR IMAGE_OR_DIR --out predictions.csv", "```", "",
                "```python", "import dermlab", "model = dermlab.load_model(\"PKG_DIR\")",
                "probabilities = model.predict([\"lesion.jpg\"])  # (N, classes), columns model.class_names", "```"]
    fields = list(metadata["fields"])
    example = {"age": 55, "sex": "female", "localization": "back"}
    return ["```bash", "# metadata.csv: image," + ",".join(fields) + " (one row per image; empty where unknown)",
            "# e.g.  lesion," + ",".join(str(example.get(f, "")) for f in fields),
            "dermlab classify --model PKG_DIR IMAGE_OR_DIR --metadata metadata.csv --out predictions.csv", "```", "",
            "```python", "import dermlab", "import pandas as pd", "model = dermlab.load_model(\"PKG_DIR\")",
            "metadata = pd.DataFrame({" + ", ".join(f"{json.dumps(f)}: [{json.dumps(example.get(f))}]" for f in fields)
            + "})  # one row per image",
            "probabilities = model.predict([\"lesion.jpg\"], metadata=metadata)  # (N, classes)", "```"]


def views_at_test(config: dict[str, Any]) -> bool:
    """Whether the run was tested with more than one view per image (several views, or D4 averaging)."""
    return config["preprocessing"].get("views", 1) > 1 or config["prediction"].get("tta") == "dihedral"


def read_card_header(path: Path) -> dict[str, Any]:
    """The YAML header of a model card (between the first two ``---`` lines)."""
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return {}
    return yaml.safe_load(text[4:text.index("\n---", 4)])
