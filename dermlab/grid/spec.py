"""Grid files: ``experiments/<paper>/tables/<table>.yaml``.

Keys (anything else is an error)::

    paper: baseline                    # W&B tag and run-folder level
    table: backbone_seed               # W&B group and run-folder level
    title: "..."                       # heading of the rendered table
    dataset: isic2017                  # W&B tag; read from <data root>/<its folder>
                                       # (dermlab.files.data_folders), or the synthetic set written when no data
                                       # root is given
    config: [experiments/demo_synthetic.yaml]    # base config file(s), as `-c` in order
    args: [--trainer.max_epochs, "12"] # extra CLI arguments of every cell (optional)
    synthetic: {n: 300, size: 64, args: [...], data_args: {...}, replace: {argument: argument},
                axes: {seed_everything: [0, 1, 2]},
                settings: {variant: {SegAN: {model.init_args.encoder: vgg_tiny_bn}}}}
                                       # the synthetic default: size, extra arguments, swapped arguments, and
                                       # the subset of axis values it runs (the others report as missing), and
                                       # settings added last to the cells of an axis value: the CPU stand-in,
                                       # taken on the synthetic default and by --smoke on any data
    axes:                              # the grid: every combination is a cell
      model.init_args.backbone: [resnet18, resnet34]
      model.init_args.pretrained_weights: {TL: weights/x.safetensors, noTL: null}   # labelled values
      variant: {"R / L24": {model.init_args.aux_layers: [L24]}, ...}     # a labelled mapping sets several keys
      seed_everything: [0, 1, 2]
    rows: [model.init_args.backbone]   # axes that make table rows; the others (seeds, folds) are averaged
    metrics: [test/auc, test/accuracy] # logged metric names to report
    scale: 100                         # multiply metrics by this in the table (papers report %)
    paper_values:                      # the paper's numbers per row label (row values joined by " / ")
      resnet18: {test/auc: 85.7}
    ttests:                            # one-sided two-sample t-tests (Student, pooled variance)
      - {metric: test/auc, greater: {model.init_args.backbone: resnet34}, than: {model.init_args.backbone: resnet18}}
    paired_tests:                      # per cell pair on the same test images: DeLong (test/auc) or McNemar
      - {metric: test/auc, a: {backbone: resnet34}, b: {backbone: resnet18}}     # (test/accuracy, balanced_accuracy)
    statistics: {n_boot: 2000, seed: 0} # the bootstrap intervals' replicates and seed (these are the defaults)
    data_args: {isic2016: [...]}       # extra arguments of the cells on one data set (optional)
    predict: true                      # also write the test set's submission CSV (masks: and their full-size
                                       # scores, full/<metric>) per cell (optional)
    cells_of: table1                   # render from another table's run folders instead of running own cells
    average_over: [data.init_args.task] # average metrics over these axes per cell first (e.g. "average AUC")
    figure: {x: model.init_args.crop_dropout, metric: test/balanced_accuracy, series: data.init_args.eval_crops}
                                       # also draw figure.png: the metric (mean ± std) over an axis, a line per
                                       # value of ``series`` (optional); or {bars: [test/recall_MEL, ...]}: the
                                       # metrics' means as grouped bars, one bar per row. A list of such
                                       # mappings, each with a ``name``, draws <name>.png for each.
    exclude:                           # combinations that are not cells (an axis value or a list of them each)
      - {variant: DeepLabV3+, seed_everything: [2, 3]}
    slurm: {gpus_per_cell: 1, cpus_per_cell: 8, time: "12:00:00", mem: 64G, partition: gpu,
            sbatch: {account: lab}, setup: [module load cuda]}
                                       # what each cell's job asks for under ``grid run --launcher slurm``
                                       # (dermlab.grid.job_resources; the command's options override it)

A data root holds one sub-folder per data set (:mod:`dermlab.files.data_folders`: ``isic2018_task3`` reads
``<data root>/isic2018``). A ``dataset`` axis makes the data set a grid dimension: each cell reads
``experiments/base/data/<dataset>.yaml`` and its root is ``<data root>/<folder>`` (or the synthetic
``data/synthetic/<dataset>_n<N>_<size>px``); ``synthetic.data_args`` adds arguments per data set to the stand-in.
In any value, ``{data:NAME}`` is data set NAME's folder under the data root (its synthetic twin of the grid's size
without one, written first), e.g. the ``test_on`` root of a cross-data-set cell; ``{synthetic:NAME}`` is always
the synthetic twin. An argument ``@cell(key=value, ...)`` stands for the run folder of the cell that differs from
the current one only in those axes (short names) — e.g. the stage-1 run a stage-2 cell builds on;
such cells run after the cells they refer to. References may also sit inside a list value
(``[@cell(seed=0), @cell(seed=1)]``, e.g. the members of an ensemble). ``@cell(other_table: key=value, ...)``
names a cell of another table of the same paper (``<this folder>/other_table.yaml``; its run folder sits beside
this table's): the axes that table shares with this one (same key, e.g. ``data.init_args.cv_fold``) take this
cell's values, the pairs set the rest — e.g. the ``isic2018`` task 2 cells start from the task 1 run of their
fold. That table must be run first (a cell whose reference has not finished stops with the missing folder named).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dermlab.errors import DataError

KEYS = {"paper", "table", "title", "dataset", "config", "args", "synthetic", "axes", "rows", "metrics", "scale",
        "paper_values", "ttests", "notes", "data_args", "predict", "cells_of", "average_over", "figure", "exclude",
        "paired_tests", "statistics", "slurm"}
STATISTICS = {"n_boot": 2000, "seed": 0}  # defaults of the ``statistics`` key
CELL_REF = re.compile(r"@cell\(([^)]*)\)")


@dataclass
class Cell:
    """One run of the grid: a value for every axis."""

    values: dict[str, Any]
    id: str
    settings: dict[str, Any] = field(default_factory=dict)  # the CLI values (differ from labels on labelled axes)
    table: str = ""  # set on a cell of another table named by ``@cell(table: ...)``

    def row(self, rows: list[str]) -> str:
        """The cell's row label in the report: its values on the ``rows`` axes, in that order, joined by " / "."""
        return " / ".join(str(self.values[r]) for r in rows)


