"""Where a grid's cells read their data: the data root's folders (:mod:`dermlab.files.data_folders`), the synthetic
twins of the default, and the ``{data:NAME}`` / ``{synthetic:NAME}`` references of grid files.

A data root holds one sub-folder per data set; every folder a grid reads is checked before anything trains. Without
a data root the synthetic twins are written (if missing) at the grid's ``synthetic`` size. The CPU stand-in (the
grid's ``synthetic`` entry) is taken on the synthetic default and by ``--smoke`` on any data (:func:`stands_in`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from dermlab.files.data_folders import data_set_folder, require_data_set_folder
from dermlab.grid.spec import GridSpec

DATA_REF = re.compile(r"\{(data|synthetic):([A-Za-z0-9_]+)\}")  # a data set's folder named in a grid file


def stands_in(data_root: str | None, smoke: bool) -> bool:
    """Whether cells take the grid's CPU stand-in settings (its ``synthetic`` entry: small images, tiny models,
    stand-in weights): on the synthetic default, and for ``--smoke`` on any data (a wiring check of the data's
    layout and of every cell, not of the real models)."""
    return smoke or not data_root


def data_root_for(spec: GridSpec, data_root: str | None, dataset: str | None = None, stand_in: bool | None = None
                  ) -> tuple[str, list[str]]:
    """The data folder and extra arguments of one data set.

    With a data root, the folder is ``<data root>/<folder>`` of :mod:`dermlab.files.data_folders` (one sub-folder per
    data set, e.g. ``/data/ham10000``; the ISIC 2018 tasks share ``/data/isic2018``), for every grid; a missing
    folder stops here, naming it and the download page. Without one, the synthetic set is written if missing.
    ``stand_in`` (default: no data root) adds the grid's ``synthetic`` arguments. The other folders a grid names
    (``{data:NAME}``) are :func:`require_data_folders`' and :func:`write_synthetic_roots`' work.

    Raises:
        DataError: the data set's folder is missing under the data root.
    """
    dataset = dataset or spec.dataset
    stand_in = not data_root if stand_in is None else stand_in
    extra = list(spec.data_args.get(dataset, []))
    if data_root:
        root = str(require_data_set_folder(data_root, dataset))
    else:
        from datamodules.synthetic import ensure_synthetic

        root = synthetic_folder(spec, dataset)  # one folder per size: grids never share a set of another size
        ensure_synthetic(dataset, root, n=spec.synthetic.get("n", 200), size=spec.synthetic.get("size", 64))
    if stand_in:
        extra += [str(a) for a in spec.synthetic.get("args", [])]
        extra += [str(a) for a in (spec.synthetic.get("data_args") or {}).get(dataset, [])]
    return root, extra


def data_sets_read(spec: GridSpec) -> list[str]:
    """The data sets a grid reads, in order: its cells' data sets, then the ``{data:NAME}`` targets it names (e.g. a
    cross-data-set cell's ``test_on`` set)."""
    return list(dict.fromkeys([*(spec.dataset_of(c) for c in spec.cells()), *referenced_data_sets(spec, "data")]))


def require_data_folders(spec: GridSpec, data_root: str) -> list[Path]:
    """Every data set folder the grid reads under ``data_root`` (its cells' data sets and its ``{data:NAME}``
    targets), each checked to exist (:func:`dermlab.files.data_folders.require_data_set_folder`).

    Raises:
        DataError: a folder is missing (the message names it and the download page).
    """
    return [require_data_set_folder(data_root, name) for name in data_sets_read(spec)]


def synthetic_folder(spec: GridSpec, dataset: str) -> str:
    """The folder of the synthetic ``dataset`` at the grid's ``synthetic`` size."""
    return f"data/synthetic/{dataset}_n{spec.synthetic.get('n', 200)}_{spec.synthetic.get('size', 64)}px"


def referenced_data_sets(spec: GridSpec, kind: str | None = None) -> list[str]:
    """The data sets a grid names as ``{data:NAME}`` / ``{synthetic:NAME}`` (``kind``: only one of the two)."""
    text = json.dumps([spec.args, spec.axes, spec.synthetic, spec.data_args], default=str)
    return sorted({name for found, name in DATA_REF.findall(text) if kind in (None, found)})


def resolve_data_refs(spec: GridSpec, text: str, data_root: str | None = None) -> str:
    """``text`` with every ``{data:NAME}`` replaced by data set NAME's folder under ``data_root``
    (:func:`dermlab.files.data_folders.data_set_folder`; its synthetic twin's folder, :func:`synthetic_folder`, without
    a data root) and every ``{synthetic:NAME}`` by the synthetic twin's folder: e.g. the ``test_on`` root of a
    cross-data-set cell. :func:`require_data_folders` checks, :func:`write_synthetic_roots` writes those folders."""
    def folder(match: re.Match) -> str:
        kind, name = match.groups()
        return str(data_set_folder(data_root, name)) if kind == "data" and data_root else synthetic_folder(spec, name)

    return DATA_REF.sub(folder, text)


def write_synthetic_roots(spec: GridSpec, data_root: str | None = None) -> list[str]:
    """Write (if missing) every synthetic set the grid names, ``{synthetic:NAME}``, and without a data root also
    ``{data:NAME}``, at the grid's synthetic size; returns their names."""
    from datamodules.synthetic import ensure_synthetic

    names = referenced_data_sets(spec, "synthetic" if data_root else None)
    for name in names:
        ensure_synthetic(name, synthetic_folder(spec, name), n=spec.synthetic.get("n", 200),
                         size=spec.synthetic.get("size", 64))
    return names
