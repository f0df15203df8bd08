"""``dermlab grid report``: finished cells → the table in Markdown and CSV, beside the paper's values.

Each row is a combination of the ``rows`` axes; the other axes (seeds, folds) are averaged:
mean ± sample standard deviation (ddof = 1) over the finished cells, ``n/N`` when some are missing,
``n/a`` where the finished cells do not log that metric (e.g. balanced accuracy of a binary task).
A cell that failed or has not run counts as missing, never as zero. The t-tests are the one-sided
independent two-sample Student t-test with pooled variance of the ``arl`` paper (Table VII, Eq. 14):
H1: mean(greater) > mean(than), df = m + n − 2.

From the cells' per-image predictions (``predictions_test.csv``, ``predictions_val.csv``) the report adds the
statistics of :mod:`dermlab.grid.prediction_report` and :mod:`dermlab.grid.paired`: each cell's and each row's
pooled stratified bootstrap interval, the ``paired_tests`` (DeLong / McNemar per cell pair), Holm's adjustment
across every p-value of the table (the t-tests' and the paired tests'), and on a grid with a ``fold`` axis the
out-of-fold predictions and the fold ensemble, and for cells tested on images with Fitzpatrick labels the per-skin-type
section of :mod:`dermlab.grid.skin_type_report`. ``report.csv`` holds one line per row and metric (``cell`` empty;
``estimate``, ``low``, ``high``: the pooled interval), one per cell with an interval (``cell`` = its id), and one
per cross-validation and metric (``cell`` = ``out-of-fold`` or ``fold ensemble``).

A cell that chose part of its model from the data says so in its folder, and the table prints the choice
beside the row label: the ``dds`` paper's data-driven deep supervision writes ``layer_selection.json``
(the layer argmin_h ``|Obj − LERF_h|`` picked), so its row reads e.g. ``isic2016 / R / data-driven / TL → L24``
— the layer it was trained with, per data set, not the paper's L28 (``CHOICE_FILES``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from dermlab.grid.paired import PairedTest, holm_adjust, paired_tests
from dermlab.grid.prediction_report import CrossValidation, cross_validation, intervals
from dermlab.grid.skin_type_report import skin_type_lines
from dermlab.grid.spec import GridSpec

CHOICE_FILES = {"layer_selection.json": "paper_name"}  # run-folder file → key naming what the cell chose from data


@dataclass
class TTest:
    """One ``ttests`` entry of a grid evaluated: the one-sided t-test (:func:`ttest`) of ``metric`` between the
    finished cells matching ``greater`` and those matching ``than`` (``n_greater`` and ``n_than`` of them)."""

    metric: str
    greater: dict
    than: dict
    t: float
    df: int
    p: float
    n_greater: int
    n_than: int
    p_holm: float = math.nan  #: Holm-adjusted across every p-value of the table


def chosen(folder: Path) -> str:
    """What a finished cell chose from its data (e.g. ``L24``, the dds deep-supervision layer), or ``""``."""
    for name, key in CHOICE_FILES.items():
        if (folder / name).is_file():
            record = json.loads((folder / name).read_text())
            return str(record.get(key) or record.get("layer", ""))
    return ""


def choices(group: pd.DataFrame) -> str:
    """The distinct choices of a row's finished cells, in order (``L24`` or ``L24, L28`` when seeds differ)."""
    done = group[group.status == "done"] if "status" in group else group
    return ", ".join(dict.fromkeys(c for c in done.get("chosen", pd.Series(dtype=str)) if c))


def label(row: str, choice: str) -> str:
    """A row label with the cells' data-driven choice: ``isic2016 / R / data-driven / TL → L24``."""
    return f"{row} → {choice}" if choice else row


def tested_on(cross: dict | None) -> str:
    """A cell's test set when it is another data set's (``result.json``'s ``test_on``), in words; ``""`` if not."""
    if not cross:
        return ""
    mapping = cross.get("mapping") or {}
    text = (f"{cross.get('data_module')} test split at '{cross.get('root')}' ({cross.get('images', 0):,} images; "
            f"classes {mapping.get('name', '?')}: {', '.join(mapping.get('classes', []))}")
    if cross.get("left_out"):
        text += "; left out: " + ", ".join(f"{k} {v}" for k, v in cross["left_out"].items())
    if (cross.get("dropped") or {}).get("images"):
        text += f"; {cross['dropped']['images']:,} overlapping images left out of training / validation"
    return text + ")"


