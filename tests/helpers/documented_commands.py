"""Every shell command the README and the documentation show, collected, explained and turned into what the tests run.

A command is a line of a ```bash (or ``sh`` / ``shell`` / ``console``) block in ``README.md`` or ``docs/**/*.md``
(``\\`` continuations joined, ``# comments`` dropped). :data:`RULES` says for each what the test suite does with
it, first match wins:

* ``run``: as written, in a working folder of its own, ``/data`` being a data root of synthetic twins laid out as
  the docs say (:mod:`tests.helpers.twins`);
* ``smoke``: a training command (``dermlab fit | validate | test | predict | demo``) with the CPU stand-in of its config
  (:data:`STAND_IN`: tiny network, small images, no pretrained file) and a couple of steps, on the same twins;
* ``grid-smoke``: ``dermlab grid run`` with ``--smoke --first 1`` (one cell per table and data set);
* ``tune-smoke``: ``dermlab tune`` with ``--smoke`` and one trial (two with ``--parallel``), a couple of steps each;
* ``covered``: run, in this smoke form, by the test named (e.g. a paper's make target);
* ``not-run``: cannot run in a test, for the reason given (a GPU, a cluster, internet).

A command no rule explains fails ``tests/end_to_end/test_docs.py``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHELL_BLOCK = re.compile(r"^(?P<fence>```+)(?:\{code-block\}\s*)?(bash|sh|shell|console)\s*\n"
                         r"(?P<body>.*?)^(?P=fence)\s*$", flags=re.S | re.M)
TRAINER_VERBS = ("fit", "validate", "test", "predict")


@dataclass(frozen=True)
class Command:
    """One documented command: the page it is on (relative to the repository), its line there and its text."""

    page: str
    line: int
    text: str

    @property
    def words(self) -> list[str]:
        return shlex.split(self.text)


def documented_pages() -> list[Path]:
    """``README.md`` and every Markdown page of ``docs/`` (not the build output)."""
    pages = [REPO / "README.md"]
    pages += sorted(p for p in (REPO / "docs").rglob("*.md") if not {"_build", "_api"} & set(p.parts))
    return pages


def commands_of(page: Path) -> list[Command]:
    """The commands of one page's shell blocks, in order."""
    text = page.read_text()
    found = []
    for block in SHELL_BLOCK.finditer(text):
        first_line = text[:block.start("body")].count("\n") + 1
        lines = block.group("body").split("\n")
        index = 0
        while index < len(lines):
            start, line = index, lines[index]
            while True:
                while line.rstrip().endswith("\\") and index + 1 < len(lines):
                    index += 1
                    line = line.rstrip()[:-1] + " " + lines[index].strip()
                try:
                    words = shlex.split(line, comments=True)
                    break
                except ValueError:  # a quoted argument that spans lines (a ``python -c`` script)
                    if index + 1 >= len(lines):
                        raise
                    index += 1
                    line += "\n" + lines[index]
            index += 1
            if words:
                name = str(page.relative_to(REPO)) if page.is_relative_to(REPO) else page.name
                found.append(Command(name, first_line + start, shlex.join(words)))
    return found


def all_commands() -> list[Command]:
    return [c for page in documented_pages() for c in commands_of(page)]


@dataclass(frozen=True)
class Rule:
    """Commands matching ``pattern`` (a regex searched in the command text) are handled as ``kind``."""

    pattern: str
    kind: str  # run | smoke | grid-smoke | tune-smoke | covered | not-run
    detail: str = ""  # covered: the test that runs it; not-run: why


PAPER_TARGET = (r"^make (dds|arl|patch|weighting|isic2018|isic2018-seg|baseline|cross_dataset|metadata|external)"
                r"(-smoke)?( |$)")

