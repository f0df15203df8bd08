"""Search files: ``experiments/tuning/<name>.yaml``, what ``dermlab tune`` searches.

Keys (anything else is an error)::

    name: demo                          # the study: its folder is <runs>/tuning/<name> (default: the file's stem)
    title: "..."                        # one line saying what is searched (optional)
    config: [experiments/demo_synthetic.yaml]   # base config file(s), as `-c` in order (as grid files)
    dataset: isic2017                   # read from <data root>/<its folder>, or its synthetic twin without a root
    args: [--trainer.max_epochs, "4"]   # extra arguments of every trial (optional)
    synthetic: {n: 200, size: 64, args: [...]}  # the synthetic default's size and CPU stand-in arguments (as grid
                                        # files; taken without --data-root only)
    data_args: {isic2017: [...]}        # extra arguments on one data set (optional)
    objective: {metric: val/auc, direction: maximize}   # a validation metric the model logs; maximize | minimize
    trials: 20                          # how many trials the study has (``--trials`` overrides)
    sampler: {class: TPESampler, seed: 0}             # any optuna.samplers class and its arguments (default TPE)
    pruner: {class: MedianPruner, n_warmup_steps: 2}  # any optuna.pruners class and its arguments (default none)
    space:                              # config key → its range, in the order they are drawn
      model.init_args.optimizer.init_args.lr: {float: [1.0e-5, 1.0e-2], log: true, paper: 1.0e-4}
      model.init_args.focal_gamma: {float: [0.0, 5.0], step: 0.5, paper: 1.0}
      data.init_args.batch_size: {int: [16, 64], step: 16}
      model.init_args.backbone: {categorical: [resnet18, resnet34]}
      model.init_args.optimizer.init_args.momentum:     # drawn only when the condition holds (define-by-run)
        {float: [0.8, 0.99], when: {model.init_args.optimizer.class_path: torch.optim.SGD}}
    slurm: {gpus_per_cell: 1, time: "04:00:00"}        # a trial's job under --launcher slurm (as grid files)

A range is exactly one of ``float: [low, high]`` (``log: true`` for a log scale, or ``step``), ``int: [low, high]``
(``log`` or ``step``) and ``categorical: [choices]`` — Optuna's ``suggest_float`` / ``suggest_int`` /
``suggest_categorical``. ``paper:`` marks the value the paper used: the study's first trial runs the paper's values
(the others drawn), so every study measures the paper's setting beside what it finds. ``when:`` maps earlier keys
to a value (or a list of values) and draws the key only on trials where they hold; a key not drawn keeps its
config value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from dermlab.errors import DataError
from dermlab.grid.spec import GridSpec, cli_value, statistics_settings

if TYPE_CHECKING:
    import optuna

KEYS = {"name", "title", "config", "dataset", "args", "synthetic", "data_args", "objective", "trials", "sampler",
        "pruner", "space", "slurm"}
KINDS = ("float", "int", "categorical")
RANGE_OPTIONS = {"log", "step", "paper", "when"}
DIRECTIONS = ("maximize", "minimize")


@dataclass(frozen=True)
class Range:
    """One searched config key: ``kind`` (float | int | categorical), ``values`` ([low, high] or the choices),
    ``log``, ``step``, the paper's value (``paper``; None when not given) and ``when`` (earlier key → the values
    under which this one is drawn)."""

    key: str
    kind: str
    values: list
    log: bool = False
    step: float | int | None = None
    paper: Any = None
    when: dict[str, list] = field(default_factory=dict)

    def suggest(self, trial: optuna.trial.BaseTrial) -> Any:
        """Draw this key's value on ``trial`` (Optuna's ``suggest_*``; the parameter is named by the config key)."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.key, self.values)
        low, high = self.values
        if self.kind == "int":
            return trial.suggest_int(self.key, int(low), int(high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, float(low), float(high), step=self.step, log=self.log)

    def applies(self, drawn: dict[str, Any]) -> bool:
        """Whether the ``when`` conditions hold on the values drawn so far (compared as the CLI reads them)."""
        return all(key in drawn and cli_value(drawn[key]) in {cli_value(v) for v in values}
                   for key, values in self.when.items())


@dataclass
class SearchSpec:
    """A search file, read and checked (:func:`load`)."""

    path: Path
    name: str
    config: list[str]
    metric: str
    direction: str
    space: list[Range]
    trials: int = 20
    title: str = ""
    dataset: str = "isic2017"
    args: list[str] = field(default_factory=list)
    synthetic: dict = field(default_factory=dict)
    data_args: dict[str, list[str]] = field(default_factory=dict)
    sampler: dict = field(default_factory=lambda: {"class": "TPESampler", "seed": 0})
    pruner: dict = field(default_factory=lambda: {"class": "NopPruner"})
    slurm: dict = field(default_factory=dict)

    def grid(self) -> GridSpec:
        """The search as a one-cell grid, so that a trial's arguments, data folder, synthetic twin and job
        resources come from the grid machinery (:func:`dermlab.grid.runner.cell_args`)."""
        return GridSpec(path=self.path, paper="tuning", table=self.name, config=self.config, axes={},
                        metrics=[self.metric], rows=[], title=self.title, dataset=self.dataset, args=self.args,
                        synthetic=self.synthetic, data_args=self.data_args, slurm=self.slurm,
                        statistics=statistics_settings(self.path, None))

    def draw(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        """The values of one trial, key by key in file order; a key whose ``when`` does not hold is left out."""
        drawn: dict[str, Any] = {}
        for entry in self.space:
            if entry.applies(drawn):
                drawn[entry.key] = entry.suggest(trial)
        return drawn

    def paper_values(self) -> dict[str, Any]:
        """The paper's value of every key that names one (``paper:``), for the study's first trial."""
        return {entry.key: entry.paper for entry in self.space if entry.paper is not None}

    def build_sampler(self, slot: int) -> optuna.samplers.BaseSampler:
        """The file's sampler; a ``seed`` becomes ``seed + slot``, so trials started side by side (or one per process,
        as every trial is) draw differently, and the same study run again draws the same values."""
        import optuna

        kwargs = {k: v for k, v in self.sampler.items() if k != "class"}
        if kwargs.get("seed") is not None:
            kwargs["seed"] = int(kwargs["seed"]) + slot
        return _optuna_class(optuna.samplers, self.sampler.get("class", "TPESampler"), "sampler", self.path)(**kwargs)

    def build_pruner(self) -> optuna.pruners.BasePruner:
        """The file's pruner (``NopPruner`` when it names none)."""
        import optuna

        kwargs = {k: v for k, v in self.pruner.items() if k != "class"}
        return _optuna_class(optuna.pruners, self.pruner.get("class", "NopPruner"), "pruner", self.path)(**kwargs)

    def study_dir(self, runs: Path) -> Path:
        """The study's folder: ``<runs>/tuning/<name>``."""
        return runs / "tuning" / self.name


def _optuna_class(module: Any, name: str, what: str, path: Path) -> type:
    cls = getattr(module, str(name), None)
    if not isinstance(cls, type):
        known = sorted(n for n in dir(module) if n.endswith(what.capitalize()) and not n.startswith("Base"))
        raise DataError(f"search '{path}': {what} class {name!r} is not in optuna.{what}s; choose one of {known}.")
    return cls


def load(path: str | Path) -> SearchSpec:
    """Read a search file, stopping on anything malformed before a trial runs.

    Raises:
        DataError: an unknown key, a missing one, a base config that is not there, an objective that is not a
            validation metric (``val/...``: the test split is never read during a study), a range that is not
            exactly one of float / int / categorical, a low above its high, a log range through zero, or a
            ``when`` naming a key not drawn before it — the message names the key.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"search file '{path}' does not exist.")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise DataError(f"search '{path}': expected a mapping of keys ({sorted(KEYS)}).")
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise DataError(f"search '{path}' has unknown key(s) {unknown}; allowed: {sorted(KEYS)}.")
    missing = [k for k in ("config", "objective", "space") if k not in raw]
    if missing:
        raise DataError(f"search '{path}' lacks {missing}.")
    config = raw["config"] if isinstance(raw["config"], list) else [raw["config"]]
    for name in config:
        if not Path(name).is_file():
            raise DataError(f"search '{path}': base config '{name}' does not exist (paths are relative to the repo).")
    objective = raw["objective"] if isinstance(raw["objective"], dict) else {}
    metric, direction = str(objective.get("metric", "")), objective.get("direction", "maximize")
    if not metric.startswith("val/") or set(objective) - {"metric", "direction"}:
        raise DataError(f"search '{path}': objective must be {{metric: val/<name>, direction: maximize|minimize}} "
                        f"with a validation metric — a study never reads the test split (--final-test tests the best "
                        f"trial once, after the study); got {raw['objective']!r}.")
    if direction not in DIRECTIONS:
        raise DataError(f"search '{path}': objective.direction must be one of {DIRECTIONS}; got {direction!r}.")
    trials = raw.get("trials", 20)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise DataError(f"search '{path}': trials must be a positive integer; got {trials!r}.")
    for key in ("sampler", "pruner", "synthetic", "slurm", "data_args"):
        if raw.get(key) is not None and not isinstance(raw[key], dict):
            raise DataError(f"search '{path}': {key} must be a mapping; got {raw[key]!r}.")
    spec = SearchSpec(path=path, name=str(raw.get("name") or path.stem), config=config, metric=metric,
                      direction=direction, space=_space(path, raw["space"]), trials=trials,
                      title=str(raw.get("title", "")), dataset=str(raw.get("dataset", "isic2017")),
                      args=[str(a) for a in raw.get("args") or []], synthetic=raw.get("synthetic") or {},
                      data_args={k: [str(a) for a in v] for k, v in (raw.get("data_args") or {}).items()},
                      slurm=raw.get("slurm") or {})
    if raw.get("sampler"):
        spec.sampler = dict(raw["sampler"])
    if raw.get("pruner"):
        spec.pruner = dict(raw["pruner"])
    for what, build in (("sampler", spec.build_sampler), ("pruner", spec.build_pruner)):
        try:  # a wrong class or argument stops here
            build(0) if what == "sampler" else build()
        except (TypeError, ValueError) as error:
            raise DataError(f"search '{path}': {what} {getattr(spec, what)}: {error}.") from None
    if not Path(f"experiments/base/data/{spec.dataset}.yaml").is_file():
        raise DataError(f"search '{path}': dataset {spec.dataset!r} has no experiments/base/data/{spec.dataset}.yaml.")
    from dermlab.grid.job_resources import from_mapping

    from_mapping(spec.slurm, f"search '{path}': slurm")
    return spec


def _space(path: Path, raw: Any) -> list[Range]:
    if not isinstance(raw, dict) or not raw:
        raise DataError(f"search '{path}': space must map config keys to ranges, e.g. "
                        "{model.init_args.optimizer.init_args.lr: {float: [1.0e-5, 1.0e-2], log: true}}.")
    space: list[Range] = []
    for key, entry in raw.items():
        where = f"search '{path}': space key {key!r}"
        kinds = [k for k in KINDS if isinstance(entry, dict) and k in entry]
        if len(kinds) != 1 or set(entry) - {*KINDS, *RANGE_OPTIONS}:
            raise DataError(f"{where} needs exactly one of float: [low, high], int: [low, high], categorical: "
                            f"[choices], and optionally {sorted(RANGE_OPTIONS)}; got {entry!r}.")
        kind, values = kinds[0], entry[kinds[0]]
        if not isinstance(values, list) or not values or (kind != "categorical" and (
                len(values) != 2 or not all(_number(v) for v in values) or values[0] > values[1])):
            raise DataError(f"{where}: {kind} takes " + ("a non-empty list of choices" if kind == "categorical"
                                                         else "[low, high] with low ≤ high") + f"; got {values!r}.")
        log, step = entry.get("log", False), entry.get("step")
        if not isinstance(log, bool):
            raise DataError(f"{where}: log is true or false; got {log!r}.")
        if kind == "categorical" and (log or step is not None):
            raise DataError(f"{where}: log and step are for float and int ranges.")
        if kind == "categorical" and not all(v is None or isinstance(v, (bool, int, float, str)) for v in values):
            raise DataError(f"{where}: categorical choices are numbers, strings, true/false or null (Optuna stores "
                            f"no lists or mappings); got {values!r}. Search a list through separate keys, or name "
                            "the choices and map them in a config.")
        if step is not None and (not _number(step) or step <= 0 or step > values[1] - values[0]):
            raise DataError(f"{where}: step must be positive and at most high - low ({values[1] - values[0]}); "
                            f"got {step!r}.")
        if log and (values[0] <= 0 or step is not None):
            raise DataError(f"{where}: a log range needs low > 0 and no step; got {values!r}.")
        paper = entry.get("paper")
        if paper is not None and not (paper in values if kind == "categorical" else
                                      _number(paper) and values[0] <= paper <= values[1]):
            raise DataError(f"{where}: the paper's value {paper!r} lies outside {values!r}.")
        if paper is not None and step is not None and kind != "categorical" and not math.isclose(
                (paper - values[0]) / step, round((paper - values[0]) / step), abs_tol=1e-9):
            raise DataError(f"{where}: the paper's value {paper!r} is not on the grid {values[0]} + k × {step}.")
        when = entry.get("when") or {}
        if not isinstance(when, dict) or not all(k in {r.key for r in space} for k in when):
            raise DataError(f"{where}: when must map keys drawn before it ({[r.key for r in space]}) to a value or a "
                            f"list of values; got {when!r}.")
        for earlier in (r for r in space if r.key in when and r.kind == "categorical"):
            wanted = when[earlier.key] if isinstance(when[earlier.key], list) else [when[earlier.key]]
            stray = [v for v in wanted if cli_value(v) not in {cli_value(c) for c in earlier.values}]
            if stray:
                raise DataError(f"{where}: when {earlier.key} is {stray!r}, which is not among its choices "
                                f"{earlier.values!r}: the key would never be drawn.")
        space.append(Range(key=str(key), kind=kind, values=list(values), log=log, step=step, paper=paper,
                           when={k: v if isinstance(v, list) else [v] for k, v in when.items()}))
    return space


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
