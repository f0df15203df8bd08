"""The Trainer verbs: ``dermlab fit|validate|test|predict -c experiments/...yaml`` are LightningCLI (omegaconf
parser mode, subclass mode for models and datamodules). :mod:`dermlab.cli` dispatches them here; the suite's own
commands are the other modules of :mod:`dermlab.commands`.

Run folder: every run writes to ``trainer.default_root_dir`` (default ``runs/<run.name>``):
checkpoints in ``checkpoints/`` (``last.ckpt`` included, so ``--ckpt_path last`` resumes), CSV
metrics in ``csv/version_N/`` (with the resolved ``config.yaml``), W&B files in ``wandb/`` and
plots in ``plots/``. Checkpoints are written atomically and checked before they are read
(:mod:`dermlab.files.checkpoints`); a NaN or infinite training loss stops the run (:mod:`callbacks.non_finite`).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import yaml
from jsonargparse import Namespace
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger
from typing_extensions import override

from callbacks.checkpoint import use_atomic_checkpoints
from dermlab.commands.config_errors import TIP_START, DermlabArgumentParser, instantiation_error, remember_argv, verbose
from dermlab.errors import DataError
from dermlab.files.checkpoints import checkpoint_error, read_checkpoint
from dermlab.runtime.resources import keep_freed_memory

if TYPE_CHECKING:
    from lightning.pytorch import LightningModule, Trainer

    from datamodules.base import ImageTableDataset, SkinDataModule

WANDB_MODES = ("offline", "online", "disabled")
#: Model arguments that only change how a trained model is evaluated; a test / predict command's own values win
#: over those stored in its ``--ckpt_path`` checkpoint.
EVALUATION_OPTIONS = ("tta", "calibrate")


class WandbConfigSaver(SaveConfigCallback):
    """Writes config.yaml next to the CSV metrics and sends the full resolved config to W&B."""

    @override
    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Send the resolved config (``None`` values kept) to every W&B logger; Lightning's ``setup`` has written
        ``config.yaml`` to the log folder already, and calls this on rank 0 only."""
        config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.experiment.config.update(config, allow_val_change=True)