@dataclass
class GridSpec:
    """A grid file, read and checked (:func:`load`): its keys (module docstring) and the file it came from."""

    path: Path
    paper: str
    table: str
    config: list[str]
    axes: dict[str, list]
    metrics: list[str]
    rows: list[str]
    title: str = ""
    dataset: str = "isic2017"
    args: list[str] = field(default_factory=list)
    synthetic: dict = field(default_factory=dict)
    scale: float = 1.0
    paper_values: dict[str, dict[str, float]] = field(default_factory=dict)
    ttests: list[dict] = field(default_factory=list)
    notes: str = ""
    data_args: dict[str, list[str]] = field(default_factory=dict)
    predict: bool = False
    cells_of: str = ""
    average_over: list[str] = field(default_factory=list)
    figure: dict | list = field(default_factory=dict)
    exclude: list[dict] = field(default_factory=list)
    paired_tests: list[dict] = field(default_factory=list)
    statistics: dict = field(default_factory=lambda: dict(STATISTICS))
    slurm: dict = field(default_factory=dict)  # a cell's job resources (``dermlab.grid.job_resources``)
    only: set[str] | None = None  # the ids of the cells to run (None: all); ``grid run --first N`` sets it

    def fold_axis(self) -> str | None:
        """The cross-validation axis (``data.init_args.fold`` or ``...cv_fold``), or None."""
        return next((a for a in self.axes if a.rsplit(".", 1)[-1] in ("fold", "cv_fold")), None)

    def figures(self) -> list[dict]:
        """The ``figure`` entries as a list (a single mapping is one figure named ``figure``)."""
        return [self.figure] if isinstance(self.figure, dict) and self.figure else list(self.figure or [])

    def short_names(self) -> dict[str, str]:
        """Axis → the name used in cell ids and ``@cell(...)``: the last dotted part when that is unique."""
        short = [k.rsplit(".", 1)[-1] for k in self.axes]
        names = short if len(set(short)) == len(short) else list(self.axes)
        return dict(zip(self.axes, names, strict=True))

    def dataset_of(self, cell: Cell) -> str:
        """The data set ``cell`` runs on: its ``dataset`` axis value, else the grid's ``dataset``."""
        return str(cell.values.get("dataset", self.dataset))

    def excluded(self, values: dict[str, Any]) -> bool:
        """Whether an ``exclude`` entry matches these axis values (entry keys: axis or short names)."""
        by_short = {short: axis for axis, short in self.short_names().items()}
        for entry in self.exclude:
            if all(cli_value(values[by_short.get(k, k)]) in {cli_value(v) for v in (w if isinstance(w, list) else [w])}
                   for k, w in entry.items()):
                return True
        return False

    def substitute(self, cell: Cell, text: str, folder: Callable[[Cell], Path]) -> str:
        """``text`` with every ``@cell(...)`` replaced by ``folder(referenced cell)``."""
        return CELL_REF.sub(lambda match: str(folder(self.referenced(cell, match.group(0)))), text)

    def referenced(self, cell: Cell, text: str) -> Cell | None:
        """The cell an ``@cell(key=value, ...)`` argument names, relative to ``cell``; None if no reference."""
        match = CELL_REF.fullmatch(text)
        if not match:
            return None
        table, colon, pairs = match.group(1).partition(":")
        if colon and "=" not in table:
            return self.referenced_elsewhere(cell, table.strip(), pairs, text)
        by_short = {short: axis for axis, short in self.short_names().items()}
        wanted = dict(cell.values)
        for pair in filter(None, (p.strip() for p in match.group(1).split(","))):
            key, _, value = pair.partition("=")
            axis = by_short.get(key.strip(), key.strip())
            if axis not in self.axes:
                raise DataError(f"grid '{self.path}': {text} names {key!r}, which is not an axis ({list(by_short)}).")
            wanted[axis] = yaml.safe_load(value.strip())
        for other in self.cells():
            if all(cli_value(other.values[k]) == cli_value(v) for k, v in wanted.items()):
                return other
        raise DataError(f"grid '{self.path}': {text} from cell {cell.id} matches no cell of the grid.")

    def referenced_elsewhere(self, cell: Cell, table: str, pairs: str, text: str) -> Cell:
        """The cell of table ``table`` (a grid file beside this one) that ``@cell(table: pairs)`` names."""
        other = load(self.path.parent / f"{table}.yaml")
        by_short = {short: axis for axis, short in other.short_names().items()}
        wanted = {axis: cell.values[axis] for axis in other.axes if axis in self.axes}
        for pair in filter(None, (p.strip() for p in pairs.split(","))):
            key, _, value = pair.partition("=")
            axis = by_short.get(key.strip(), key.strip())
            if axis not in other.axes:
                raise DataError(f"grid '{self.path}': {text} names {key!r}, which is not an axis of {table} "
                                f"({list(by_short)}).")
            wanted[axis] = yaml.safe_load(value.strip())
        unset = [axis for axis in other.axes if axis not in wanted]
        if unset:
            raise DataError(f"grid '{self.path}': {text} leaves {unset} of {table} unset; name them.")
        for candidate in other.cells():
            if all(cli_value(candidate.values[k]) == cli_value(v) for k, v in wanted.items()):
                return Cell(candidate.values, candidate.id, candidate.settings, table=other.table)
        raise DataError(f"grid '{self.path}': {text} from cell {cell.id} matches no cell of {table}.")

    def cells(self) -> list[Cell]:
        """Every combination of axis values, in file order; ids are readable and filesystem-safe."""
        keys = list(self.axes)
        names = list(self.short_names().values())
        cells = []
        for combo in itertools.product(*(list(v) for v in self.axes.values())):
            slug = "__".join(f"{n}={re.sub(r'[^A-Za-z0-9._-]+', '-', str(v))}" for n, v in zip(names, combo,
                                                                                               strict=True))
            values = dict(zip(keys, combo, strict=True))
            if self.exclude and self.excluded(values):
                continue
            settings = {k: self.axes[k][v] if isinstance(self.axes[k], dict) else v for k, v in values.items()}
            cells.append(Cell(values, slug, settings))
        return cells

    def run_root(self, runs: Path, smoke: bool) -> Path:
        """The folder of the cells' run folders: ``<runs>/grids[-smoke]/<paper>/<table>``, or ``…/<cells_of>`` for
        a table rendered from another table's runs."""
        return runs / ("grids-smoke" if smoke else "grids") / self.paper / (self.cells_of or self.table)

    def report_root(self, runs: Path, smoke: bool) -> Path:
        """Where the table's ``report.md`` / ``report.csv`` go: ``<runs>/grids[-smoke]/<paper>/<table>``."""
        return runs / ("grids-smoke" if smoke else "grids") / self.paper / self.table


