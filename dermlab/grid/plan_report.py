"""``dermlab grid plan``'s output: the projections of :mod:`dermlab.grid.plan` as a Markdown table (a row per
table, a total per paper, optionally a row per cell) with the reference throughput and the assumptions under it, and
one CSV row per run."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from dermlab.grid.plan import ASSUMPTIONS, Projection, RunCost


def _span(values: Sequence[float], form: str = "{:,.0f}") -> str:
    low, high = form.format(min(values, default=0)), form.format(max(values, default=0))
    return low if low == high else f"{low}–{high}"


def _row(label: str, runs: list[RunCost], gpu_hours: float, wall: float | None) -> str:
    hours = [f"{h:,.0f}" if h >= 100 else f"{h:.1f}" if h >= 1 else f"{h:.2f}" if h >= 0.01 or not h else "<0.01"
             for h in (gpu_hours, wall or 0)]
    cells = [label, f"{len(runs):,}", ("≤" if any(r.early_stopping for r in runs) else "")
             + _span([r.epochs for r in runs], "{:,.4g}"), _span([r.train_images for r in runs]),
             f"{sum(r.trained for r in runs):,.0f}", f"{sum(r.evaluated for r in runs):,.0f}",
             _span([r.train_cost for r in runs], "{:.2f}"), hours[0], "" if wall is None else hours[1]]
    return "| " + " | ".join(cells) + " |"


def _total(label: str, group: Sequence[Projection]) -> str:
    """The row of several tables: their runs, GPU-hours and wall hours summed (the tables run one after another)."""
    return _row(label, [r for p in group for r in p.runs], sum(p.gpu_hours for p in group),
                sum(p.wall_hours for p in group))


def render(projections: Mapping[str, Projection], source: str, counted: bool = False, cells: bool = False) -> str:
    """A Markdown table, a row per ``paper/table`` (``cells``: and one per cell under it), a total row after the
    tables of a paper of several and one for all of several papers, then the reference throughput (``source``: where
    it is from), where the image counts come from and :data:`~dermlab.grid.plan.ASSUMPTIONS`."""
    first = next(iter(projections.values()), Projection([], [], 0, 1, 0, 0, 0))
    lines = ["| table | cells | epochs | train images / epoch | images trained | images evaluated | cost per image "
             f"(× ResNet-50) | GPU-hours | wall hours on {first.gpus} GPU{'s' * (first.gpus > 1)} |", "|---" * 9 + "|"]
    papers: dict[str, dict[str, Projection]] = {}
    for label, projection in projections.items():
        papers.setdefault(label.split("/")[0], {})[label] = projection
    for paper, tables in papers.items():
        for label, projection in tables.items():
            lines.append(_row(label, projection.runs, projection.gpu_hours, projection.wall_hours))
            if cells:
                lines += [_row(f"  {r.name}", [r], h, None) for r, h in zip(projection.runs, projection.hours,
                                                                              strict=True)]
        lines += [_total(f"**{paper}** (total)", list(tables.values()))] if len(tables) > 1 else []
    lines += [_total("**all papers** (total)", list(projections.values()))] if len(papers) > 1 else []
    counts = ("counted in the data root's split files" if counted else "the published release sizes at each "
              "run's split settings (dermlab/files/split_sizes.py)")
    return "\n".join([*lines, "", f"Reference throughput: {first.throughput:,.0f} training images per second of "
                      f"ResNet-50 at 224 px on one GPU ({source}). Images per split: {counts}. Cost per image: "
                      "forward FLOPs of a training image over ResNet-50's at 224 px.", "Assumptions:",
                      *(f"- {assumption}" for assumption in ASSUMPTIONS)])


def write_csv(path: str | Path, projections: Mapping[str, Projection]) -> Path:
    """One row per run: its ``table``, the :class:`~dermlab.grid.plan.RunCost` fields, images trained and evaluated,
    ``gpu_hours``, and the projection's ``throughput`` and ``gpus``."""
    rows = [{"table": label, **asdict(run), "after": ";".join(run.after), "images_trained": round(run.trained),
             "images_evaluated": round(run.evaluated), "gpu_hours": f"{hours:.4g}", "throughput": p.throughput,
             "gpus": p.gpus} for label, p in projections.items() for run, hours in zip(p.runs, p.hours, strict=True)]
    with Path(path).open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, list(rows[0]) if rows else ["table"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)
