"""What grid cells and tuning trials will cost before they run (``dermlab grid plan``): GPU-hours and wall time.

A run's GPU time is what it trains and evaluates, weighted by its model's cost per image relative to a reference,
at the reference's training throughput T (images/s of training ResNet-50 at 224 px on one GPU)::

    GPU-seconds = (E · N_train · c_train + (V · N_val + N_test) · c_eval / 3) / T

* E: epochs, ``trainer.max_epochs`` of the run's resolved config (Lightning's 1000 when neither it nor
  ``max_steps`` is set), or the epochs ``max_steps`` makes (× batch size, devices, ``accumulate_grad_batches``).
* N_train, N_val, N_test: images per split at the run's split settings: the published release sizes
  (:mod:`dermlab.files.split_sizes`) or, with a data root, the images the datamodule's split files list (nothing
  decoded). N_train counts an image ``train_repeats`` times; a ``test_on`` run tests on the other data set's test
  split; ``limit_*_batches`` apply. V: validation passes, E / ``check_val_every_n_epoch``.
* c_train, c_eval: forward FLOPs of the run's LightningModule on one training sample and on one evaluated image
  (all its ``train_crops`` / ``eval_crops`` crops, ``eval_views`` views, the 8 ``tta: dihedral`` flips), counted by
  ``torch.utils.flop_counter.FlopCounterMode`` on the ``meta`` device at batch 1, over ResNet-50's at 224 px.
* T: ``--throughput``, else the ``fit`` row (``dermlab fit``, eager, as cells run) of
  ``benchmarks/results/gpu_resnet50.csv``, which ``make bench-gpu`` writes (:func:`reference_throughput`).

:func:`project` is the arithmetic on plain numbers; :func:`plan_table` (a grid's cells at the paper's settings,
never the CPU stand-in) and :func:`plan_runs` (a tuning study's trials) read the runs' configs. What the projection
takes for granted is :data:`ASSUMPTIONS`, printed under every projection :mod:`dermlab.grid.plan_report` renders.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import importlib
import io
import json
import logging
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dermlab.errors import DataError
from dermlab.files.split_sizes import images_per_split
from dermlab.grid.spec import GridSpec

EVAL_SHARE = 1 / 3  #: cost of evaluating an image relative to training on it (forward only vs forward + backward)
REFERENCE = ("resnet50", 224)  #: timm ``resnet50`` at 224 px: the model ``make bench-gpu`` times
BENCH_RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
#: the arguments that name a run rather than say what it computes (cells that differ only in these cost the same)
IDENTITY = ("--run.name", "--run.job_type", "--run.tags", "--trainer.default_root_dir", "--seed_everything")
#: what every projection takes for granted, printed under it
ASSUMPTIONS = (
    "GPU time scales with forward FLOPs per image relative to ResNet-50 at 224 px, trained at the reference "
    "throughput: no allowance for data loading, small batches, memory-bound layers or a model's own efficiency.",
    "Evaluating an image costs one third of training on it (forward only); validation runs every "
    "check_val_every_n_epoch epochs, the test once.",
    "Epochs are trainer.max_epochs (an upper bound with early stopping), or what max_steps makes of them.",
    "Only the module's forward is counted: networks a method adds in its training step alone (SegAN's critic, the "
    "deeply supervised heads, a triplet batch's extra images) are not; nor are prediction passes after the test, "
    "the sanity check, start-up and checkpoints. An ensemble costs the sum of its members.",
    "A run's GPU-hours do not depend on how many GPUs it uses.",
    "Wall time per table is the lower bound max(GPU-hours / GPUs, the longest chain of cells that start from one "
    "another); a paper's tables run one after another (grid run --paper), so its wall time is the sum of theirs.",
)


@dataclass(frozen=True)
class RunCost:
    """What one run trains and evaluates (images), and its model's cost per image relative to :data:`REFERENCE`."""

    name: str
    epochs: float
    train_images: int  #: per epoch, each image ``train_repeats`` times
    val_images: int  #: per validation pass
    val_passes: float
    test_images: int
    train_cost: float  #: forward FLOPs of one training sample over the reference's
    eval_cost: float  #: forward FLOPs of one evaluated image (all views, crops, flips) over the reference's
    after: tuple[str, ...] = ()  #: names of the runs it starts from (they run first)
    early_stopping: bool = False  #: ``epochs`` is an upper bound

    @property
    def trained(self) -> float:
        """The images trained on, epochs × training images per epoch."""
        return self.epochs * self.train_images

    @property
    def evaluated(self) -> float:
        """The images evaluated, validation passes × validation images + test images."""
        return self.val_passes * self.val_images + self.test_images

    def reference_images(self) -> float:
        """The run's work in reference training images: trained × c_train + evaluated × c_eval / 3."""
        return self.trained * self.train_cost + self.evaluated * self.eval_cost * EVAL_SHARE