def collect(spec: GridSpec, runs: Path = Path("runs"), smoke: bool = False, average: bool = True) -> pd.DataFrame:
    """One row per cell: its axis values, status (done / failed / missing), log path and metrics (merged over
    ``average_over`` axes unless ``average`` is False)."""
    records = []
    for cell in spec.cells():
        folder = spec.run_root(runs, smoke) / cell.id
        record = {"cell": cell.id, "row": cell.row(spec.rows), **cell.values, "status": "missing", "log": "",
                  "leak": "", "chosen": "", "tested_on": ""}
        if (folder / "result.json").is_file():
            result = json.loads((folder / "result.json").read_text())
            record.update(result["metrics"], status="done", chosen=chosen(folder))
            audit = result.get("split_audit") or {}
            record["leak"] = "; ".join(audit.get("leaks", [])) if audit.get("leak") else ""
            record["tested_on"] = tested_on(result.get("test_on"))
        elif (folder / "failed.json").is_file():
            record.update(status="failed", log=json.loads((folder / "failed.json").read_text())["log"])
        records.append(record)
    cells = pd.DataFrame.from_records(records)
    return average_over(spec, cells) if spec.average_over and average else cells


def average_over(spec: GridSpec, cells: pd.DataFrame) -> pd.DataFrame:
    """Merge the cells that differ only in ``spec.average_over`` axes into one, averaging their metrics —
    e.g. the ``arl`` paper's "average AUC" over its two tasks, per seed, before the t-test of Table VII.
    A merged cell is done only when all of its cells are."""
    keys = [k for k in spec.axes if k not in spec.average_over]
    merged = []
    for _, group in cells.groupby(keys, sort=False, dropna=False):
        record = group.iloc[0][["row", *keys]].to_dict()
        record["cell"] = " + ".join(group.cell)
        complete = bool((group.status == "done").all())
        record["status"] = "done" if complete else "failed" if (group.status == "failed").any() else "missing"
        record["log"] = "; ".join(group.log[group.log != ""])
        record["leak"] = "; ".join(group.leak[group.leak != ""])
        record["chosen"] = choices(group)
        record["tested_on"] = "; ".join(dict.fromkeys(t for t in group.get("tested_on", []) if t))
        if complete:
            record.update({m: group[m].astype(float).mean() for m in spec.metrics if m in group})
        merged.append(record)
    return pd.DataFrame.from_records(merged)


def summarise(spec: GridSpec, cells: pd.DataFrame) -> pd.DataFrame:
    """Long table: row, chosen (the cells' data-driven choice), metric, mean, std, n, n_expected, paper, diff
    (in the table's scale)."""
    out = []
    for row in dict.fromkeys(cells["row"]):
        group = cells[cells["row"] == row]
        done = group[group.status == "done"]
        choice = choices(group)
        for metric in spec.metrics:
            values = done[metric].dropna().to_numpy(float) * spec.scale if metric in done else np.array([])
            mean = float(values.mean()) if len(values) else math.nan
            std = float(values.std(ddof=1)) if len(values) > 1 else math.nan
            paper = spec.paper_values.get(row, {}).get(metric, math.nan)
            out.append({"row": row, "chosen": choice, "metric": metric, "mean": mean, "std": std, "n": len(values),
                        "n_expected": len(group), "n_done": len(done), "paper": paper, "diff": mean - paper})
    return pd.DataFrame(out)


def ttest(values_greater: Sequence[float] | np.ndarray, values_than: Sequence[float] | np.ndarray
          ) -> tuple[float, int, float]:
    """One-sided Student t-test (pooled variance): t, degrees of freedom, p for H1 mean(greater) > mean(than).

    t = (mean(greater) − mean(than)) / (s_p · √(1/m + 1/n)), so t > 0 favours ``greater``; H0 is rejected at
    level a when t ≥ t_a(m + n − 2), i.e. p ≤ a. The ``arl`` paper (§V-G, Eq. 14) writes the same statistic
    the other way round, x = ResNet50 (``than``) minus y = ARL-CNN50 (``greater``), with the rejection
    region t ≤ −2.552 (a = 0.01, 18 df): its t is our −t."""
    result = stats.ttest_ind(values_greater, values_than, equal_var=True, alternative="greater")
    return float(result.statistic), len(values_greater) + len(values_than) - 2, float(result.pvalue)