def cli_value(value: Any) -> str:
    """A value as LightningCLI reads it on the command line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, dict)):
        return yaml.safe_dump(value, default_flow_style=True).strip()
    return str(value)


def load(path: str | Path) -> GridSpec:
    """Read a grid file, stopping on unknown keys and inconsistent axes before anything trains."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"grid file '{path}' does not exist.")
    raw = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise DataError(f"grid '{path}' has unknown key(s) {unknown}; allowed: {sorted(KEYS)}.")
    missing = [k for k in ("paper", "table", "config", "axes", "metrics") if k not in raw]
    if missing:
        raise DataError(f"grid '{path}' lacks {missing}.")
    axes = raw["axes"]
    if not isinstance(axes, dict) or not axes or not all(isinstance(v, (list, dict)) and v for v in axes.values()):
        raise DataError(f"grid '{path}': axes must map config keys to non-empty lists of values "
                        "(or to {label: value} mappings).")
    rows = raw.get("rows", [k for k in axes if "seed" not in k and "fold" not in k])
    bad_rows = [r for r in rows if r not in axes]
    if bad_rows:
        raise DataError(f"grid '{path}': rows {bad_rows} are not axes ({list(axes)}).")
    config = raw["config"] if isinstance(raw["config"], list) else [raw["config"]]
    for name in config:
        if not Path(name).is_file():
            raise DataError(f"grid '{path}': base config '{name}' does not exist (paths are relative to the repo).")
    spec = GridSpec(path=path, paper=raw["paper"], table=raw["table"], config=config, axes=axes,
                    metrics=list(raw["metrics"]), rows=rows, title=raw.get("title", raw["table"]),
                    dataset=raw.get("dataset", "isic2017"), args=[str(a) for a in raw.get("args", [])],
                    synthetic=raw.get("synthetic", {}), scale=float(raw.get("scale", 1.0)),
                    paper_values=raw.get("paper_values", {}) or {}, ttests=raw.get("ttests", []) or [],
                    notes=raw.get("notes", ""), data_args={k: [str(a) for a in v] for k, v in
                                                           (raw.get("data_args") or {}).items()},
                    predict=bool(raw.get("predict", False)), cells_of=raw.get("cells_of", ""),
                    average_over=list(raw.get("average_over", [])), figure=raw.get("figure") or {},
                    exclude=list(raw.get("exclude") or []), paired_tests=list(raw.get("paired_tests") or []),
                    statistics=statistics_settings(path, raw.get("statistics")), slurm=raw.get("slurm") or {})
    from dermlab.grid.job_resources import from_mapping

    from_mapping(spec.slurm, f"grid '{path}': slurm")  # its errors stop here, before anything trains
    short = spec.short_names().values()
    for entry in spec.exclude:
        if not isinstance(entry, dict) or not all(k in axes or k in short for k in entry):
            raise DataError(f"grid '{path}': an exclude entry maps axes (or their short names) to values; got {entry}.")
    stray_axes = [a for a in spec.average_over if a not in axes or a in rows]
    if stray_axes:
        raise DataError(f"grid '{path}': average_over {stray_axes} must be axes that are not rows.")
    if "dataset" in axes:
        for name in axes["dataset"]:
            if not Path(f"experiments/base/data/{name}.yaml").is_file():
                raise DataError(f"grid '{path}': dataset {name!r} has no experiments/base/data/{name}.yaml.")
    for figure in spec.figures():
        lines = {"x", "metric"} <= set(figure) <= {"x", "metric", "series", "title", "name"} and \
            figure["metric"] in spec.metrics and all(figure[k] in axes for k in ("x", "series") if k in figure)
        bars = set(figure) <= {"bars", "title", "name", "ylabel"} and isinstance(figure.get("bars"), list)
        if not (lines or bars):
            raise DataError(f"grid '{path}': a figure needs x (an axis), metric (one of metrics) and optionally "
                            f"series (an axis), or bars (a list of metrics); title and name are optional; "
                            f"got {figure}.")
    labels = {cell.row(rows) for cell in spec.cells()}
    stray = sorted(set(spec.paper_values) - labels)
    if stray:
        raise DataError(f"grid '{path}': paper_values rows {stray} match no row; rows are {sorted(labels)}.")
    for test in spec.ttests:
        if set(test) != {"metric", "greater", "than"} or not (set(test["greater"]) | set(test["than"])) <= set(axes):
            raise DataError(f"grid '{path}': a t-test needs metric, greater and than, filtering on axes: {test}.")
    from dermlab.grid.paired import check_entry  # here: paired imports this module

    for entry in spec.paired_tests:
        check_entry(spec, entry)
    return spec


def statistics_settings(path: Path, raw: Any) -> dict:
    """The ``statistics`` key with its defaults: ``n_boot`` (int ≥ 1) and ``seed`` (int ≥ 0).

    Raises:
        DataError: an unknown key or a value that is not such an integer, naming it.
    """
    raw = raw or {}
    if not isinstance(raw, dict) or set(raw) - set(STATISTICS):
        raise DataError(f"grid '{path}': statistics takes {sorted(STATISTICS)} (e.g. {{n_boot: 2000, seed: 0}}); "
                        f"got {raw}.")
    settings = {**STATISTICS, **raw}
    for key, least in (("n_boot", 1), ("seed", 0)):
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise DataError(f"grid '{path}': statistics.{key} must be an integer ≥ {least}; got {value!r}.")
    return settings


def paper_tables(paper: str, experiments: Path = Path("experiments")) -> list[Path]:
    """The grid files of ``paper``: ``experiments/<paper>/tables/*.yaml``, sorted by name.

    Raises:
        DataError: the paper has no table yet.
    """
    tables = sorted((experiments / paper / "tables").glob("*.yaml"))
    if not tables:
        raise DataError(f"'{experiments / paper / 'tables'}' holds no table yet; the {paper} issue adds them.")
    return tables
