"""The documentation is tested: it builds without a warning, every command it shows is explained and run, every
repository path it names exists, and no page outside *Benchmarks* carries a machine's timing, a path outside the
repository or a work-item number.

The commands come from ``README.md`` and ``docs/**/*.md`` (:mod:`tests.helpers.documented_commands`); the fast tests
collect and explain them, the slow one runs each page's commands in order on synthetic twins laid out as the docs
say (``/data`` = a data root of :mod:`tests.helpers.twins`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers.documented_commands import (
    RULES,
    Command,
    all_commands,
    commands_of,
    data_sets_named,
    documented_pages,
    grid_smoke_form,
    rule_for,
    smoke_form,
    smoke_paths,
    tune_smoke_form,
)
from tests.helpers.twins import write_data_root

PAGES = documented_pages()
BENCHMARKS_PAGE = REPO / "docs" / "benchmarks.md"


def page_id(page: Path) -> str:
    return str(page.relative_to(REPO))


@pytest.mark.slow
def test_the_docs_build_without_a_warning(tmp_path):
    """``make docs``: Sphinx with ``-n -W`` (every cross-reference resolves, any warning fails). Slow: it imports
    every module for the API reference and runs each command's ``--help`` for the command pages."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # the build's `dermlab` first
    result = subprocess.run([sys.executable, "-m", "sphinx", "-n", "-W", "--keep-going", "-q", "-b", "html",
                             "-d", str(tmp_path / "doctrees"), str(REPO / "docs"), str(tmp_path / "html")],
                            cwd=REPO, capture_output=True, text=True, timeout=900, env={**os.environ, "PATH": path})
    assert result.returncode == 0, result.stderr[-5000:]
    assert (tmp_path / "html" / "papers" / "patch.html").is_file()


def test_every_documented_command_is_explained():
    """Each command of the README and the docs is run as written, in smoke form, by a named test, or listed as
    not runnable with its reason: none is left unexplained."""
    commands = all_commands()
    assert len(commands) > 50  # the collector finds the shell blocks
    unexplained = [f"{c.page}:{c.line}: {c.text}" for c in commands if rule_for(c) is None]
    assert not unexplained, "documented commands no rule explains:\n" + "\n".join(unexplained)
    for command in commands:
        rule = rule_for(command)
        if rule.kind == "smoke":
            smoke_form(command)  # raises when its config has no CPU stand-in
        if rule.kind == "covered":  # the named test file (and test, where named) exists
            file, _, test = rule.detail.split(" ")[0].partition("::")
            assert (REPO / file).is_file(), rule.detail
            assert not test or f"def {test}(" in (REPO / file).read_text(), rule.detail
        if rule.kind == "not-run":
            assert rule.detail, rule.pattern