class DermlabCLI(LightningCLI):
    """LightningCLI with the suite's links, run folder and default loggers."""

    @override
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.class_names", "model.init_args.class_names", apply_on="instantiate")
        parser.add_argument("--run.name", type=str, default="default",
                            help="run name: the run folder is runs/<name> unless trainer.default_root_dir is set")
        parser.add_argument("--run.wandb", type=str, default=os.environ.get("WANDB_MODE", "offline"),
                            help=f"W&B mode, one of {WANDB_MODES} (default: $WANDB_MODE or offline)")
        parser.add_argument("--run.project", type=str, default="dermlab", help="W&B project")
        parser.add_argument("--run.group", type=str | None, default=None, help="W&B group (e.g. a table)")
        parser.add_argument("--run.job_type", type=str | None, default=None, help="W&B job type (e.g. a grid cell)")
        parser.add_argument("--run.tags", type=list[str], default=[], help="W&B tags")
        parser.add_argument("--run.keep_freed_memory", type=bool, default=True,
                            help="keep freed memory in the process (glibc mallopt) instead of page-faulting large "
                                 "tensors back every step: 1.4-1.6x faster CPU training (dermlab.runtime.resources)")
        parser.add_argument("--run.flush_denormal", type=bool, default=True,
                            help="CPU: treat denormal floats as zero (torch.set_flush_denormal); a ResNet-18 trained "
                                 "at 224 px 4x faster with it (Adam's second moments go denormal)")
        parser.add_argument("--run.threads", type=int, default=0,
                            help="torch CPU threads of the training process (0: torch's own choice, all the cores "
                                 "this process may use; Lightning divides them among DDP processes)")
        parser.add_argument("--run.stop_on_non_finite", type=bool, default=True,
                            help="stop at the first NaN/inf training loss or gradient with one message "
                                 "(callbacks.StopOnNonFinite); false trains on as Lightning does")

    def _parse_ckpt_path(self) -> None:
        """Lightning lets a ``--ckpt_path`` checkpoint's hyper-parameters override the command's model arguments;
        the evaluation-time options (:data:`EVALUATION_OPTIONS`: ``tta``, ``calibrate``) stay the command's own,
        so ``dermlab test ... --ckpt_path best --model.init_args.tta dihedral`` evaluates with TTA whatever the
        training run used. A ``--ckpt_path`` file is checked first (:func:`~dermlab.files.checkpoints.read_checkpoint`,
        :func:`check_model_family`): a damaged one or another model's stops with one line."""
        config = self.config[self.config.subcommand] if self.config.get("subcommand") else None
        model = config.get("model") if config is not None else None
        own = {} if not isinstance(model, Namespace) else {
            key: model.init_args[key] for key in EVALUATION_OPTIONS
            if isinstance(model.get("init_args"), Namespace) and key in model.init_args}
        ckpt_path = config.get("ckpt_path") if config is not None else None
        if ckpt_path and str(ckpt_path) not in ("last", "best", "hpc") and not str(ckpt_path).startswith(
                "registry") and "://" not in str(ckpt_path):  # a local file
            saved = read_checkpoint(ckpt_path, weights_only=True, mmap=True)  # checked as Lightning loads it next
            check_model_family(ckpt_path, saved, model.get("class_path") if isinstance(model, Namespace) else None)
        super()._parse_ckpt_path()
        model = self.config[self.config.subcommand].model if own else None
        if isinstance(model, Namespace) and isinstance(model.get("init_args"), Namespace):
            for key, value in own.items():
                if key in model.init_args:
                    model.init_args[key] = value

    def before_instantiate_classes(self) -> None:
        """Fill what the yaml pieces leave open: run folder, loggers, checkpoint folder."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        run, trainer = config.run, config.trainer
        if run.wandb not in WANDB_MODES:
            raise DataError(f"--run.wandb must be one of {WANDB_MODES}, got {run.wandb!r}")
        if run.threads < 0:
            raise DataError(f"--run.threads must be 0 (automatic) or a positive count, got {run.threads}")
        if run.threads:
            torch.set_num_threads(run.threads)
        if run.keep_freed_memory:
            keep_freed_memory()
        torch.set_flush_denormal(run.flush_denormal)  # x86 FTZ/DAZ; threads started from here on inherit it
        if not run.stop_on_non_finite:
            trainer.callbacks = [c for c in trainer.callbacks or []
                                 if not str(c.get("class_path", "")).endswith("StopOnNonFinite")]
        if not trainer.default_root_dir:
            trainer.default_root_dir = f"runs/{run.name}"
        root = Path(trainer.default_root_dir)
        if trainer.logger is None or trainer.logger is True:
            trainer.logger = self.default_loggers(run, root)
        for callback in trainer.callbacks or []:
            if callback.class_path.endswith("ModelCheckpoint") and callback.init_args.dirpath is None:
                callback.init_args.dirpath = str(root / "checkpoints")

    def instantiate_classes(self) -> None:
        """Instantiate as LightningCLI does, then give a classifier its test class mapping when the data's test split
        is another data set's (``data.init_args.test_on``): a pair of class sets without a mapping stops here,
        before anything trains, and the model's ``logged_metric_names`` name the test metrics it will log."""
        try:
            super().instantiate_classes()
        except ValueError as error:  # a class that refused its arguments: one line, not jsonargparse's union dump
            if verbose():
                raise
            raise instantiation_error(error, self.config[self.subcommand] if self.subcommand else self.config) from None
        use_atomic_checkpoints(self.trainer)
        mapping = getattr(self.datamodule, "test_mapping", None)
        if mapping is not None and hasattr(self.model, "use_test_mapping"):
            self.model.use_test_mapping(mapping)

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Parse as LightningCLI does; the parser keeps the command line to name a value in its errors
        (:mod:`dermlab.commands.config_errors`)."""
        remember_argv(parser, args)
        super().parse_arguments(parser, args)

    @staticmethod
    def default_loggers(run: Namespace, root: Path) -> list[Namespace]:
        """CSV metrics always; W&B too unless disabled (offline by default: no account needed)."""
        loggers = [Namespace(class_path="lightning.pytorch.loggers.CSVLogger",
                             init_args=Namespace(save_dir=str(root), name="csv"))]
        if run.wandb != "disabled":
            os.environ["WANDB_MODE"] = run.wandb
            loggers.append(Namespace(class_path="lightning.pytorch.loggers.WandbLogger", init_args=Namespace(
                save_dir=str(root), project=run.project, name=run.name, group=run.group, job_type=run.job_type,
                tags=list(run.tags),
                offline=run.wandb == "offline", log_model=False)))
        return loggers


def check_model_family(path: str | Path, checkpoint: dict, class_path: str | None) -> None:
    """Refuse a ``--ckpt_path`` checkpoint saved by another kind of model than the config's: Lightning would build
    the checkpoint's class from its hyper-parameters and fail far later. Kinds are the classes right below
    ``LightningModule`` (classifiers, segmenters): a method of the same kind (SegAN for a U-Net config) is accepted.
    """
    import importlib

    import lightning.pytorch as L

    saved = (checkpoint.get("hyper_parameters") or {}).get("_class_path")
    if not saved or not class_path or saved == class_path:
        return

    def kind(dotted: str) -> type | None:
        module, _, name = dotted.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError):
            return None
        return next((c for c in cls.__mro__ if L.LightningModule in c.__bases__), cls)

    saved_kind, own_kind = kind(saved), kind(class_path)
    if saved_kind is not None and own_kind is not None and saved_kind is not own_kind:
        raise checkpoint_error(path, f"it is another model's: it was saved by a {saved} run "
                                     f"({saved_kind.__name__}), this config builds a {class_path} "
                                     f"({own_kind.__name__})")


class ConfigParser(DermlabCLI):
    """The suite's CLI parser without anything instantiated: :meth:`~ConfigParser.check` parses one argument list
    after another on the same parser (building it once), which is what makes checking every cell of a grid cheap."""

    @override
    def before_instantiate_classes(self) -> None:
        pass

    @override
    def instantiate_classes(self) -> None:
        pass

    @override
    def after_instantiate_classes(self) -> None:
        pass

    def _add_instantiators(self) -> None:
        pass

    def _set_seed(self) -> None:
        pass  # parsing must not reseed the caller's random generators

    def check(self, args: list[str]) -> str | None:
        """Parse ``args`` (no Trainer verb); the parser's error line, or None if they are valid."""
        try:
            self.parse(args)
        except DataError as error:
            return str(error)
        return None

    def parse(self, args: list[str]) -> Namespace:
        """The resolved config of ``args`` (no Trainer verb), nothing instantiated; a DataError with the parser's
        message (on one line) if they are invalid."""
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # LightningCLI's "args and sys.argv" warning names our own arguments
            try:
                self.parse_arguments(self.parser, args)
            except SystemExit as exit_info:
                if exit_info.code not in (0, None):
                    raise DataError(parser_error(err.getvalue())) from None
        return self.config