RULES: list[Rule] = [
    # set-up and the suite's own commands
    Rule(r"^make install$", "not-run", "CI's first step (.ci/run) on a clean clone; it reinstalls the environment "
                                       "the tests run in"),
    Rule(r"^make (test|test-slow|test-all|test-real-data)$", "not-run",
         "the test suite itself (CI runs make test, make test-slow)"),
    Rule(r"^make docs$", "covered", "tests/end_to_end/test_docs.py::test_the_docs_build_without_a_warning (slow)"),
    Rule(r"^make lint$", "not-run", "the linter; run by the developers, not a behaviour of the suite"),
    Rule(r"^make demo$", "covered",
         "tests/end_to_end/test_learning.py::test_make_demo_fine_tunes_on_the_shipped_real_sample"),
    Rule(r"^make demo-synthetic$", "covered",
         "tests/end_to_end/test_learning.py::test_make_demo_learns_and_closes_the_loop"),
    Rule(r"^make bench$", "not-run", "the benchmarks: a long run whose figures go to benchmarks/results/"),
    Rule(r"^make bench-gpu", "not-run",
         "needs a GPU (its CPU smoke form runs in tests/benchmarks/test_gpu_resnet50.py)"),
    Rule(r"^make help$", "run"),
    Rule(r"^make synth", "run"),
    # a paper's tables: the make targets run in smoke form on twins in the documented layout
    Rule(PAPER_TARGET, "covered", "tests/end_to_end/test_make_targets.py (make <paper>-smoke DATA_ROOT=<twins>)"),
    # grids
    Rule(r"^dermlab grid run .*--launcher slurm", "not-run", "needs a SLURM cluster (tests/dermlab/grid/"
                                                            "test_launcher.py runs the same submission against a "
                                                            "fake sbatch)"),
    Rule(r"^dermlab grid run .*--launcher submitit-local", "run"),
    Rule(r"^dermlab grid run ", "grid-smoke"),
    Rule(r"^dermlab grid (report|status|plan) ", "run"),
    # studies: smoke form; SLURM against a fake sbatch; the plan as written
    Rule(r"^dermlab tune .*--launcher slurm", "not-run", "needs a SLURM cluster (tests/dermlab/tuning/"
                                                        "test_launchers.py submits the same jobs to a fake sbatch)"),
    Rule(r"^dermlab tune .*--plan", "run"),
    Rule(r"^dermlab tune ", "tune-smoke"),
    Rule(r"^dermlab fit -c runs/tuning(-smoke)?/[^ ]+/best\.yaml", "run"),  # a smoke study's best.yaml is small
    # training: smoke form with the config's CPU stand-in; those that need hardware we do not have are not run
    Rule(r"experiments/base/trainer/(gpu|ddp_bf16)\.yaml", "not-run",
         "needs one or several GPUs (the options are tested on the CPU in "
         "tests/lightning_modules/nets/test_acceleration.py)"),
    Rule(r"^torchrun ", "not-run", "several nodes with GPUs"),
    Rule(r"^dermlab (fit|validate|test|predict) ", "smoke"),
    # the suite's other commands, as written
    Rule(r"^dermlab demo$", "smoke"),
    Rule(r"^dermlab (synth|score|compare|prepare|audit|weights|lerf|postprocess|objsize|compare-cams|cbam-maps|export|"
           r"classify) ",
         "run"),
    Rule(r"^dermlab [a-z-]+ --help$", "run"),
    Rule(r"^dermlab --help$", "run"),
    # downloads and accounts
    Rule(r"^wandb sync ", "not-run", "needs a W&B account and internet"),
    Rule(r"^curl ", "not-run", "downloads from the internet"),
    Rule(r"pretrained=True", "not-run", "downloads ImageNet weights from the Hugging Face Hub (internet)"),
    Rule(r"\.cache/huggingface", "not-run", "copies the files the download above put in the Hugging Face cache"),
    # plain shell and small Python one-liners of the tutorials
    Rule(r"^mkdir ", "run"),
    Rule(r"^python -c ", "run"),
]


def rule_for(command: Command) -> Rule | None:
    """The first rule whose pattern the command matches, or None (an unexplained command)."""
    return next((r for r in RULES if re.search(r.pattern, command.text)), None)


# CPU stand-ins of the configs a documented training command starts from (its first -c), after the paper grids'
# own ``synthetic`` entries: a tiny network without a pretrained file, small images, few workers.
STAND_IN: dict[str, list[str]] = {
    "experiments/demo.yaml": ["--model.init_args.backbone", "test_resnet", "--model.init_args.pretrained_weights",
                              "null", "--data.init_args.image_size", "32"],
    "experiments/demo_synthetic.yaml": ["--model.init_args.backbone", "test_resnet", "--data.init_args.image_size",
                                        "32"],
    "experiments/patch/base.yaml": ["--model.init_args.backbone", "test_resnet", "--model.init_args.pretrained_weights",
                                    "null", "--data.init_args.image_size", "32", "--model.init_args.gru_hidden", "16"],
    "experiments/dds/base.yaml": ["--model.init_args.backbone", "resnet18", "--model.init_args.pretrained_weights",
                                  "null", "--data.init_args.image_size", "64", "--data.init_args.val_size", "20"],
    "experiments/arl/base.yaml": ["--model.init_args.backbone", "arl_cnn14", "--model.init_args.pretrained_weights",
                                  "null", "--data.init_args.image_size", "64", "--data.init_args.train_repeats", "1",
                                  "--data.init_args.eval_views", "2"],
    "experiments/metadata/base.yaml": ["--model.init_args.backbone", "test_resnet",
                                       "--model.init_args.pretrained_weights", "null",
                                       "--data.init_args.image_size", "32"],
    "experiments/weighting/base.yaml": ["--model.init_args.backbone", "test_resnet",
                                        "--model.init_args.pretrained_weights", "null",
                                        "--data.init_args.image_size", "32"],
    "experiments/isic2018/segmentation.yaml": [
        "--model.init_args.encoder", "vgg_tiny_bn", "--model.init_args.decoder_channels", "[64, 32, 16, 8, 8]",
        "--model.init_args.critic_width", "8", "--model.init_args.pretrained_weights", "null",
        "--data.init_args.train_transforms", "experiments/base/augment/isic2018_seg_cpu.yaml",
        "--data.init_args.eval_transforms", "experiments/base/augment/isic2018_seg_cpu_eval.yaml"],
}
SMOKE = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
         "--trainer.num_sanity_val_steps", "0", "--trainer.accelerator", "cpu", "--data.init_args.batch_size", "8",
         "--data.init_args.num_workers", "0"]


