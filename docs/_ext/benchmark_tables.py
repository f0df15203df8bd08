"""Sphinx extension: the ``benchmark-table`` directive renders ``benchmarks/results/<name>.csv`` as a table.

In a MyST page::

    ```{benchmark-table} lerf_time
    ```

gives one row per figure (setting, quantity, value, unit, what a ratio compares, machine, 1-minute load average)
and, below it, each run's machine, date, torch version and command. The CSV files are the ones the benchmark
scripts write through ``benchmarks/results.py``; they are read at build time, so the page shows whatever the
results folder holds. A missing or empty file gives "Not run yet" instead of failing the build. The folder is
``benchmarks/results`` beside the docs folder, or the ``benchmark_results_dir`` setting of ``conf.py``.
"""

from __future__ import annotations

import csv
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

# (CSV column, heading, relative width)
SHOWN = (("setting", "setting", 18), ("quantity", "quantity", 18), ("value", "value", 7), ("unit", "unit", 6),
         ("ratio_of", "ratio of", 20), ("machine", "machine", 14), ("load_1min", "load (1 min)", 5))


def results_dir(srcdir: str, configured: str | None) -> Path:
    """The folder holding the results files: ``configured`` (relative to the docs folder), else
    ``../benchmarks/results``."""
    if configured:
        return (Path(srcdir) / configured).resolve()
    return Path(srcdir).resolve().parent / "benchmarks" / "results"


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of one results file (empty if there is none)."""
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def _paragraph(*children: nodes.Node) -> nodes.paragraph:
    paragraph = nodes.paragraph()
    paragraph.extend(children)
    return paragraph


def table(rows: list[dict[str, str]]) -> nodes.table:
    """A docutils table of the :data:`SHOWN` columns, one row per figure."""
    group = nodes.tgroup(cols=len(SHOWN))
    group.extend(nodes.colspec(colwidth=width) for _, _, width in SHOWN)
    head, body = nodes.thead(), nodes.tbody()
    head += nodes.row("", *(nodes.entry("", _paragraph(nodes.Text(title))) for _, title, _ in SHOWN))
    for row in rows:
        body += nodes.row("", *(nodes.entry("", _paragraph(nodes.Text(row.get(key) or "")))
                                for key, _, _ in SHOWN))
    group += head
    group += body
    result = nodes.table(classes=["benchmark-table"])
    result += group
    return result


def runs(rows: list[dict[str, str]]) -> nodes.bullet_list:
    """One item per run (machine, date, torch version, command), in the file's order."""
    seen: dict[tuple[str, str, str, str], None] = {}
    for row in rows:
        seen.setdefault((row.get("machine", ""), row.get("date", ""), row.get("torch", ""), row.get("command", "")))
    items = nodes.bullet_list()
    for machine, date, torch, command in seen:
        text = f"{machine}, {date} UTC" + (f", torch {torch}" if torch else "") + ": "
        items += nodes.list_item("", _paragraph(nodes.Text(text), nodes.literal(command, command)))
    return items


class BenchmarkTable(SphinxDirective):
    """``{benchmark-table} <name>``: the figures of ``benchmarks/results/<name>.csv``."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        path = results_dir(self.env.srcdir, self.config.benchmark_results_dir) / f"{name}.csv"
        self.env.note_dependency(str(path))  # a new results file rebuilds the page
        try:
            rows = read_rows(path)
        except (OSError, csv.Error, UnicodeDecodeError) as error:
            return [self.state.document.reporter.warning(f"benchmark-table: cannot read {path}: {error}",
                                                         line=self.lineno)]
        if not rows:
            return [_paragraph(nodes.emphasis("", "Not run yet"),
                               nodes.Text(f": no figures in benchmarks/results/{name}.csv."))]
        return [table(rows), _paragraph(nodes.Text("Runs:")), runs(rows)]


def setup(app: Sphinx) -> dict:
    app.add_config_value("benchmark_results_dir", None, "env")
    app.add_directive("benchmark-table", BenchmarkTable)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