def test_the_collector_reads_continuations_comments_and_fences(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("text\n```bash\nmake patch DATA_ROOT=/data   # the tables\n# a comment line\n"
                    "dermlab fit -c experiments/demo.yaml \\\n    --trainer.max_epochs 2\n```\n"
                    "```text\ndermlab fit -c not/a/command.yaml\n```\n")
    found = [(c.line, c.text) for c in commands_of(page)]
    assert found == [(3, "make patch DATA_ROOT=/data"),
                     (5, "dermlab fit -c experiments/demo.yaml --trainer.max_epochs 2")]
    assert rule_for(Command("p.md", 3, "make patch DATA_ROOT=/data")).kind == "covered"
    assert rule_for(Command("p.md", 5, "dermlab frobnicate --now")) is None
    assert {r.kind for r in RULES} == {"run", "smoke", "grid-smoke", "tune-smoke", "covered", "not-run"}


# a repository path in backticks: a top-level folder or file of the repository, then the rest
REPO_PATH = re.compile(r"`((?:experiments|datamodules|lightning_modules|callbacks|dermlab|tests|benchmarks|"
                       r"data_samples|docs)/[^`\s]*|Makefile|pyproject\.toml|LICENSE)`")


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_repository_path_the_page_names_exists(page):
    missing = []
    for path in REPO_PATH.findall(page.read_text()):
        path = path.split("::")[0].rstrip(".,:;)")
        if any(mark in path for mark in ("<", "*", "{", "…", "...", "[")):
            continue  # a pattern, not one file
        if path.startswith("docs/_build") or path.startswith("benchmarks/results/"):
            continue  # written by make docs / the benchmarks
        if not (REPO / path).exists():
            missing.append(path)
    assert not missing, f"{page_id(page)} names paths that do not exist: {missing}"


FORBIDDEN = {
    "a CPU model": re.compile(r"\b(Xeon|EPYC|Ryzen|AVX-?512|AVX2|Zen ?[0-9])\b"),
    "a measured duration": re.compile(r"\b\d+(\.\d+)?\s?(ms|s|min|sec)\b(?!\w)|\b\d+(\.\d+)?\s?(minutes|hours)\b|"
                                      r"images/s\b|\bit/s\b"),
    "a path outside the repository": re.compile(r"\.\./shared|/work/|shared/(papers|data)/"),
    "a work-item number": re.compile(r"(?<![\w/&])#\d+\b|\bissues? #?\d+", re.I),
}


@pytest.mark.parametrize("page", [p for p in PAGES if p != BENCHMARKS_PAGE], ids=page_id)
def test_no_machine_timing_outside_path_or_work_item_number_on_the_page(page):
    found = []
    for number, line in enumerate(page.read_text().splitlines(), start=1):
        for what, pattern in FORBIDDEN.items():
            match = pattern.search(line)
            if match:
                found.append(f"{page_id(page)}:{number}: {what}: {match.group(0)!r} in {line.strip()[:120]!r}")
    assert not found, "\n".join(found)


def test_the_forbidden_patterns_catch_what_they_are_for():
    text = {"cpu": "measured on a 2-core AMD EPYC", "time": "it took 88 s", "speed": "37.2 images/s",
            "shared": "see ../shared/papers/000_x.txt", "item": "fixed in #17", "issue": "as issue 22 asked"}
    hits = {key: [w for w, p in FORBIDDEN.items() if p.search(value)] for key, value in text.items()}
    assert all(hits.values()), hits
    fine = ["the ISIC 2018 task 3 test set", "https://challenge.isic-archive.com/data/#2018", "--time 8:00:00",
            "224 px, 7 classes", "Table 2, Eq. 4"]
    assert not [line for line in fine for p in FORBIDDEN.values() if p.search(line)]


# ---------------------------------------------------------------------------------------------------------------
# the slow test: each page's commands, in order, in a working folder of its own

DATA = re.compile(r"(?<![\w.])/data(?=/|\b|$)")
RUNNABLE = ("run", "smoke", "grid-smoke", "tune-smoke")


def runnable_pages() -> list[Path]:
    return [p for p in PAGES if any((rule_for(c) or RULES[0]).kind in RUNNABLE for c in commands_of(p))]


def words_to_run(command: Command, data_root: Path) -> list[str]:
    kind = rule_for(command).kind
    forms = {"smoke": smoke_form, "grid-smoke": grid_smoke_form, "tune-smoke": tune_smoke_form}
    words = smoke_paths(forms[kind](command) if kind in forms else command.words)
    words = [DATA.sub(str(data_root), w) for w in words]
    if words[0] == "make":
        words += [f"VENV={REPO / '.venv'}"]
    return words


@pytest.mark.slow
@pytest.mark.parametrize("page", runnable_pages(), ids=page_id)
def test_the_pages_commands_run_on_twins_in_the_documented_layout(page, tmp_path):
    from dermlab.files.data_folders import FOLDERS

    commands = commands_of(page)
    data_root = tmp_path / "data"
    folders = data_sets_named(commands)
    write_data_root(data_root, [name for name, entry in FOLDERS.items() if entry.folder in folders])
    work = tmp_path / "work"
    work.mkdir()
    for entry in ("experiments", "data_samples", "Makefile"):
        (work / entry).symlink_to(REPO / entry)
    env = {**os.environ, "WANDB_MODE": "disabled",
           "PATH": f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    for command in commands:
        if rule_for(command).kind not in RUNNABLE:
            continue
        words = words_to_run(command, data_root)
        result = subprocess.run(words, cwd=work, env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, (f"{command.page}:{command.line}: {command.text}\nran: {' '.join(words)}\n"
                                        + result.stdout[-2500:] + result.stderr[-2500:])