@dataclass(frozen=True)
class Projection:
    """GPU-hours per run (``hours``, in the order of ``runs``) and in all, and the wall time on ``gpus`` GPUs at
    ``throughput`` reference training images/s."""

    runs: list[RunCost]
    hours: list[float]
    throughput: float
    gpus: int
    gpu_hours: float
    critical_path_hours: float  #: the longest chain of runs that start from one another
    wall_hours: float  #: max(gpu_hours / gpus, critical_path_hours)


def project(runs: Sequence[RunCost], throughput: float, gpus: int = 1) -> Projection:
    """Each run's GPU-hours (its reference images / ``throughput`` / 3600), their sum, and the wall time on ``gpus``
    GPUs running runs side by side: max(sum / gpus, the longest chain of runs linked by ``after``).

    Raises:
        DataError: a throughput or GPU count that is not positive.
    """
    if not throughput > 0 or gpus < 1:
        raise DataError(f"the throughput (images/s) and the GPU count must be positive; got {throughput}, {gpus}.")
    hours = [run.reference_images() / throughput / 3600 for run in runs]
    own = {run.name: h for run, h in zip(runs, hours, strict=True)}
    after = {run.name: [a for a in run.after if a in own] for run in runs}

    @functools.cache
    def chain(name: str) -> float:
        return own[name] + max((chain(a) for a in after[name]), default=0.0)

    critical, total = max((chain(run.name) for run in runs), default=0.0), sum(hours)
    return Projection(list(runs), hours, throughput, gpus, total, critical, max(total / gpus, critical))


def reference_throughput(folder: str | Path | None = None) -> tuple[float, str]:
    """Training images/s of ResNet-50 at 224 px on one GPU as ``make bench-gpu`` measured it, and where it is from:
    the ``fit`` row (``dermlab fit``, eager) of ``<folder>/gpu_resnet50.csv`` (default ``$DERMLAB_BENCH_RESULTS``,
    else ``benchmarks/results/``), the latest if several machines measured it.

    Raises:
        DataError: no such file or row; the message says to give ``--throughput`` or run ``make bench-gpu``.
    """
    path = Path(folder or os.environ.get("DERMLAB_BENCH_RESULTS") or BENCH_RESULTS) / "gpu_resnet50.csv"
    with contextlib.suppress(OSError), path.open(newline="", encoding="utf-8") as file:
        rows = [r for r in csv.DictReader(file) if r.get("quantity") == "fit" and r.get("unit") == "images/s"]
        row = max(rows, key=lambda r: r.get("date", ""), default=None)
        if row:
            return float(row["value"]), f"the fit row of {path} ({row.get('machine')}, {row.get('date')})"
    raise DataError(f"no measured training throughput ({path} holds no `fit` row): give one with --throughput "
                    "IMAGES_PER_S (training images/s of ResNet-50 at 224 px on one of your GPUs), or measure it on "
                    "the GPU with `make bench-gpu`, which writes that file.")


def _class(dotted: str) -> type:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _count(module: Any, shape: tuple[int, ...]) -> float:
    """Forward FLOPs of ``module`` on one meta-device input of ``shape``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module.eval()(torch.empty(shape, device="meta"))
    return float(counter.get_total_flops())


@functools.cache
def reference_flops() -> float:
    """Forward FLOPs of timm's ``resnet50`` (2 classes, as ``make bench-gpu`` trains it) on one 224 px image."""
    return forward_flops("timm.create_model", json.dumps({"model_name": REFERENCE[0], "num_classes": 2}),
                         ((1, 3, REFERENCE[1], REFERENCE[1]),))[0]


