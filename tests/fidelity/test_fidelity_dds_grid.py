"""dds paper (Mishra et al., MICCAI 2022, doi 10.48550/arXiv.2209.01527) fidelity of the experiment grids.

* ISIC 2018 checkpoint (§3): "the best performing model version on the validation set" is kept, and ISIC 2018 is
  scored by balanced multi-class accuracy, so Table 1's ISIC 2018 cells select on ``val/balanced_accuracy``
  (``mode: max``); every other dds cell keeps the suite's ``val/auc``.
* One Obj per data set (§2.2, supplementary Table 1): every stage-2 (Proposed) cell of Table 1, VGG13 and
  ResNet-18 alike, takes Obj from the VGG13 stage-1 (Proposed*) cell of its data set, as Table 2's no-TL
  data-driven row takes it from the TL Proposed*.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import lightning.pytorch as L
import pytest

from tests.conftest import REPO

TABLES = REPO / "experiments" / "dds" / "tables"
TABLE1_DATA = ["isic2016", "isic2017", "isic2018_task3", "vitiligo"]
STAGE1 = "Proposed*"


def grid(name: str):
    from dermlab.grid import spec

    return spec.load(f"experiments/dds/tables/{name}.yaml")


def resolved(table, cell, stand_in: bool, run_dir: Path | None = None) -> list[str]:
    """The cell's `dermlab fit` arguments as ``grid run`` builds them (``data_args`` first, then the stand-in's)."""
    from dermlab.grid import runner

    extra = list(table.data_args.get(table.dataset_of(cell), []))
    if stand_in:
        extra += [str(a) for a in table.synthetic.get("args", [])]
        extra += [str(a) for a in (table.synthetic.get("data_args") or {}).get(table.dataset_of(cell), [])]
    run_dir = run_dir or table.run_root(REPO / "runs", False) / cell.id
    return runner.cell_args(table, cell, run_dir, "data/x", extra, stand_in)


def value(args: list[str], key: str) -> str | None:
    """The value the CLI ends with for ``--key`` (the last one wins), None when the key is not given."""
    found = [args[i + 1] for i, a in enumerate(args) if a == key]
    return found[-1] if found else None


@functools.cache
def parsed(args: tuple[str, ...]):
    """The parsed configuration of a cell's arguments (cached: two tests read the same cells)."""
    from dermlab.commands.trainer import config_parser

    return config_parser().parse(list(args))


def checkpoint_callbacks(args: list[str]) -> tuple[dict, list[str], str | None]:
    """(the ModelCheckpoint's init_args, every callback's class path, the model's ``monitor``) of the parsed
    configuration."""
    config = parsed(tuple(args))
    callbacks = config.trainer.callbacks
    checkpoint = [c for c in callbacks if c.class_path.endswith("ModelCheckpoint")]
    assert len(checkpoint) == 1
    return dict(checkpoint[0].init_args), [c.class_path for c in callbacks], config.model.init_args.monitor


# --- §3: ISIC 2018 keeps the checkpoint with the best validation balanced accuracy -----------------------------

@pytest.mark.parametrize("stand_in", [False, True], ids=["paper", "stand-in"])
def test_isic2018_cells_select_on_balanced_accuracy_and_the_others_on_auc(stand_in, monkeypatch):
    monkeypatch.chdir(REPO)
    default_classes = None
    seen = set()
    for name in ("table1", "table2_ablation"):
        table = grid(name)
        for cell in table.cells():
            checkpoint, classes, model_monitor = checkpoint_callbacks(resolved(table, cell, stand_in))
            dataset = table.dataset_of(cell)
            expected = "val/balanced_accuracy" if dataset == "isic2018_task3" else "val/auc"
            assert checkpoint["monitor"] == expected and checkpoint["mode"] == "max", (cell.id, checkpoint)
            assert model_monitor == expected, cell.id  # what a plateau scheduler would follow (dds has none)
            assert checkpoint["save_top_k"] == 1 and checkpoint["save_last"], cell.id
            if dataset != "isic2018_task3":
                default_classes = classes
            else:  # only the monitor changes: the ISIC 2018 submission writer and plots stay
                assert "callbacks.SubmissionWriter" in classes and "callbacks.ClassificationPlots" in classes
                assert set(default_classes or classes) - set(classes) <= {"callbacks.AttentionMaps"}  # ARL only
            seen.add((name, dataset))
    assert {d for t, d in seen if t == "table1"} == set(TABLE1_DATA)
    assert {d for t, d in seen if t == "table2_ablation"} == {"isic2016", "vitiligo"}


