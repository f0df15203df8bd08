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
from dermlab.tuning import command, study, trial
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
    assert best["trainer"]["default_root_dir"] == str(study_dir / "best") and best["run"]["name"] == "tuning/fake/best"
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
    with pytest.raises(DataError, match=r"began with another setting: its space changed"):
        command.main([*base, "--trials", "4"])
    write_search(search, title="another title")  # the same search with another title continues
    command.main([*base, "--trials", "3"])
    with pytest.raises(SystemExit, match="at least 1"):
        command.main([*base, "--trials", "0"])


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


def test_a_changed_base_config_file_is_refused(tmp_path, isic2017_data_root, in_process):
    config = tmp_path / "extra.yaml"
    config.write_text("trainer: {max_epochs: 2}\n")
    search = write_search(tmp_path / "fake.yaml", extra_args=["-c", str(config)],
                          space={"model.init_args.x": {"categorical": [3.0]}})
    base = [str(search), "--runs", str(tmp_path / "runs"), "--data-root", str(isic2017_data_root), "--trials", "1"]
    command.main(base)
    config.write_text("trainer: {max_epochs: 2}\nseed_everything: 1\n")  # the same file, another content
    with pytest.raises(DataError, match=rf"config file {config} changed"):
        command.main(base)


def test_the_paper_trial_takes_the_config_value_of_unmarked_keys(tmp_path, isic2017_data_root, in_process):
    # x has the paper's value 4; best (the objective's optimum) is unmarked: the config's 3.0 (QuadraticObjective's
    # default) runs in the paper trial, not a draw
    search = write_search(tmp_path / "fake.yaml", sampler={"class": "RandomSampler", "seed": 0},
                          space={"model.init_args.x": {"float": [0.0, 6.0], "paper": 4.0},
                                 "model.init_args.best": {"float": [0.0, 6.0]}})
    runs = tmp_path / "runs"
    command.main([str(search), "--runs", str(runs), "--data-root", str(isic2017_data_root), "--trials", "1"])
    row = trials_table(runs / "tuning" / "fake")[0]
    assert row["paper"] == "yes" and float(row["model.init_args.x"]) == 4.0
    assert float(row["model.init_args.best"]) == 3.0 and float(row["value"]) == -1.5


def test_a_trial_stopped_by_a_signal_runs_again_and_a_crash_is_a_failure(tmp_path, isic2017_data_root, in_process):
    import optuna

    from dermlab.tuning import launch, search

    path = write_search(tmp_path / "fake.yaml", space={"model.init_args.x": {"categorical": [3.0, 4.0]}})
    runs = tmp_path / "runs"
    command.main([str(path), "--runs", str(runs), "--data-root", str(isic2017_data_root), "--trials", "1"])
    study_dir = runs / "tuning" / "fake"
    the_study = study.open_study(study_dir, search.load(study_dir / "search.yaml"))
    distribution = {"model.init_args.x": optuna.distributions.CategoricalDistribution([3.0, 4.0])}
    for slot in (7, 8):  # two trials whose processes ended without recording them: Ctrl-C (130), a crash (1)
        the_study.ask(distribution).set_user_attr("slot", slot)
    launch.record_crashes(study_dir, the_study, {7: trial.INTERRUPTED, 8: 1})
    states = {t.number: (t.state.name, t.user_attrs.get("interrupted"), t.user_attrs.get("error", ""))
              for t in the_study.get_trials()}
    assert states[1][:2] == ("FAIL", True) and states[2][0] == "FAIL" and "exit code 1" in states[2][2]
    assert states[3][0] == "WAITING"  # trial 1's values, queued to run again