@functools.cache
def forward_flops(class_path: str, arguments: str, shapes: tuple[tuple[int, ...], ...]) -> tuple[float, ...]:
    """Forward FLOPs of the module ``class_path(**arguments)`` (keyword arguments as JSON), built on the ``meta``
    device (no weights read or allocated), at each input shape (batch 1); cached per (model arguments, shapes)."""
    import torch

    logging.disable(logging.WARNING)  # the backbones' "starting from RANDOM initialisation"
    try:
        with torch.device("meta"), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = _class(class_path)(**json.loads(arguments))
            return tuple(_count(module, shape) for shape in shapes)
    finally:
        logging.disable(logging.NOTSET)


def _relative_costs(config: Any, data: Any, references: Mapping[str, RunCost | None]) -> tuple[float, float]:
    """(c_train, c_eval) of a parsed config with its datamodule ``data``; ``references``: the run folders its
    arguments name (those of another table map to None). A list of such runs is an ensemble's members."""
    arguments = {k: v for k, v in config.model.init_args.as_dict().items() if k not in ("optimizer", "scheduler")}
    members = next((v for v in arguments.values() if isinstance(v, list) and v and
                    all(str(m) in references for m in v)), None)
    if members:  # each image goes through every member
        known = [references[str(m)] for m in members if references[str(m)] is not None]
        return sum(m.train_cost for m in known), sum(m.eval_cost for m in known)
    arguments.update(num_classes=data.num_classes, class_names=list(data.class_names))
    arguments.update({k: v for k, v in (("pretrained_weights", None), ("compile", False)) if k in arguments})
    side, crop = data.image_size, data.crop_size
    shapes = ((1, data.train_crops, 3, crop, crop) if data.train_crops else (1, 3, side, side),
              (1, data.eval_crops, 3, crop, crop) if data.eval_crops else (1, 3, side, side))
    try:
        flops = forward_flops(config.model.class_path, json.dumps(arguments, sort_keys=True, default=str), shapes)
    except (DataError, OSError):  # it reads a run it starts from (init_from): the same network without it
        stripped = {k: None if isinstance(v, str) and v in references else v for k, v in arguments.items()}
        if stripped == arguments:
            raise
        flops = forward_flops(config.model.class_path, json.dumps(stripped, sort_keys=True, default=str), shapes)
    views = data.eval_views * (8 if arguments.get("tta") == "dihedral" else 1)
    return flops[0] / reference_flops(), flops[1] * views / reference_flops()


def run_cost(args: list[str], name: str, count: bool = False, after: tuple[str, ...] = (),
             references: Mapping[str, RunCost | None] | None = None) -> RunCost:
    """What one ``dermlab fit`` run (its arguments, without the verb) trains and evaluates, and at what cost per
    image; the config is parsed and the datamodule built, nothing read but, with ``count``, its split files.

    Raises:
        DataError: invalid arguments, a data set without published sizes, a run bounded by neither max_epochs nor
            max_steps, or a model that cannot be built.
    """
    from dermlab.commands.trainer import config_parser

    config = config_parser().parse(args)
    settings = config.data.init_args.as_dict()
    data = _class(config.data.class_path)(**settings)
    trainer, batch = config.trainer, data.batch_size
    sizes = images_per_split(data, settings, count)
    sizes[0] *= data.train_repeats
    for index, split in enumerate(("train", "val", "test")):  # limit_*_batches: a fraction, or batches
        limit = trainer.get(f"limit_{split}_batches")
        if limit is not None:
            sizes[index] = round(sizes[index] * limit) if isinstance(limit, float) else min(sizes[index], limit * batch)
    train, val, test = sizes
    steps, epochs = trainer.get("max_steps") or -1, trainer.get("max_epochs")
    epochs = (-1 if steps > 0 else 1000) if epochs is None else epochs  # Lightning's defaults
    world = (trainer.get("devices") if isinstance(trainer.get("devices"), int) else 1) * (trainer.get("num_nodes") or 1)
    per_step = batch * max(world, 1) * (trainer.get("accumulate_grad_batches") or 1)
    epochs = min(epochs if epochs >= 0 else math.inf, steps * per_step / train if steps > 0 and train else math.inf)
    if math.isinf(epochs):
        raise DataError(f"{name}: neither trainer.max_epochs nor trainer.max_steps bounds the run.")
    passes = math.floor(epochs / (trainer.get("check_val_every_n_epoch") or 1)) if val else 0
    try:
        train_cost, eval_cost = _relative_costs(config, data, references or {})
    except (AttributeError, DataError, KeyError, OSError, RuntimeError, TypeError, ValueError) as error:
        raise DataError(f"{name}: its model ({config.model.class_path}) cannot be built to count its FLOPs: "
                        f"{(str(error) or type(error).__name__).splitlines()[0]}") from None
    stops = any(str(c.get("class_path", "")).endswith("EarlyStopping") for c in trainer.get("callbacks") or [])
    return RunCost(name, float(epochs), train, val, passes, test, train_cost, eval_cost, after, stops)


