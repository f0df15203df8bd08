"""patch paper (Gessert et al., IEEE TBME 2020, doi 10.1109/TBME.2019.2915839): patch dropout p_d in the grids.

The paper proposes patch dropout as part of the Ordered-Crop strategy (§II-D: "As patch locations are fixed during
training ... we propose patch dropout to avoid overfitting"), says it "improves performance considerably" for every
N_C (Fig. 5) and never gives the p_d of Tables II–IV. So the ordered-crop rows of Tables II–IV (GRU and the
attention models) train with p_d > 0, at the authors' HAM value 0.1 (SPC takes the HAM hyper-parameters, §III-A),
Multi-Crop (random crops) with none, and Fig. 5 is a grid of its own that sweeps p_d. What p_d does to the crops
is checked in ``tests/lightning_modules/nets/test_patch_attention.py``.
"""

from __future__ import annotations

import pytest

from tests.conftest import REPO

TABLES = REPO / "experiments" / "patch" / "tables"
#: The rows of Tables II–IV that train on ordered crops (patch dropout on) and those on random crops (off).
ORDERED = {"table2_strategies": {"GRU", "Initial Attention", "End Attention", "Dual Attention"},
           "table3_crops": {"Attention 5", "Attention 9", "Attention 16"},
           "table4_spc": {"GRU", "Attention"}}
RANDOM = {"table2_strategies": {"Multi-Crop"}, "table3_crops": {"Multi-Crop 5", "Multi-Crop 9", "Multi-Crop 16"},
          "table4_spc": {"Multi-Crop"}}


def resolved(table: str, fold_zero: bool = True) -> list[tuple[dict, object]]:
    """(axis values, parsed configuration) of every cell of a grid (fold 0 only where it has folds)."""
    from dermlab.commands.trainer import config_parser
    from dermlab.grid import runner, spec

    grid = spec.load((TABLES / f"{table}.yaml").relative_to(REPO))
    parser = config_parser()
    return [(cell.values, parser.parse(runner.cell_args(grid, cell, REPO / "runs" / "x" / cell.id, "data/x", [])))
            for cell in grid.cells() if not fold_zero or cell.values.get("data.init_args.fold", 0) == 0]


@pytest.mark.parametrize("table", sorted(ORDERED))
def test_ordered_crop_rows_train_with_patch_dropout_and_multi_crop_without(table, monkeypatch):
    monkeypatch.chdir(REPO)
    seen: dict[str, set[float]] = {}
    for values, config in resolved(table):
        row = values.get("strategy", values.get("method"))
        data, model = config.data.init_args, config.model.init_args
        if data.train_crops <= 1:  # Downsampling / Single-Crop: one image, nothing to drop
            assert row in {"Downsampling", "Single-Crop"}
            continue
        positions = data.train_crop_positions
        assert (positions == "ordered") == (row in ORDERED[table]), (table, row, positions)
        seen.setdefault(row, set()).add(model.crop_dropout)
    assert set(seen) == ORDERED[table] | RANDOM[table]
    assert all(seen[row] == {0.1} for row in ORDERED[table])  # every backbone: the authors' HAM value
    assert all(seen[row] == {0.0} for row in RANDOM[table])


def test_fig5_is_its_own_grid_sweeping_pd_with_initial_attention(monkeypatch):
    monkeypatch.chdir(REPO)
    cells = resolved("fig5_patch_dropout")
    swept = {}
    for values, config in cells:
        data, model = config.data.init_args, config.model.init_args
        assert (model.attention, model.backbone, data.train_crop_positions) == ("initial", "densenet121", "ordered")
        assert data.train_crops == data.eval_crops == model.n_crops == int(values["crops"])
        assert model.crop_dropout == values["model.init_args.crop_dropout"]
        swept.setdefault(values["crops"], set()).add(model.crop_dropout)
    assert swept == {n: {0.0, 0.1, 0.2, 0.3, 0.4, 0.5} for n in ("5", "9", "16")}

