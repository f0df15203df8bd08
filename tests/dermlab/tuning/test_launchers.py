"""A study's trials as SLURM jobs (a fake sbatch on PATH, as the grid launcher's tests), and as processes that are
killed and started again."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from submitit.core.utils import DelayedSubmission

from dermlab.errors import DataError
from dermlab.tuning import command, launch, search, study
from tests.conftest import REPO
from tests.helpers.slurm import states
from tests.helpers.tuning import write_search


def test_slurm_submits_one_job_per_trial_on_the_journal_storage(tmp_path, isic2017_data_root, fake_slurm, capsys):
    path = write_search(tmp_path / "fake.yaml", slurm={"time": "1:00:00", "partition": "gpu"})
    runs = tmp_path / "runs"
    base = [str(path), "--runs", str(runs), "--data-root", str(isic2017_data_root), "--launcher", "slurm",
            "--mem", "16G", "--sbatch", "account=lab"]
    command.main([*base, "--trials", "3"])
    study_dir = runs / "tuning" / "fake"
    scripts = sorted(fake_slurm.glob("sbatch_*.sh"))
    assert [s.name for s in scripts] == ["sbatch_1001.sh", "sbatch_1002.sh", "sbatch_1003.sh"]
    for slot, script in enumerate(scripts):
        text = script.read_text().replace("'", "")
        for line in ["--time=60", "--partition=gpu", "--mem=16GB", "--account=lab", "--nodes=1", "--gpus-per-node=1",
                     f"--job-name=tune/fake/{slot}"]:
            assert f"#SBATCH {line}" in text, line
        folder = study_dir / "jobs" / f"slot_{slot:04d}"
        job = DelayedSubmission.load(folder / "submitit" / f"{1001 + slot}_submitted.pkl").function
        assert isinstance(job, launch.TrialJob) and job.study_dir == study_dir and job.launcher == "slurm"
    # every job's process reads and writes the study through the one journal file on the shared folder
    assert (study_dir / "journal.log").is_file() and (study_dir / "study.json").is_file()
    assert "the trials run as SLURM jobs" in capsys.readouterr().out
    # queued or running jobs are not submitted again; a job that ended before asking for its trial is replaced
    states(fake_slurm, j1001="PENDING", j1002="RUNNING", j1003="FAILED")
    command.main([*base, "--trials", "3"])
    assert sorted(p.name for p in fake_slurm.glob("sbatch_*.sh"))[-1] == "sbatch_1004.sh"
    assert len(list(fake_slurm.glob("sbatch_*.sh"))) == 4
    states(fake_slurm, j1001="PENDING", j1002="RUNNING", j1003="FAILED", j1004="PENDING")
    command.main([*base, "--trials", "3"])
    assert len(list(fake_slurm.glob("sbatch_*.sh"))) == 4


@pytest.mark.slow
def test_a_trial_job_runs_the_trial_and_records_its_slurm_job(tmp_path, isic2017_data_root, monkeypatch):
    """What the SLURM job's task runs: the trial process, which records the job so a later call can ask sacct."""
    path = write_search(tmp_path / "fake.yaml", space={"model.init_args.x": {"categorical": [3.0]}})
    spec = search.load(path)
    study_dir = tmp_path / "runs" / "tuning" / "fake"
    study.start(study_dir, spec, str(isic2017_data_root), False,
                command.base_args(spec, str(isic2017_data_root), False))
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.chdir(REPO)  # the job starts in the folder it was submitted from
    assert launch.TrialJob(study_dir, 0, "slurm")() == 0
    trial = study.open_study(study_dir, spec).trials[0]
    assert trial.state.name == "COMPLETE" and trial.user_attrs["job_id"] == "4242"
    assert trial.user_attrs["launcher"] == "slurm" and "[tune] trial 0" in (study_dir / "trial_0000" / "trial.log"
                                                                           ).read_text()


