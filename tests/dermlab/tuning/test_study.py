"""``dermlab tune`` end to end on the tiny ISIC 2017 twin with a fake objective whose best value is known
(tests/helpers/tuning.py): the study finds it, a pruned trial is recorded pruned, best.yaml trains again, the test
split is never set up, the search cannot change under a study. Trials run in this process (``launch.worker``
replaced by :func:`dermlab.tuning.trial.run_trial`); tests/dermlab/tuning/test_launchers.py runs them as processes
and jobs."""

from __future__ import annotations

import csv

import pytest
import yaml

from dermlab.errors import DataError
from dermlab.tuning import command, study
from tests.helpers.tuning import DIVERGES, write_search


def trials_table(study_dir):
    with (study_dir / "trials.csv").open() as f:
        return list(csv.DictReader(f))


def test_a_study_finds_the_known_best_and_never_sets_up_the_test_split(tmp_path, isic2017_data_root, in_process):
    stages = tmp_path / "stages.txt"
    search = write_search(tmp_path / "fake.yaml", stages_file=stages)
    runs = tmp_path / "runs"
    command.main([str(search), "--runs", str(runs), "--data-root", str(isic2017_data_root)])
    study_dir = runs / "tuning" / "fake"
    rows = trials_table(study_dir)
    # BruteForceSampler over x = 1..5: every value once; val/score = -(x-3)^2 - 1/(epoch+1), best at epoch 2 (index 1)
    assert sorted(float(r["model.init_args.x"]) for r in rows) == [1, 2, 3, 4, 5]
    for row in rows:
        assert row["state"] == "COMPLETE" and row["epochs"] == "2"
        assert float(row["value"]) == pytest.approx(-(float(row["model.init_args.x"]) - 3) ** 2 - 0.5)
    best = yaml.safe_load((study_dir / "best.yaml").read_text())
    assert best["model"]["init_args"]["x"] == 3
    assert best["trainer"]["default_root_dir"] is None and best["run"]["name"] == "fake-best"
    assert "Best trial" in (study_dir / "best.yaml").read_text().splitlines()[0]
    for plot in ("history.png", "importances.png", "intermediate.png"):
        assert (study_dir / plot).stat().st_size > 1000, plot
    seen = stages.read_text().split()
    assert seen == ["setup:fit"] * 5  # one fit per trial; no test set-up, no test dataloader
    # the split audit ran in every trial (each trial is a `dermlab fit` run with its own run folder)
    for row in rows:
        assert (study_dir / f"trial_{int(row['trial']):04d}" / "splits" / "audit.json").is_file()


def test_best_yaml_builds_the_best_trials_run(tmp_path, isic2017_data_root, in_process, capsys):
    search = write_search(tmp_path / "fake.yaml", space={"model.init_args.x": {"categorical": [3.0, 5.0]}})
    runs = tmp_path / "runs"
    command.main([str(search), "--runs", str(runs), "--data-root", str(isic2017_data_root), "--trials", "2"])
    study_dir = runs / "tuning" / "fake"
    from dermlab.commands.trainer import build_cli

    cli = build_cli(["-c", str(study_dir / "best.yaml"), "--trainer.default_root_dir", str(tmp_path / "again")],
                    run=False)  # what `dermlab fit -c best.yaml` builds
    assert cli.model.hparams.x == 3.0 and str(cli.datamodule.root) == str(isic2017_data_root / "isic2017")
    assert [type(c).__name__ for c in cli.trainer.callbacks if "Checkpoint" in type(c).__name__] == ["ModelCheckpoint"]


def test_a_pruned_trial_is_recorded_pruned(tmp_path, isic2017_data_root, in_process):
    # ThresholdPruner: a trial whose val/score falls below -2 after its first epoch stops there
    search = write_search(tmp_path / "fake.yaml", space={"model.init_args.x": {"categorical": [3.0, 0.0]}},
                          pruner={"class": "ThresholdPruner", "lower": -2.0})
    runs = tmp_path / "runs"
    command.main([str(search), "--runs", str(runs), "--data-root", str(isic2017_data_root), "--trials", "2"])
    rows = {float(r["model.init_args.x"]): r for r in trials_table(runs / "tuning" / "fake")}
    assert rows[3.0]["state"] == "COMPLETE" and rows[3.0]["epochs"] == "2"
    # Optuna keeps a pruned trial's last reported value: -(0 - 3)^2 - 1/1 at its first epoch
    assert rows[0.0]["state"] == "PRUNED" and rows[0.0]["epochs"] == "1" and float(rows[0.0]["value"]) == -10.0


