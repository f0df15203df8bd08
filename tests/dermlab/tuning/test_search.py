"""Search files (``dermlab/tuning/search.py``): what they accept, what they refuse with the key named, how a
trial's values are drawn (conditional keys, the paper's values, seeds per slot)."""

from __future__ import annotations

import optuna
import pytest
import yaml

from dermlab.errors import DataError
from dermlab.tuning import search
from dermlab.tuning.trial import trial_args
from tests.conftest import REPO

DEMO = str(REPO / "experiments" / "demo_synthetic.yaml")


def write(tmp_path, **keys):
    raw = {"config": [DEMO], "objective": {"metric": "val/auc", "direction": "maximize"},
           "space": {"model.init_args.optimizer.init_args.lr": {"float": [1.0e-4, 1.0e-2], "log": True}}}
    raw.update(keys)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_defaults_and_the_one_cell_grid(tmp_path):
    spec = search.load(write(tmp_path))
    assert spec.name == "s" and spec.trials == 20 and spec.dataset == "isic2017"
    assert isinstance(spec.build_sampler(0), optuna.samplers.TPESampler)
    assert isinstance(spec.build_pruner(), optuna.pruners.NopPruner)
    grid = spec.grid()
    assert len(grid.cells()) == 1 and grid.config == [DEMO] and grid.metrics == ["val/auc"]
    assert spec.study_dir(tmp_path) == tmp_path / "tuning" / "s"


@pytest.mark.parametrize(("keys", "message"), [
    ({"objective": {"metric": "test/auc"}}, "validation metric"),
    ({"objective": {"metric": "val/auc", "direction": "up"}}, "objective.direction"),
    ({"space": {"a.b": {"float": [1, 0]}}}, r"'a\.b'.*low ≤ high"),
    ({"space": {"a.b": {"float": [0, 1], "log": True}}}, "log range needs low > 0"),
    ({"space": {"a.b": {"float": [0, 1], "int": [0, 1]}}}, "exactly one of"),
    ({"space": {"a.b": {"categorical": [1, 2], "step": 1}}}, "log and step are for float and int"),
    ({"space": {"a.b": {"int": [1, 4], "paper": 9}}}, "paper's value 9 lies outside"),
    ({"space": {"a.b": {"int": [1, 4], "when": {"c.d": 1}}}}, "keys drawn before it"),
    ({"sampler": {"class": "NoSuchSampler"}}, "sampler class 'NoSuchSampler'.*TPESampler"),
    ({"pruner": {"class": "MedianPruner", "warmup": 2}}, "warmup"),
    ({"trials": 0}, "trials must be a positive integer"),
    ({"surprise": 1}, r"unknown key\(s\) \['surprise'\]"),
    ({"config": ["experiments/none.yaml"]}, "base config 'experiments/none.yaml' does not exist"),
])
def test_malformed_search_files_are_refused_naming_the_key(tmp_path, keys, message):
    with pytest.raises(DataError, match=message):
        search.load(write(tmp_path, **keys))


def test_conditional_keys_are_drawn_only_when_their_condition_holds(tmp_path):
    spec = search.load(write(tmp_path, space={
        "model.init_args.optimizer.class_path": {"categorical": ["torch.optim.SGD", "torch.optim.AdamW"]},
        "model.init_args.optimizer.init_args.momentum": {"float": [0.8, 0.99],
                                                         "when": {"model.init_args.optimizer.class_path":
                                                                  "torch.optim.SGD"}}}))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = [spec.draw(study.ask()) for _ in range(20)]
    for values in drawn:
        sgd = values["model.init_args.optimizer.class_path"] == "torch.optim.SGD"
        assert ("model.init_args.optimizer.init_args.momentum" in values) == sgd
    assert {v["model.init_args.optimizer.class_path"] for v in drawn} == {"torch.optim.SGD", "torch.optim.AdamW"}


def test_the_paper_values_and_per_slot_seeds(tmp_path):
    spec = search.load(write(tmp_path, sampler={"class": "RandomSampler", "seed": 7}, space={
        "model.init_args.focal_gamma": {"float": [0.0, 5.0], "step": 0.5, "paper": 1.0},
        "model.init_args.optimizer.init_args.lr": {"float": [1.0e-5, 1.0e-2], "log": True}}))
    assert spec.paper_values() == {"model.init_args.focal_gamma": 1.0}
    first = [spec.draw(optuna.create_study(sampler=spec.build_sampler(slot)).ask()) for slot in (0, 1)]
    again = spec.draw(optuna.create_study(sampler=spec.build_sampler(0)).ask())
    assert first[0] == again and first[0] != first[1]  # the same slot draws the same; another slot draws anew
    assert all(v["model.init_args.focal_gamma"] % 0.5 == 0 for v in first)


def test_trial_arguments_come_after_the_base_and_pin_one_device(tmp_path):
    args = trial_args(["-c", DEMO, "--trainer.devices", "4"], {"model.init_args.x": 1.5, "a.b": [1, 2], "c": None},
                      tmp_path / "trial_0007", "demo")
    assert args[:4] == ["-c", DEMO, "--trainer.devices", "4"]
    assert args[4:10] == ["--model.init_args.x", "1.5", "--a.b", "[1, 2]", "--c", "null"]
    assert args[args.index("--trainer.devices", 4) + 1] == "1"  # the later value wins: one device per trial
    assert args[args.index("--run.name") + 1] == "tuning/demo/trial_0007"
    assert args[args.index("--trainer.default_root_dir") + 1] == str(tmp_path / "trial_0007")


@pytest.mark.parametrize(("keys", "message"), [
    ({"space": {"a.b": {"categorical": [[0.9, 0.999], [0.5, 0.999]]}}}, "numbers, strings, true/false or null"),
    ({"space": {"a.b": {"float": [0, 1], "log": "no"}}}, "log is true or false"),
    ({"space": {"a.b": {"float": [0, 1], "step": 3}}}, "at most high - low"),
    ({"space": {"a.b": {"float": [0, 5], "step": 0.25, "paper": 1.1}}}, r"1\.1 is not on the grid"),
    ({"space": {"a.b": {"categorical": ["ce", "focal"]}, "c.d": {"float": [0, 5], "when": {"a.b": "Focal"}}}},
     r"\['Focal'\], which is not among its choices"),
])
def test_search_files_that_would_do_nothing_useful_are_refused(tmp_path, keys, message):
    with pytest.raises(DataError, match=message):
        search.load(write(tmp_path, **keys))
