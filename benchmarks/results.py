"""Where every benchmark writes its figures: ``benchmarks/results/<benchmark>.csv``, one row per measured quantity,
with the machine that measured it (the model: timm's ``results/*.csv``).

Columns (:data:`COLUMNS`): ``benchmark`` (the script's name), ``setting`` (what was measured: model, image size,
batch, threads, ...), ``quantity``, ``value``, ``unit``, ``ratio_of`` (for a ratio: what it divides by what),
``machine`` (CPU model, usable cores, torch's CPU capability, GPU if any), ``load_1min`` (the 1-minute load average
when the figures were written; it counts the benchmark itself), ``torch``, ``date`` (UTC) and ``command``.

Rows are keyed by (``machine``, ``setting``): a run on another machine adds its rows beside the ones there; a re-run
of a setting on the same machine replaces that machine's rows of that setting (where they stood) and leaves every
other row alone. ``DERMLAB_BENCH_RESULTS=<folder>`` writes elsewhere (tests, trial runs).

    from results import Figure, record   # benchmarks/ is on sys.path when a benchmark runs as a script
    record("arl_step_time", [Figure("ARL-CNN50 / ResNet-50", 1.14, "ratio", ratio_of="seconds per training step")],
           setting="batch 8, 224 px, 2 threads")
"""

from __future__ import annotations

import csv
import datetime
import math
import os
import shlex
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ("benchmark", "setting", "quantity", "value", "unit", "ratio_of", "machine", "load_1min", "torch", "date",
           "command")


@dataclass(frozen=True)
class Figure:
    """One measured quantity: ``value`` in ``unit`` (``"ratio"`` with ``ratio_of`` saying what over what)."""

    quantity: str
    value: float
    unit: str
    setting: str = ""
    ratio_of: str = ""


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; the platform's processor string elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown CPU"


def machine() -> str:
    """``"<CPU model>, <n> cores, <torch CPU capability>[, <GPU name>]"``, e.g. ``"AMD EPYC, 2 cores, AVX512"``."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    parts = [cpu_model(), f"{cores} core{'s' if cores != 1 else ''}"]
    try:
        import torch

        parts.append(torch.backends.cpu.get_cpu_capability())
        if torch.cuda.is_available():
            parts.append(torch.cuda.get_device_name(0))
    except ImportError:
        pass
    return ", ".join(parts)


def _number(value: float) -> str:
    """4 significant digits, no exponent (a person reads these files)."""
    value = float(value)
    if not math.isfinite(value) or value.is_integer():
        return str(int(value)) if math.isfinite(value) else str(value)
    digits = max(0, 3 - int(f"{abs(value):e}".split("e")[1]))
    return f"{value:.{digits}f}"


def _command() -> str:
    """This process's command line, the script's path relative to the repository where it lies inside it."""
    script = Path(sys.argv[0]).resolve()
    root = RESULTS.parents[1]
    shown = str(script.relative_to(root)) if script.is_relative_to(root) else sys.argv[0]
    return shlex.join(["python", shown, *sys.argv[1:]])


def record(benchmark: str, figures: Iterable[Figure], *, setting: str = "", folder: Path | str | None = None,
           machine_name: str | None = None, command: str | None = None) -> Path:
    """Write ``figures`` to ``<folder>/<benchmark>.csv`` (default ``benchmarks/results/``, or
    ``$DERMLAB_BENCH_RESULTS``) and return the file's path.

    ``setting`` is the setting of every figure that names none. Each figure becomes a row with this machine
    (``machine_name``, default :func:`machine`), the 1-minute load average now, torch's version, the UTC date and
    the command line (default: this process's). Rows already in the file with the same machine and setting as a
    new row are replaced (the new rows take the place of the first of them); all other rows stay as they were."""
    folder = Path(folder or os.environ.get("DERMLAB_BENCH_RESULTS") or RESULTS)
    path = folder / f"{benchmark}.csv"
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = ""
    common = {"benchmark": benchmark, "machine": machine_name or machine(), "load_1min": f"{os.getloadavg()[0]:.2f}",
              "torch": torch_version, "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
              "command": command or _command()}
    new = [{**common, "setting": f.setting or setting, "quantity": f.quantity, "value": _number(f.value),
            "unit": f.unit, "ratio_of": f.ratio_of} for f in figures]
    replaced = {(row["machine"], row["setting"]) for row in new}
    old: list[dict[str, str]] = []
    if path.is_file():
        with path.open(newline="", encoding="utf-8") as file:
            old = list(csv.DictReader(file))
    kept, place = [], None
    for row in old:
        if (row.get("machine"), row.get("setting")) in replaced:
            place = len(kept) if place is None else place
        else:
            kept.append(row)
    place = len(kept) if place is None else place
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".csv.partial")  # written whole, then renamed: a crash leaves the old file
    with partial.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, COLUMNS, restval="", extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept[:place] + new + kept[place:])
    partial.replace(path)
    print(f"recorded {len(new)} figures in {path}")
    return path