def test_more_trials_continue_the_study_and_a_changed_search_is_refused(tmp_path, isic2017_data_root, in_process):
    search = write_search(tmp_path / "fake.yaml")
    runs = tmp_path / "runs"
    base = [str(search), "--runs", str(runs), "--data-root", str(isic2017_data_root)]
    command.main([*base, "--trials", "2"])
    first = trials_table(runs / "tuning" / "fake")
    command.main([*base, "--trials", "3"])
    rows = trials_table(runs / "tuning" / "fake")
    assert len(rows) == 3 and rows[:2] == [{**r, "duration_s": rows[i]["duration_s"]} for i, r in enumerate(first)]
    command.main([*base, "--trials", "3"])  # nothing left to run
    assert len(trials_table(runs / "tuning" / "fake")) == 3
    write_search(search, space={"model.init_args.x": {"int": [1, 9]}})
    with pytest.raises(DataError, match=r"began with another search: space"):
        command.main([*base, "--trials", "4"])


def test_an_interrupted_trial_runs_again(tmp_path, isic2017_data_root, in_process):
    import subprocess

    import optuna

    search = write_search(tmp_path / "fake.yaml", space={"model.init_args.x": {"categorical": [3.0, 4.0]}})
    runs = tmp_path / "runs"
    base = [str(search), "--runs", str(runs), "--data-root", str(isic2017_data_root)]
    command.main([*base, "--trials", "1"])
    study_dir = runs / "tuning" / "fake"
    # what a killed study leaves: a trial RUNNING whose process (on this host) has ended
    spec = __import__("dermlab.tuning.search", fromlist=["load"]).load(study_dir / "search.yaml")
    the_study = study.open_study(study_dir, spec)
    dead = subprocess.Popen(["true"])
    dead.wait()
    left = the_study.ask({"model.init_args.x": optuna.distributions.CategoricalDistribution([3.0, 4.0])})
    for key, value in {**study.worker_identity(), "pid": dead.pid, "slot": 99}.items():
        left.set_user_attr(key, value)
    x = left.params["model.init_args.x"]
    command.main([*base, "--trials", "2"])
    rows = trials_table(study_dir)
    assert [r["state"] for r in rows] == ["COMPLETE", "INTERRUPTED", "COMPLETE"]
    assert rows[2]["retry_of"] == "1" and float(rows[2]["model.init_args.x"]) == x  # its values ran again


def test_a_diverging_trial_fails_with_its_error_and_the_study_goes_on(tmp_path, isic2017_data_root, in_process):
    search = write_search(tmp_path / "fake.yaml", space={"model.init_args.x": {"categorical": [DIVERGES, 3.0]}})
    runs = tmp_path / "runs"
    with pytest.raises(SystemExit, match=r"1 trial\(s\) failed: \[\d\]") as stopped:
        command.main([str(search), "--runs", str(runs), "--data-root", str(isic2017_data_root), "--trials", "2"])
    rows = {float(r["model.init_args.x"]): r for r in trials_table(runs / "tuning" / "fake")}
    assert rows[DIVERGES]["state"] == "FAIL" and rows[3.0]["state"] == "COMPLETE"
    assert f"[{rows[DIVERGES]['trial']}]" in str(stopped.value)
    assert "NonFiniteTraining: training diverged" in rows[DIVERGES]["error"]
    assert yaml.safe_load((runs / "tuning" / "fake" / "best.yaml").read_text())["model"]["init_args"]["x"] == 3.0
    with pytest.raises(SystemExit, match="failed"):  # a failed trial counts towards --trials and is not retried
        command.main([str(search), "--runs", str(runs), "--data-root", str(isic2017_data_root), "--trials", "2"])
    assert len(trials_table(runs / "tuning" / "fake")) == 2


@pytest.mark.parametrize(("keys", "message"), [
    ({"space": {"model.init_args.no_such_key": {"int": [1, 2]}}}, r"rejects a value of the space.*no_such_key"),
    ({"objective": {"metric": "val/auc", "direction": "maximize"}},
     r"do not log val/auc; they log \['test/score', 'val/score'\]"),
])
def test_a_mistyped_key_or_an_unlogged_objective_stops_before_any_trial(tmp_path, isic2017_data_root, keys, message):
    search = write_search(tmp_path / "fake.yaml", **keys)
    runs = tmp_path / "runs"
    with pytest.raises(DataError, match=message):
        command.main([str(search), "--runs", str(runs), "--data-root", str(isic2017_data_root)])
    assert not (runs / "tuning" / "fake" / "journal.log").exists()