def plan_runs(args_list: list[list[str]], throughput: float | None = None, gpus: int = 1,
              names: Sequence[str] | None = None, count: bool = False) -> Projection:
    """The projection of N independent ``dermlab fit`` runs (a tuning study's trials, one run each) on ``gpus``
    GPUs side by side.

    Args:
        args_list: each run's ``dermlab fit`` arguments (``-c`` files and overrides; a leading ``fit`` is dropped).
        throughput: training images/s of ResNet-50 at 224 px on one GPU; None: :func:`reference_throughput`.
        gpus: the GPUs the runs share, one run per GPU at a time.
        names: one name per run (default ``trial 0``, ``trial 1``, ...).
        count: count each run's images under its configured data root instead of the published split sizes.

    Raises:
        DataError: as :func:`run_cost`, or no throughput measured and none given.
    """
    throughput = reference_throughput()[0] if throughput is None else throughput
    names = list(names) if names is not None else [f"trial {i}" for i in range(len(args_list))]
    runs = [run_cost(args[1:] if args[:1] == ["fit"] else list(args), name, count)
            for args, name in zip(args_list, names, strict=True)]
    return project(runs, throughput, gpus)


def plan_table(grid: GridSpec, throughput: float, gpus: int = 1, data_root: str | None = None) -> Projection:
    """The projection of a grid's cells at the paper's settings (``stand_in=False``: never the CPU stand-in), with
    their images counted under ``data_root`` if given (else the published split sizes); a cell runs after the
    cells of this table it starts from (``@cell``)."""
    from dermlab.files.data_folders import require_data_set_folder
    from dermlab.grid import runner

    base, todo = grid.run_root(Path("runs"), False), {}
    for cell in runner.runnable_cells(grid, False):
        dataset = grid.dataset_of(cell)
        root = str(require_data_set_folder(data_root, dataset)) if data_root else f"DATA_ROOT/{dataset}"
        args = runner.cell_args(grid, cell, base / cell.id, root, list(grid.data_args.get(dataset, [])), False,
                                data_root)
        todo[str(base / cell.id)] = (cell.id, args, runner.referenced_runs(args, base / cell.id))
    order, done, alike = list(todo), {}, {}
    while todo:  # a cell after the cells it starts from (an ensemble costs its members)
        ready = [key for key, (_, _, refs) in todo.items() if not any(str(r) in todo for r in refs)]
        if not ready:
            raise DataError(f"grid '{grid.path}': its cells start from one another in a circle: {list(todo)}")
        for key in ready:
            name, args, refs = todo.pop(key)
            after = tuple(done[str(r)].name for r in refs if str(r) in done)
            same = tuple(a for i, a in enumerate(args) if a not in IDENTITY and (not i or args[i - 1] not in IDENTITY))
            if same not in alike:
                alike[same] = run_cost(args, name, data_root is not None, after,
                                       {str(r): done.get(str(r)) for r in refs})
            done[key] = replace(alike[same], name=name, after=after)
    return project([done[key] for key in order], throughput, gpus)