def test_every_paper_cell_trains_with_batch_32_whatever_the_gpu(monkeypatch):
    """§3 takes "the maximum size allowed by the GPU"; the grids fix ``data.init_args.batch_size: 32`` (the
    data-set configs' value) so that a cell trains the same way on every machine."""
    monkeypatch.chdir(REPO)
    for name in ("table1", "table2_ablation"):
        table = grid(name)
        for cell in table.cells():
            assert parsed(tuple(resolved(table, cell, False))).data.init_args.batch_size == 32, cell.id


class PresetScores(L.Callback):
    """At the end of each validation, before ModelCheckpoint reads them: checks that the run logged
    val/balanced_accuracy and val/auc, keeps what it logged, and puts the epoch's preset values in their place."""

    def __init__(self, balanced_accuracy: list[float], auc: list[float]) -> None:
        self.preset = {"val/balanced_accuracy": balanced_accuracy, "val/auc": auc}
        self.logged: list[dict[str, float]] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import torch

        metrics = trainer.callback_metrics
        self.logged.append({k: float(metrics[k]) for k in self.preset})  # KeyError: the run does not log it
        for key, values in self.preset.items():
            metrics[key] = torch.tensor(values[trainer.current_epoch])


TINY = ["--model.init_args.backbone", "test_resnet", "--model.init_args.pretrained_weights", "null",
        "--data.init_args.image_size", "32", "--data.init_args.batch_size", "8", "--data.init_args.num_workers", "0",
        "--data.init_args.val_size", "8", "--trainer.limit_train_batches", "2",
        "--trainer.num_sanity_val_steps", "0", "--model.init_args.objsize_samples", "8",
        "--model.init_args.lerf_inits", "2", "--run.wandb", "disabled"]  # + a private lerf_cache per test


def test_an_isic2018_stage1_cell_logs_balanced_accuracy_and_keeps_its_best_epoch(synthetic, tmp_path, monkeypatch):
    """Table 1's ISIC 2018 VGG13 Proposed* cell (its stand-in form on a tiny backbone, 3 epochs) logs
    val/balanced_accuracy, and its checkpoint callback keeps the epoch where that is highest, not where AUC is."""
    from dermlab.commands.trainer import build_cli

    monkeypatch.chdir(REPO)
    table = grid("table1")
    cell = next(c for c in table.cells() if c.values["dataset"] == "isic2018_task3"
                and c.values["backbone"] == "VGG13" and c.values["model.init_args.aux_layers"] == STAGE1)
    args = resolved(table, cell, True, tmp_path / cell.id)
    args[args.index("--data.init_args.root") + 1] = str(synthetic("isic2018_task3"))
    cli = build_cli([*args, *TINY, "--trainer.max_epochs", "3"], run=False)
    assert cli.model.hparams.num_classes == 7  # task 3: seven classes, so balanced accuracy is the macro recall
    assert "val/balanced_accuracy" in cli.model.logged_metric_names()
    # by hand: balanced accuracy is best at epoch 1, AUC at epoch 0 (a val/auc monitor would keep epoch 0)
    preset = PresetScores(balanced_accuracy=[0.30, 0.55, 0.40], auc=[0.90, 0.60, 0.70])
    cli.trainer.callbacks.insert(0, preset)  # ModelCheckpoint stays last, as Lightning orders it
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    callback = cli.trainer.checkpoint_callback
    assert callback.monitor == "val/balanced_accuracy" and callback.mode == "max"
    assert len(preset.logged) == 3 and all(0.0 <= e["val/balanced_accuracy"] <= 1.0 for e in preset.logged)
    assert float(callback.best_model_score) == pytest.approx(0.55)
    assert Path(callback.best_model_path).name == "best-epoch01.ckpt"


# --- §2.2 / supplementary Table 1: one Obj per data set, measured on VGG13 -------------------------------------