def test_slurm_needs_sbatch(tmp_path, isic2017_data_root, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    path = write_search(tmp_path / "fake.yaml")
    with pytest.raises(DataError, match="needs SLURM's sbatch and srun"):
        command.main([str(path), "--runs", str(tmp_path / "runs"), "--data-root", str(isic2017_data_root),
                      "--launcher", "slurm"])
    with pytest.raises(SystemExit, match="job options"):
        command.main([str(path), "--time", "10"])


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_a_killed_study_continues_with_the_trials_it_had(tmp_path, isic2017_data_root, stop):
    # 1 s per training step (2 steps × 2 epochs a trial), so that the kill lands inside the second trial
    path = write_search(tmp_path / "fake.yaml", space={"model.init_args.x": {"categorical": [3.0, 4.0]}},
                        extra_args=["--model.init_args.sleep_s", "1.0"])
    spec = search.load(path)
    runs = tmp_path / "runs"
    study_dir = runs / "tuning" / "fake"
    argv = [sys.executable, "-m", "dermlab", "tune", str(path), "--runs", str(runs), "--data-root",
            str(isic2017_data_root), "--trials", "2"]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    first = subprocess.Popen(argv, cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.STDOUT)
    deadline, before = time.monotonic() + 240, None
    while time.monotonic() < deadline and first.poll() is None:
        if (study_dir / "journal.log").is_file():
            trials = study.open_study(study_dir, spec).get_trials()
            if [t.state.name for t in trials] == ["COMPLETE", "RUNNING"]:
                before = trials[0]
                break
        time.sleep(0.5)
    os.killpg(first.pid, stop)  # the study and its trial's process: kill -9 (a lost node), or Ctrl-C in its terminal
    first.wait(timeout=120)
    assert before is not None, "the first run did not reach its second trial"
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    if stop == signal.SIGKILL:  # nothing of the first run lives to record it: the second call finds it ended
        assert "trial 1 was interrupted" in done.stdout
    # (after Ctrl-C the first run may record it itself, as its trial's process exits with 130: the state is the same)
    with (study_dir / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["state"] for r in rows] == ["COMPLETE", "INTERRUPTED", "COMPLETE"]
    assert float(rows[0]["value"]) == before.value and rows[2]["retry_of"] == "1"
    assert rows[2]["model.init_args.x"] == rows[1]["model.init_args.x"]


@pytest.mark.slow
def test_submitit_local_runs_one_job_per_trial_side_by_side(tmp_path, isic2017_data_root, monkeypatch):
    path = write_search(tmp_path / "fake.yaml", space={"model.init_args.x": {"categorical": [3.0, 5.0]}})
    runs = tmp_path / "runs"
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    command.main([str(path), "--runs", str(runs), "--data-root", str(isic2017_data_root), "--trials", "2",
                  "--parallel", "2", "--launcher", "submitit-local"])
    study_dir = runs / "tuning" / "fake"
    with (study_dir / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted((float(r["model.init_args.x"]), r["state"]) for r in rows) == [(3.0, "COMPLETE"), (5.0, "COMPLETE")]
    records = sorted((study_dir / "jobs").glob("slot_*/job.json"))
    assert len(records) == 2 and all('"launcher": "submitit-local"' in r.read_text() for r in records)


@pytest.mark.slow
def test_final_test_trains_the_best_config_and_tests_it_once(tmp_path, isic2017_data_root, in_process, capsys,
                                                            monkeypatch):
    path = write_search(tmp_path / "fake.yaml", space={"model.init_args.x": {"categorical": [5.0, 3.0]}})
    runs = tmp_path / "runs"
    monkeypatch.chdir(REPO)
    argv = [str(path), "--runs", str(runs), "--data-root", str(isic2017_data_root), "--trials", "2", "--final-test"]
    command.main(argv)
    final = runs / "tuning" / "fake" / "final"
    result = json.loads((final / "result.json").read_text())
    assert result["metrics"]["test/score"] == 0.0  # the best trial's x = 3: -(3 - 3)^2, tested once
    assert "test/score = 0.0000" in capsys.readouterr().out
    stamp = (final / "result.json").stat().st_mtime_ns
    command.main(argv)  # again: the same result, printed, not tested a second time
    assert (final / "result.json").stat().st_mtime_ns == stamp
    assert "tested once already" in capsys.readouterr().out