def parser_error(text: str) -> str:
    """The one line to show of jsonargparse's error report: from its ``error:`` line on, without the usage text."""
    lines = [line for line in text.strip().splitlines() if not line.startswith(TIP_START)]
    start = next((i for i, line in enumerate(lines) if "error:" in line), 0)
    message = " ".join(line.strip() for line in lines[start:] if line.strip())
    message = message.split("error:", 1)[-1].strip() or "invalid arguments"
    return message if len(message) <= 800 else message[:800] + " ..."


@functools.cache
def config_parser() -> ConfigParser:
    """One :class:`ConfigParser` per process (the parser is built once, on the first call)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ConfigParser(**_cli_kwargs(), args=["-c", str(Path(__file__).resolve().parents[2] / "experiments" /
                                                              "demo_synthetic.yaml")], run=False)


def _cli_kwargs() -> dict:
    import lightning.pytorch as L

    import callbacks  # noqa: F401  (imported so short class names in configs resolve)
    import datamodules  # noqa: F401
    import lightning_modules
    from datamodules.base import SkinDataModule

    for name in lightning_modules.__all__:  # imported (they load lazily) so short class names and --help find them
        getattr(lightning_modules, name)

    return dict(
        model_class=L.LightningModule,
        datamodule_class=SkinDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        auto_configure_optimizers=False,  # each module owns configure_optimizers
        save_config_callback=WandbConfigSaver,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"parser_mode": "omegaconf"},
        parser_class=DermlabArgumentParser,  # errors on one line each
        seed_everything_default=0,
    )


def build_cli(args: list[str] | None = None, run: bool = True) -> DermlabCLI:
    """The suite's LightningCLI; ``run=False`` parses and instantiates without calling a verb."""
    return DermlabCLI(**_cli_kwargs(), args=args, run=run)


def evaluation_dataset(configs: list[str], overrides: list[str], split: str = "test"
                       ) -> tuple[SkinDataModule, ImageTableDataset]:
    """(datamodule, un-augmented single-image dataset of ``split``) from config files and CLI overrides, with no
    logger or run folder: what the figure commands (``compare-cams``, ``cbam-maps``) draw their images from."""
    cli = build_cli([a for c in configs for a in ("-c", c)] + overrides
                    + ["--run.wandb", "disabled", "--trainer.logger", "false"], run=False)
    cli.datamodule.follow(cli.model)  # the configured backbone's normalisation
    return cli.datamodule, cli.datamodule.dataset(split, augment=False, views=1)
