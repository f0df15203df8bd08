"""``dermlab grid plan`` (``dermlab/grid/plan.py``): the arithmetic on hand-made numbers, the FLOPs scaling, the
measured throughput, the published split sizes and a real table planned through the command."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys

import pytest

from dermlab.errors import DataError
from dermlab.files.split_sizes import split_sizes
from dermlab.grid import command, plan, spec
from tests.conftest import REPO

BASELINE = REPO / "experiments" / "baseline" / "tables" / "backbone_seed.yaml"


def run(name: str, epochs: float = 10, train: int = 2000, val: int = 0, test: int = 0, cost: float = 1.0,
        after: tuple[str, ...] = ()) -> plan.RunCost:
    return plan.RunCost(name, epochs, train, val, epochs if val else 0, test, cost, cost, after)


def test_project_is_images_times_cost_over_throughput_by_hand():
    # 3 runs × 10 epochs × 2,000 images at 100 images/s: 60,000 images / 100 = 600 s = 1/6 h
    projection = plan.project([run("a"), run("b"), run("c")], throughput=100)
    assert projection.hours == pytest.approx([200 / 3600] * 3)
    assert projection.gpu_hours == pytest.approx(600 / 3600)
    assert projection.wall_hours == pytest.approx(600 / 3600)  # one GPU: one after another
    # evaluation at a third of a training image: 10 passes × 150 + 600 test = 2,100 images → 700 → +7 s
    evaluated = plan.project([run("a", val=150, test=600)], throughput=100)
    assert evaluated.gpu_hours == pytest.approx((20_000 + 2_100 / 3) / 100 / 3600)
    # a model of twice the FLOPs takes twice as long
    assert plan.project([run("a", cost=2.0)], 100).gpu_hours == pytest.approx(2 * 200 / 3600)


def test_wall_time_is_the_share_per_gpu_but_not_below_the_longest_chain():
    runs = [run("a"), run("b"), run("c"), run("d", after=("a",))]  # 200 s each; d starts from a
    two = plan.project(runs, throughput=100, gpus=2)
    assert two.wall_hours == pytest.approx(800 / 2 / 3600)
    eight = plan.project(runs, throughput=100, gpus=8)
    assert eight.critical_path_hours == pytest.approx(400 / 3600)
    assert eight.wall_hours == pytest.approx(400 / 3600)  # a then d, not 800 s / 8
    with pytest.raises(DataError):
        plan.project(runs, throughput=0)


def test_flops_scale_with_the_model_and_the_square_of_the_image_side():
    arguments = json.dumps({"backbone": "resnet50", "num_classes": 2})
    at224, at448 = plan.forward_flops("lightning_modules.LesionClassifier", arguments,
                                      ((1, 3, 224, 224), (1, 3, 448, 448)))
    assert at224 / plan.reference_flops() == pytest.approx(1.0)
    assert at448 / plan.reference_flops() == pytest.approx(4.0, rel=0.01)
    small, = plan.forward_flops("lightning_modules.LesionClassifier", json.dumps({"backbone": "resnet18"}),
                                ((1, 3, 224, 224),))
    assert 0.4 < small / plan.reference_flops() < 0.5  # ResNet-18: 1.8 of ResNet-50's 4.1 GMACs


def load_results_module():
    module_spec = importlib.util.spec_from_file_location("benchmark_results", REPO / "benchmarks" / "results.py")
    results = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = results  # dataclasses look their module up there
    module_spec.loader.exec_module(results)
    return results


def test_the_throughput_is_the_fit_row_make_bench_gpu_wrote(tmp_path, monkeypatch):
    results = load_results_module()
    monkeypatch.setenv("DERMLAB_BENCH_RESULTS", str(tmp_path))
    figures = [results.Figure("bare", 3100.0, "images/s"), results.Figure("fit", 2950.0, "images/s"),
               results.Figure("fit / bare", 0.95, "ratio", ratio_of="images/s"),
               results.Figure("fit+compile", 3300.0, "images/s")]
    results.record("gpu_resnet50", figures, setting="timm resnet50, 224 px, batch 256", machine_name="GPU box",
                   command="python benchmarks/gpu_resnet50.py")
    throughput, source = plan.reference_throughput()
    assert throughput == 2950.0
    assert "gpu_resnet50.csv" in source and "GPU box" in source


def test_without_a_measurement_the_error_names_both_ways_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setenv("DERMLAB_BENCH_RESULTS", str(tmp_path))
    with pytest.raises(DataError) as caught:
        plan.reference_throughput()
    assert "--throughput" in str(caught.value) and "make bench-gpu" in str(caught.value)
    with pytest.raises(DataError, match="--throughput"):
        command.main(["plan", str(BASELINE)])


def test_published_split_sizes_at_the_papers_settings():
    assert split_sizes("isic2017", {}) == (2000, 150, 600)
    assert split_sizes("ham10000", {"split": "patch"}) == (5008, 2504, 2504)  # docs/splits.md: 5,007–5,009 / 2,503
    assert split_sizes("ham10000", {"split": "weighting", "fold": 1}) == (8012, 0, 2003)
    assert split_sizes("isic2018_task3", {"split": "holdout", "val_size": 999}) == (9016, 1192, 1512)
    assert split_sizes("isic2018_task3", {"split": "holdout", "val_size": 999, "test_set": "validation"}) == (
        9016, 999, 193)
    assert split_sizes("isic2016", {"val_size": 251}) == (649, 251, 379)
    assert split_sizes("isic2018_task1", {"cv_fold": 0, "n_folds": 5, "test_set": "validation"}) == (2075, 519, 100)
    assert split_sizes("derm7pt", {"merge_valid": True}) == (616, 0, 395)
    assert split_sizes("ddi", {"split": "external"}) == (0, 0, 656)
    with pytest.raises(DataError, match="split_sizes.py"):
        split_sizes("no_such_set", {})


def test_trials_bounded_by_steps_plan_as_the_epochs_those_steps_make():
    base = ["-c", str(REPO / "experiments" / "demo_synthetic.yaml")]
    projection = plan.plan_runs([[*base], ["fit", *base, "--trainer.max_epochs", "-1", "--trainer.max_steps", "125",
                                           "--data.init_args.image_size", "128"]], throughput=1000, gpus=2)
    first, second = projection.runs
    assert (first.name, first.epochs, first.train_images, first.val_images, first.test_images) == (
        "trial 0", 12, 2000, 150, 600)
    assert second.epochs == pytest.approx(125 * 32 / 2000)  # steps × batch size / training images
    assert second.train_cost == pytest.approx(4 * first.train_cost, rel=0.01)  # 128 px: 4 × the pixels of 64 px
    assert projection.wall_hours == pytest.approx(max(projection.hours))


def test_a_real_table_plans_every_cell_and_the_command_writes_only_the_csv_asked_for(tmp_path, capsys):
    grid = spec.load(BASELINE)
    projection = plan.plan_table(grid, throughput=3000, gpus=2)
    assert [r.name for r in projection.runs] == [c.id for c in grid.cells()]
    assert {(r.epochs, r.train_images, r.val_images, r.val_passes, r.test_images) for r in projection.runs} == {
        (12, 2000, 150, 12, 600)}  # ISIC 2017's released splits, 12 epochs
    out = tmp_path / "plan.csv"
    command.main(["plan", str(BASELINE), "--throughput", "3000", "--gpus", "2", "--csv", str(out)])
    printed = capsys.readouterr().out
    assert "| baseline/backbone_seed | 6 | 12 | 2,000 |" in printed and "wall hours on 2 GPUs" in printed
    assert "3,000 training images per second" in printed and "one third" in printed
    with out.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [r["name"] for r in rows] == [c.id for c in grid.cells()]
    assert sum(float(r["gpu_hours"]) for r in rows) == pytest.approx(projection.gpu_hours, rel=1e-3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.csv"]


def test_with_a_data_root_the_images_are_counted_from_its_split_files(tmp_path):
    from datamodules import ISIC2017DataModule
    from tests.helpers.twins import write_data_root

    write_data_root(tmp_path / "data", ["isic2017"], n=40, size=32)
    projection = plan.plan_table(spec.load(BASELINE), throughput=3000, data_root=str(tmp_path / "data"))
    data = ISIC2017DataModule(root=str(tmp_path / "data" / "isic2017"))
    counted = tuple(len(data.raw_table(split)) for split in ("train", "val", "test"))
    assert counted[0] == 40 and counted != (2000, 150, 600)
    assert {(r.train_images, r.val_images, r.test_images) for r in projection.runs} == {counted}