def ttests(spec: GridSpec, cells: pd.DataFrame) -> list[TTest]:
    """The grid's ``ttests`` entries evaluated on the finished cells of ``cells`` (values times ``spec.scale``, as
    the table shows them); a side with fewer than two finished cells gets t and p NaN."""
    done = cells[cells.status == "done"]

    def pick(where: dict, metric: str) -> np.ndarray:
        if metric not in done or any(k not in done for k in where):  # no finished cell logged it (yet)
            return np.empty(0)
        chosen = np.logical_and.reduce([done[k] == v for k, v in where.items()])
        return done.loc[chosen, metric].dropna().to_numpy(float) * spec.scale

    results = []
    for test in spec.ttests:
        a, b = pick(test["greater"], test["metric"]), pick(test["than"], test["metric"])
        t, df, p = ttest(a, b) if len(a) > 1 and len(b) > 1 else (math.nan, len(a) + len(b) - 2, math.nan)
        results.append(TTest(test["metric"], test["greater"], test["than"], t, df, p, len(a), len(b)))
    return results


def _fmt(value: float, digits: int = 2) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def markdown(spec: GridSpec, summary: pd.DataFrame, cells: pd.DataFrame, tests: list[TTest],
             paired: list[PairedTest] = (), pooled: pd.DataFrame | None = None,
             folds: list[CrossValidation] = ()) -> str:
    """The table as Markdown: per metric ours (mean ± std), the paper's value and the difference; then the
    pooled intervals, the tests (with Holm's adjustment) and the cross-validation summary where there are any."""
    header = ["row"] + [f"{m} {part}" for m in spec.metrics for part in ("ours", "paper", "Δ")]
    over = ", ".join(k for k in spec.axes if k not in spec.rows and k not in spec.average_over) or "one run"
    first = f" (each run first averaged over {', '.join(spec.average_over)})" if spec.average_over else ""
    lines = [f"## {spec.title}", "", f"`{spec.path}` — mean ± std over {over}{first}; scale ×{spec.scale:g}.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in dict.fromkeys(summary["row"]):
        entries = summary[summary.row == row]
        cells_text = [label(row, entries.iloc[0].get("chosen", ""))]
        for metric in spec.metrics:
            entry = entries[entries.metric == metric].iloc[0]
            if entry.n == 0:
                ours = "n/a" if entry.n_done else "missing"  # n/a: finished runs do not log it (e.g. binary tasks)
            else:
                ours = _fmt(entry["mean"]) + (f" ± {_fmt(entry['std'])}" if entry.n > 1 else "")
                ours += f" ({entry.n}/{entry.n_expected})" if entry.n < entry.n_expected else ""
            cells_text += [ours, _fmt(entry.paper), _fmt(entry["diff"])]
        lines.append("| " + " | ".join(cells_text) + " |")
    if pooled is not None and len(pooled):
        lines += pooled_lines(spec, summary, pooled)
    family = sum(not math.isnan(r.p) for r in [*tests, *paired])
    holm_note = f"p (Holm): adjusted across the table's {family} p-values (t-tests and paired tests; Holm 1979)"
    where = lambda d: ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in d.items())  # noqa: E731
    if tests:
        lines += ["", "One-sided two-sample t-tests (Student, pooled variance; H1: first > second; "
                  "t = (mean first − mean second) / (s_p·√(1/m + 1/n)), t > 0 favours first; " + holm_note + "):",
                  "", "| metric | first | second | t | df | p | p (Holm) |", "|---|---|---|---|---|---|---|"]
        for t in tests:
            lines.append(f"| {t.metric} | {where(t.greater)} (n={t.n_greater}) | {where(t.than)} (n={t.n_than}) | "
                         f"{_fmt(t.t, 3)} | {t.df} | {_fmt(t.p, 4)} | {_fmt(t.p_holm, 4)} |")
    if paired:
        lines += ["", "Paired tests per cell pair on the same test images (two-sided; DeLong et al. 1988 for the "
                  "AUC, McNemar 1947 on the predicted classes — P(class 1) > 0.5, or the argmax — exact below 25 "
                  "discordant pairs; A, B: the recomputed AUCs or accuracies; " + holm_note + "):", "",
                  "| metric | A | B | paired on | test | A value | B value | statistic | p | p (Holm) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in paired:
            statistic = f"{r.detail} {_fmt(r.statistic, 3)}" if r.detail == "z" else \
                f"{_fmt(r.statistic, 3)} ({r.detail})" if r.detail else "—"
            lines.append(f"| {r.metric} | {where(r.a)} | {where(r.b)} | {r.paired_on or '—'} | {r.test or r.note} | "
                         f"{_fmt(r.value_a, 4)} | {_fmt(r.value_b, 4)} | {statistic} | {_fmt(r.p, 4)} | "
                         f"{_fmt(r.p_holm, 4)} |")
    if folds:
        lines += cv_lines(spec, folds)
    if "tested_on" in cells and (cells.tested_on != "").any():
        lines += ["", "**Test sets:** the rows below test on another data set's test split (`test_on`); their test "
                  "metrics are on that split, in the classes of the mapping named:", ""]
        for row in dict.fromkeys(cells["row"]):
            tests = ", ".join(dict.fromkeys(t for t in cells[cells.row == row].tested_on if t))
            lines.append(f"- {row}: {tests or 'its own test split'}")
    leaking = cells[cells.leak != ""]
    if len(leaking):
        lines += ["", "**Leakage:** these cells ran with `leakage: warn` and their split audit found a leak, so their "
                  "test numbers are not independent of training or selection:", ""]
        lines += [f"- {r.cell}: {r.leak}" for r in leaking.itertuples()]
    problems = cells[cells.status != "done"]
    if len(problems):
        lines += ["", "Cells not in the table:", ""]
        lines += [f"- {r.cell}: {r.status}" + (f" (log: {r.log})" if r.log else "") for r in problems.itertuples()]
    if spec.notes:
        lines += ["", spec.notes.strip()]
    return "\n".join(lines) + "\n"


def pooled_lines(spec: GridSpec, summary: pd.DataFrame, pooled: pd.DataFrame) -> list[str]:
    """Markdown lines: per row and recomputable metric, mean ± std beside the pooled bootstrap interval."""
    settings = spec.statistics
    lines = ["", f"95 % stratified bootstrap intervals ({settings['n_boot']} replicates, seed {settings['seed']}) "
             "from the cells' test predictions: per row, the cells pooled (one resample of the test images per "
             "replicate, shared by the cells on the same images; the mean over the cells) — the test-set "
             "uncertainty of the row's mean, not its spread over seeds or folds (± std):", "",
             "| row | metric | mean ± std | pooled estimate [95 % CI] | cells |", "|---|---|---|---|---|"]
    for entry in pooled.itertuples(index=False):
        row = summary[(summary.row == entry.row) & (summary.metric == entry.metric)].iloc[0]
        spread = _fmt(row["mean"]) + (f" ± {_fmt(row['std'])}" if row.n > 1 else "")
        lines.append(f"| {entry.row} | {entry.metric} | {spread} | {_fmt(entry.estimate)} [{_fmt(entry.low)}, "
                     f"{_fmt(entry.high)}] | {entry.n_cells} |")
    return lines


def cv_lines(spec: GridSpec, folds: list[CrossValidation]) -> list[str]:
    """Markdown lines: per cross-validation and metric, the folds' mean ± std on the test set beside the fold
    ensemble and the out-of-fold predictions, each with its interval."""
    interval = lambda s, kind: (f"{_fmt(s[kind + '_estimate'])} [{_fmt(s[kind + '_low'])}, "  # noqa: E731
                                f"{_fmt(s[kind + '_high'])}]") if kind + "_estimate" in s else "—"
    lines = ["", f"Cross-validation over {spec.fold_axis()}: the folds' test scores (mean ± std), the fold ensemble "
             "(mean of the folds' test probabilities per image) and the out-of-fold predictions (each CV image "
             "predicted by the fold that held it out), with 95 % stratified bootstrap intervals:", "",
             "| cross-validation | metric | folds mean ± std | fold ensemble (test) | out-of-fold | files |",
             "|---|---|---|---|---|---|"]
    for cv in folds:
        files = ", ".join(f"`{f}`" for f in (cv.ensemble_file, cv.oof_file) if f) + (f" ({cv.note})" if cv.note
                                                                                      else "")
        for score in cv.scores or [{"metric": "—", "fold_mean": math.nan, "fold_std": math.nan}]:
            spread = _fmt(score["fold_mean"]) + (f" ± {_fmt(score['fold_std'])}"
                                                 if not math.isnan(score["fold_std"]) else "")
            lines.append(f"| {cv.label} | {score['metric']} | {spread} | {interval(score, 'ensemble')} | "
                         f"{interval(score, 'oof')} | {files or '—'} |")
    return lines


def csv_table(summary: pd.DataFrame, pooled: pd.DataFrame, per_cell: pd.DataFrame,
              folds: list[CrossValidation]) -> pd.DataFrame:
    """report.csv: the summary's lines (with the pooled interval), then per-cell and cross-validation lines."""
    table = summary.assign(cell="")
    if len(pooled):
        table = table.merge(pooled, on=["row", "metric"], how="left")
    extra = [per_cell.assign(n=1)] if len(per_cell) else []
    for cv in folds:
        for score in cv.scores:
            for kind, name in (("ensemble", "fold ensemble"), ("oof", "out-of-fold")):
                if f"{kind}_estimate" in score:
                    extra.append(pd.DataFrame([{"row": cv.label, "metric": score["metric"], "cell": name,
                                                **{k: score[f"{kind}_{k}"] for k in ("estimate", "low", "high",
                                                                                     "n_boot")}}]))
    return pd.concat([table, *extra], ignore_index=True) if extra else table


def report(spec: GridSpec, runs: Path = Path("runs"), smoke: bool = False) -> str:
    """Write report.md and report.csv in the table's folder (next to its cells); returns the Markdown.

    Raises:
        DataError: a prediction file is malformed, or the out-of-fold predictions of a cross-validation repeat
            or miss images of its CV set.
    """
    raw = collect(spec, runs, smoke, average=False)
    cells = average_over(spec, raw) if spec.average_over else raw
    summary = summarise(spec, cells)
    tests = ttests(spec, cells)
    folder = spec.report_root(runs, smoke)
    folder.mkdir(parents=True, exist_ok=True)
    run_folder = lambda cell: spec.run_root(runs, smoke) / cell  # noqa: E731
    paired = paired_tests(spec, raw, run_folder)
    holm_adjust(tests, paired)
    pooled, per_cell = intervals(spec, raw, run_folder)
    folds = cross_validation(spec, raw, run_folder, folder)
    text = markdown(spec, summary, cells, tests, paired, pooled, folds)
    skin_type = skin_type_lines(raw, run_folder, spec.scale)
    if skin_type:
        text = text + "\n".join(skin_type) + "\n"
    (folder / "report.md").write_text(text)
    csv_table(summary, pooled, per_cell, folds).to_csv(folder / "report.csv", index=False)
    for figure in spec.figures():
        draw_figure(spec, figure, cells, folder / f"{figure.get('name', 'figure')}.png")
    return text


def draw_figure(spec: GridSpec, figure: dict, cells: pd.DataFrame, path: Path) -> Path | None:
    """One ``figure`` entry: a metric's mean ± std over the ``x`` axis (a line per ``series`` value), or the
    means of several metrics as grouped bars with one bar per row (e.g. per-class recall per strategy)."""
    from dermlab.figures import error_lines, per_class_bars, save

    done = cells[cells.status == "done"]
    title = figure.get("title", spec.title)
    if "bars" in figure:
        metrics = [m for m in figure["bars"] if m in done]
        if done.empty or not metrics:
            return None
        values = {row: {m.rsplit("_", 1)[-1]: float(group[m].astype(float).mean()) for m in metrics}
                  for row, group in done.groupby("row", sort=False)}
        return save(per_class_bars(values, ylabel=figure.get("ylabel", "recall"), title=title), path)
    x_axis, metric, series_axis = figure["x"], figure["metric"], figure.get("series")
    if metric not in done or done.empty:
        return None
    lines = {}
    groups = done.groupby(series_axis, sort=False) if series_axis else [("", done)]
    for label, group in groups:
        xs = [x for x in spec.axes[x_axis] if (group[x_axis] == x).any()]
        values = [group.loc[group[x_axis] == x, metric].astype(float).to_numpy() * spec.scale for x in xs]
        name = f"{series_axis.rsplit('.', 1)[-1]} = {label}" if series_axis else metric
        lines[name] = ([float(x) if isinstance(x, (int, float)) else x for x in xs], [v.mean() for v in values],
                       [v.std(ddof=1) if len(v) > 1 else math.nan for v in values])
    return save(error_lines(lines, xlabel=x_axis.rsplit(".", 1)[-1], ylabel=metric, title=title), path)
