"""A tiny grid file on the synthetic ISIC 2017 demo config, and fabricated finished cells."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.conftest import REPO

TINY = ["--data.init_args.image_size", "32", "--data.init_args.batch_size", "8", "--data.init_args.num_workers", "0",
        "--trainer.max_epochs", "1", "--model.init_args.scheduler.init_args.T_max", "1", "--run.wandb", "disabled"]


def write_grid(path: Path, **overrides) -> Path:
    grid = {"paper": "demo", "table": "tiny", "config": [str(REPO / "experiments" / "demo_synthetic.yaml")],
            "args": TINY,
            "axes": {"model.init_args.backbone": ["test_resnet"], "seed_everything": [0, 1]},
            "rows": ["model.init_args.backbone"], "metrics": ["test/auc", "test/accuracy"], "scale": 100}
    grid.update(overrides)
    path.write_text(yaml.safe_dump(grid, sort_keys=False))
    return path


def fabricate(grid, runs, values):
    """Finished cells with known metrics: values[cell id] = auc, or None for a crash."""
    for cell in grid.cells():
        folder = grid.run_root(runs, False) / cell.id
        folder.mkdir(parents=True)
        if values[cell.id] is None:
            (folder / "failed.json").write_text(json.dumps({"returncode": 1, "log": str(folder / "cell.log")}))
        else:
            (folder / "result.json").write_text(json.dumps({"metrics": {"test/auc": values[cell.id],
                                                                        "test/accuracy": 0.5}}))