def test_every_table1_stage2_cell_takes_obj_from_its_data_sets_vgg13_stage1_cell(monkeypatch):
    from dermlab.grid import runner

    monkeypatch.chdir(REPO)
    table = grid("table1")
    cells = table.cells()
    base = table.run_root(REPO / "runs", False)
    by_values = {(c.values["dataset"], c.values["backbone"], c.values["model.init_args.aux_layers"]): c
                 for c in cells}
    stage2 = 0
    for cell in cells:
        dataset, backbone, stage = (cell.values[k] for k in ("dataset", "backbone", "model.init_args.aux_layers"))
        for stand_in in (False, True):
            args = resolved(table, cell, stand_in)
            source = value(args, "--model.init_args.object_size")
            after = runner.depends_on(table, cell, args, base / cell.id)
            if stage == STAGE1:  # stage 1 needs no Obj and starts in the first wave, RES18 included
                assert source is None and after == set(), (cell.id, source, after)
                continue
            vgg13_stage1 = by_values[(dataset, "VGG13", STAGE1)]
            assert source == str(base / vgg13_stage1.id), (cell.id, source)
            assert after == {vgg13_stage1.id}, cell.id
            assert value(args, "--model.init_args.aux_layers") == "auto"
            assert value(args, "--model.init_args.backbone") == {"VGG13": "vgg13_bn", "RES18": "resnet18"}[backbone]
        stage2 += stage != STAGE1
    assert stage2 == 8  # 4 data sets × 2 backbones, every one from the VGG13 Proposed* of its data set


def test_table2_data_driven_rows_take_obj_from_the_tl_stage1_and_s1_has_one_obj_per_data_set(monkeypatch):
    monkeypatch.chdir(REPO)
    table = grid("table2_ablation")
    base = table.run_root(REPO / "runs", False)
    for cell in table.cells():
        if "data-driven" in cell.values["variant"]:
            source = value(resolved(table, cell, False), "--model.init_args.object_size")
            stage1 = f"dataset={cell.values['dataset']}__variant=R-none-TL"
            assert source == str(base / stage1), cell.id
    s1 = grid("table_s1_obj")
    assert s1.cells_of == "table1"
    for dataset in TABLE1_DATA:  # the paper's one value per data set sits on both backbones' rows
        assert s1.paper_values[f"{dataset} / VGG13"] == s1.paper_values[f"{dataset} / RES18"]


def test_a_resnet_stage2_chooses_its_own_layer_from_another_backbones_stage1_obj(synthetic, tmp_path, monkeypatch):
    """The wiring of Table 1's RES18 Proposed cell, end to end on tiny stand-ins: its stage 1 is the VGG13
    Proposed* cell's run folder (here a test_resnet), its own network another (test_efficientnet); Obj is the
    stage-1 network's (the number the VGG13 Proposed cell gets too), the layer is argmin over its own LERFs."""
    from callbacks.layer_selection import object_size_from
    from dermlab.commands.trainer import build_cli
    from lightning_modules.nets.lerf import conv_layers, create_net

    monkeypatch.chdir(REPO)
    table = grid("table1")
    cells = {(c.values["dataset"], c.values["backbone"], c.values["model.init_args.aux_layers"]): c
             for c in table.cells()}
    root = str(synthetic("isic2016"))
    runs = tmp_path / "grids" / "dds" / "table1"

    def fit(cell, *tiny: str):
        args = resolved(table, cell, True, runs / cell.id)
        args[args.index("--data.init_args.root") + 1] = root
        return build_cli(["fit", *args, *TINY, "--model.init_args.lerf_cache", str(tmp_path / "lerf"),
                          "--trainer.max_epochs", "1", *tiny])

    stage1 = fit(cells[("isic2016", "VGG13", STAGE1)])
    checkpoint = stage1.trainer.checkpoint_callback.best_model_path
    (runs / cells[("isic2016", "VGG13", STAGE1)].id / "result.json").write_text(json.dumps({"checkpoint": checkpoint}))
    stage2 = fit(cells[("isic2016", "RES18", "Proposed")], "--model.init_args.backbone", "test_efficientnet")
    selection = json.loads((runs / cells[("isic2016", "RES18", "Proposed")].id / "layer_selection.json").read_text())
    assert selection["object_size_from"] == checkpoint and selection["backbone"] == "test_efficientnet"
    obj, _ = object_size_from(checkpoint, stage2.datamodule, 8, 0, "cpu")
    assert selection["object_size"] == pytest.approx(obj)
    lerfs = selection["lerf"]
    assert set(lerfs) == set(conv_layers(create_net("test_efficientnet")))
    assert selection["layer"] == min(lerfs, key=lambda h: abs(obj - lerfs[h]))
    assert stage2.model.net.layers == [selection["layer"]]