def smoke_form(command: Command) -> list[str]:
    """The words a ``smoke`` command runs as: the command, then its config's stand-in and a couple of steps (later
    arguments win in LightningCLI)."""
    words = command.words
    if words[1] == "demo":  # the real-sample demo with experiments/demo.yaml's stand-in (its arguments go to fit)
        return [*words, *STAND_IN["experiments/demo.yaml"], *SMOKE[:6]]
    config = words[words.index("-c") + 1]
    if config not in STAND_IN:
        raise KeyError(f"{command.page}:{command.line}: no CPU stand-in for {config} in STAND_IN")
    extra = list(SMOKE)
    if words[1] == "fit" and "--ckpt_path" in words:  # resuming a finished run: one epoch more
        extra[1] = "2"
    return [*words, *STAND_IN[config], *extra]


def grid_smoke_form(command: Command) -> list[str]:
    """``dermlab grid run ...`` as a smoke run of one cell per table and data set."""
    words = [w for w in command.words if w != "--smoke"]
    if "--parallel" in words:
        del words[words.index("--parallel"):words.index("--parallel") + 2]
    return [*words, "--smoke", "--first", "1"]


def tune_smoke_form(command: Command) -> list[str]:
    """``dermlab tune ...`` as a smoke study: ``--smoke`` and one trial (two side by side with ``--parallel``).
    A ``runs/tuning/`` path later on the page then names ``runs/tuning-smoke/`` (:func:`smoke_paths`)."""
    words = [w for w in command.words if w != "--smoke"]
    most = 2 if "--parallel" in words else 1  # two trials side by side where the command runs several at once
    if "--trials" in words:
        at = words.index("--trials")
        words[at + 1] = str(min(most, int(words[at + 1])))
    else:
        words += ["--trials", str(most)]
    return [*words, "--smoke"]


def smoke_paths(words: list[str]) -> list[str]:
    """A command's ``runs/tuning/`` paths as the smoke studies of the page wrote them (``runs/tuning-smoke/``)."""
    return [w.replace("runs/tuning/", "runs/tuning-smoke/") if w.startswith("runs/tuning/") else w for w in words]


def data_sets_named(commands: list[Command]) -> list[str]:
    """The folders under ``/data`` that commands read (``/data/<folder>``, and a paper's folders for
    ``--data-root /data``), less those a ``dermlab synth`` among them writes itself."""
    from dermlab.files.data_folders import FOLDERS
    from dermlab.grid import runner, spec

    named: dict[str, None] = {}
    written = set()  # folders a `dermlab synth` of the page writes before any other command reads them
    for command in commands:
        words = command.words
        if words[:2] == ["dermlab", "synth"]:
            folder = Path(words[words.index("--out") + 1]).name
            if folder not in named:
                written.add(folder)
            continue
        for folder in re.findall(r"/data/([a-z0-9_]+)", command.text):
            named[folder] = None
        if words[:2] == ["dermlab", "tune"] and "--data-root" in words:
            from dermlab.tuning import search

            named[FOLDERS[search.load(REPO / words[2]).dataset].folder] = None
        if words[:2] == ["dermlab", "grid"] and words[2:3] in (["run"], ["plan"]) and "--data-root" in words:
            tables = [Path(w) for w in words[3:] if w.endswith(".yaml")]
            if "--paper" in words:
                tables += spec.paper_tables(words[words.index("--paper") + 1])
            for table in tables:
                for name in runner.data_sets_read(spec.load(REPO / table)):
                    named[FOLDERS[name].folder] = None
    return [f for f in named if f not in written]
