"""Grids as submitit jobs (``dermlab/grid/launcher.py``): the SLURM scripts (a fake sbatch on PATH), dependencies,
resubmission; end to end on submitit's local executor: the local runner's results, a kill, a preemption."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning.pytorch as L
import pandas as pd
import pytest
import torch
from submitit.core.utils import DelayedSubmission

from dermlab.errors import DataError
from dermlab.grid import command, launcher, runner, spec, status
from dermlab.grid.launcher import CellJob, Launcher
from tests.conftest import REPO
from tests.helpers.grids import TINY, write_grid
from tests.helpers.slurm import states


def staged_grid(path: Path, **overrides) -> spec.GridSpec:
    """Stage one trains from scratch; stage two starts from stage one's run folder (a stage-2 cell of a paper)."""
    grid = {"axes": {"stage": {"one": {"model.init_args.pretrained_weights": None},
                               "two": {"model.init_args.pretrained_weights": "@cell(stage=one)"}}},
            "rows": ["stage"], "metrics": ["test/auc"]}
    return spec.load(write_grid(path, **{**grid, **overrides}))


def test_slurm_jobs_carry_the_resources_and_wait_for_the_cells_they_start_from(tmp_path, isic2017_data_root, fake_slurm,
                                                                               monkeypatch):
    grid = staged_grid(tmp_path / "g.yaml", slurm={"gpus_per_cell": 2, "time": "2:30:00", "mem": "64G",
                                                   "partition": "gpu", "setup": ["module load cuda"],
                                                   "sbatch": {"requeue": True}})
    runs = tmp_path / "runs"
    one, two = (grid.run_root(runs, False) / f"stage={s}" for s in ("one", "two"))
    command.main(["run", str(grid.path), "--data-root", str(isic2017_data_root), "--runs", str(runs),
                  "--launcher", "slurm",
                  "--cpus-per-cell", "8", "--sbatch", "account=lab"])  # the grid file's slurm: and these options
    assert [s.state for s in status.cell_statuses(grid, runs)] == ["submitted", "submitted"]  # sacct knows nothing
    first, second = (one / "submitit" / "1001_submission.sh").read_text(), (two / "submitit" / "1002_submission.sh"
                                                                            ).read_text()
    assert first == (fake_slurm / "sbatch_1001.sh").read_text()  # the very script sbatch was given
    for line in ["--gpus-per-node=2", "--ntasks-per-node=2", "--cpus-per-task=4", "--time=150", "--partition=gpu",
                 "--mem=64GB", "--nodes=1", "--account=lab", "--requeue", "--signal=USR2@90",
                 f"--output={one.absolute()}/submitit/%j_0_log.out", "--job-name=tiny/stage=one"]:
        assert f"#SBATCH {line}" in first.replace("'", ""), line
    assert "module load cuda" in first and "srun --unbuffered" in first and "-m submitit.core._submit" in first
    assert "--dependency" not in first
    assert "#SBATCH --dependency=afterok:1001" in second and "#SBATCH --kill-on-invalid-dep=yes" in second
    job = DelayedSubmission.load(two / "submitit" / "1002_submitted.pkl").function
    assert isinstance(job, CellJob) and job.run_dir == two and job.args[-2:] == ["--trainer.devices", "2"]
    assert job.args[job.args.index("--model.init_args.pretrained_weights") + 1] == str(one)
    local = runner.cell_args(grid, grid.cells()[1], two, str(isic2017_data_root / "isic2017"), [])
    assert job.args[:-2] == local  # the local cell's
    assert launcher.read_record(two)["after"] == ["1001"] and launcher.read_record(one)["job_id"] == "1001"

    monkeypatch.setattr(runner, "validate", lambda *a, **k: None)  # checked above; the resubmissions are the point
    states(fake_slurm, j1001="RUNNING", j1002="PENDING")
    queued = {"stage=one": "queued", "stage=two": "queued"}
    assert Launcher("slurm").run(grid, str(isic2017_data_root), runs=runs) == queued
    assert (fake_slurm / "next_id").read_text().strip() == "1003"  # nothing submitted again
    text = status.render(grid, runs)
    assert "2 cells, 1 running, 1 queued" in text and "job 1002 after 1001" in text

    # stage one failed; stage two still waits on it: it is cancelled, and both go again, two after the new one
    states(fake_slurm, j1001="FAILED", j1002="PENDING")
    (one / "failed.json").write_text(json.dumps({"returncode": 1, "log": str(one / "cell.log")}))
    assert Launcher("slurm").run(grid, str(isic2017_data_root), runs=runs) == {"stage=one": "submitted",
                                                                           "stage=two": "submitted"}
    assert (fake_slurm / "scancel_calls").read_text().split() == ["1002"]
    assert "#SBATCH --dependency=afterok:1003" in (two / "submitit" / "1004_submission.sh").read_text()
    (one / "result.json").write_text(json.dumps({"metrics": {"test/auc": 0.5}}))
    states(fake_slurm, j1003="COMPLETED", j1004="RUNNING")
    assert [(s.cell, s.state) for s in status.cell_statuses(grid, runs)] == [("stage=one", "finished"),
                                                                             ("stage=two", "running")]


def test_a_cell_of_another_table_that_is_queued_or_missing(tmp_path, isic2017_data_root, fake_slurm):
    """``@cell(table: ...)``: submitted after the other table's queued job, or not at all when it has none."""
    write_grid(tmp_path / "a.yaml", table="a", axes={"model.init_args.backbone": ["test_resnet"]})
    b = spec.load(write_grid(tmp_path / "b.yaml", table="b", axes={"model.init_args.backbone": ["test_resnet"]},
                             args=[*TINY, "--model.init_args.pretrained_weights", "@cell(a:)"]))
    runs = tmp_path / "runs"
    other = runs / "grids" / "demo" / "a" / "backbone=test_resnet"
    assert Launcher("slurm").run(b, str(isic2017_data_root), runs=runs) == {"backbone=test_resnet": "blocked"}
    other.mkdir(parents=True)
    (other / "job.json").write_text(json.dumps({"launcher": "slurm", "job_id": "77", "after": []}))
    states(fake_slurm, j77="PENDING")
    assert Launcher("slurm").run(b, str(isic2017_data_root), runs=runs) == {"backbone=test_resnet": "submitted"}
    assert "#SBATCH --dependency=afterok:77" in (fake_slurm / "sbatch_1001.sh").read_text()


def test_the_check_before_submitting_needs_no_gpu(tmp_path, isic2017_root):
    """A login node has no GPU: a grid whose cells ask for GPUs and DDP is still checked there (on the CPU)."""
    gpu = ["--trainer.accelerator", "gpu", "--trainer.devices", "-1", "--trainer.strategy", "ddp",
           "--trainer.precision", "bf16-mixed"]
    grid = spec.load(write_grid(tmp_path / "g.yaml", args=[*TINY, *gpu], metrics=["test/auc", "test/dice"]))
    with pytest.raises(DataError, match="do not log \\['test/dice'\\]"):  # built, so its metrics were read
        runner.validate(grid, {"isic2017": (str(isic2017_root), [])}, base=tmp_path / "runs")


def test_slurm_needs_sbatch_and_local_takes_no_job_options(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    with pytest.raises(DataError, match="needs SLURM's sbatch and srun"):
        Launcher("slurm")
    with pytest.raises(SystemExit, match="are for --launcher slurm or submitit-local"):
        command.main(["run", str(write_grid(tmp_path / "g.yaml")), "--partition", "gpu"])


class PauseOnce(L.Callback):
    """Once, at the start of epoch ``epoch`` (its last.ckpt is of the epoch before): write the process id of the
    submitit job that runs this cell to ``$DERMLAB_TEST_PAUSE``, then wait there for the test to act."""

    def __init__(self, epoch: int = 1):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        marker = os.environ.get("DERMLAB_TEST_PAUSE")
        if marker and trainer.current_epoch == self.epoch and not Path(marker).exists():
            Path(marker).write_text(str(os.getppid()))
            time.sleep(300)


def paused_args(epochs: int) -> list[str]:
    """The tiny cell for ``epochs`` epochs, with :class:`PauseOnce` at the start of epoch 1."""
    return ["--data.init_args.image_size", "32", "--data.init_args.batch_size", "8", "--data.init_args.num_workers",
            "0", "--trainer.max_epochs", str(epochs), "--model.init_args.scheduler.init_args.T_max", str(epochs),
            "--run.wandb", "disabled", "--trainer.callbacks+=tests.dermlab.grid.test_launcher.PauseOnce"]


def grid_command(grid_file: Path, runs: Path, root: Path) -> list[str]:
    return [sys.executable, "-m", "dermlab", "grid", "run", str(grid_file), "--data-root", str(root), "--runs",
            str(runs), "--launcher", "submitit-local", "--gpus-per-cell", "0"]


def wait_for(path: Path, process: subprocess.Popen, seconds: float = 240) -> None:
    deadline = time.time() + seconds
    while not path.is_file() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert path.is_file(), f"{path} never appeared (return code {process.poll()})"


@pytest.mark.slow
def test_submitit_local_runs_stage_one_then_two_with_the_local_runners_results(tmp_path, isic2017_data_root,
                                                                               monkeypatch):
    monkeypatch.chdir(REPO)
    grid = staged_grid(tmp_path / "g.yaml")
    local = runner.run(grid, str(isic2017_data_root), runs=tmp_path / "a")
    assert local == {"stage=one": "done", "stage=two": "done"}
    jobs = Launcher("submitit-local", {"gpus_per_cell": 0}).run(grid, str(isic2017_data_root), runs=tmp_path / "b")
    assert jobs == {"stage=one": "done", "stage=two": "done"}
    for cell in ("stage=one", "stage=two"):
        a, b = (grid.run_root(tmp_path / r, False) / cell for r in ("a", "b"))
        ra, rb = (json.loads((f / "result.json").read_text()) for f in (a, b))
        assert set(ra) == set(rb) and ra["metrics"] and ra["metrics"] == rb["metrics"], cell
        assert (ra["best_monitor"], ra["resumed"], ra["split_audit"]) == (rb["best_monitor"], rb["resumed"],
                                                                           rb["split_audit"])
        assert Path(ra["checkpoint"]).relative_to(a) == Path(rb["checkpoint"]).relative_to(b)
        record = launcher.read_record(b)
        assert record["launcher"] == "submitit-local" and (b / "submitit" / f"{record['job_id']}_0_log.err").is_file()
    one, two = (grid.run_root(tmp_path / "b", False) / c / "result.json" for c in ("stage=one", "stage=two"))
    assert two.stat().st_mtime > one.stat().st_mtime
    logs = [(f.parent / "cell.log").read_text() for f in (one, two)]
    assert "starting from RANDOM" in logs[0] and "starting from RANDOM" not in logs[1]  # two starts from one


@pytest.mark.slow
def test_a_cell_killed_mid_run_is_resumed_when_submitted_again(tmp_path, isic2017_data_root, monkeypatch):
    """``kill -9`` of the launcher and its job after epoch 0's last.ckpt; the next ``grid run`` resumes at epoch 1."""
    monkeypatch.chdir(REPO)
    grid_file = write_grid(tmp_path / "g.yaml", axes={"model.init_args.backbone": ["test_resnet"]},
                           args=paused_args(epochs=3))
    cell = tmp_path / "runs" / "grids" / "demo" / "tiny" / "backbone=test_resnet"
    marker = tmp_path / "paused"
    killed = subprocess.Popen(grid_command(grid_file, tmp_path / "runs", isic2017_data_root), start_new_session=True,
                              env={**os.environ, "DERMLAB_TEST_PAUSE": str(marker)}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    wait_for(marker, killed)
    os.killpg(killed.pid, signal.SIGKILL)  # the launcher, submitit's controller, the job and the cell
    killed.wait()
    assert not (cell / "result.json").is_file()
    last = torch.load(cell / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["epoch"] == 0 and last["global_step"] > 0
    assert [s.state for s in status.cell_statuses(spec.load(grid_file), tmp_path / "runs")] == ["interrupted"]
    again = subprocess.run(grid_command(grid_file, tmp_path / "runs", isic2017_data_root), capture_output=True,
                           text=True, timeout=400)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert json.loads((cell / "result.json").read_text())["resumed"]
    resumed = pd.read_csv(sorted((cell / "csv").glob("version_*/metrics.csv"))[-1])
    assert set(resumed.dropna(subset=["val/auc"])["epoch"]) == {1, 2}  # epoch 0 is not trained again
    assert resumed["step"].min() >= last["global_step"]  # the global step goes on from the checkpoint's


@pytest.mark.slow
def test_a_preempted_job_requeues_itself_and_resumes(tmp_path, isic2017_data_root, monkeypatch):
    """submitit's preemption signal (USR2) to the job mid-run: it requeues itself and the cell resumes from last.ckpt,
    while the launcher waits."""
    monkeypatch.chdir(REPO)
    grid_file = write_grid(tmp_path / "g.yaml", axes={"model.init_args.backbone": ["test_resnet"]},
                           args=paused_args(epochs=2))
    cell = tmp_path / "runs" / "grids" / "demo" / "tiny" / "backbone=test_resnet"
    marker = tmp_path / "paused"
    launch = subprocess.Popen(grid_command(grid_file, tmp_path / "runs", isic2017_data_root), text=True,
                              env={**os.environ, "DERMLAB_TEST_PAUSE": str(marker)}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    wait_for(marker, launch)
    os.kill(int(marker.read_text()), signal.SIGUSR2)
    output, _ = launch.communicate(timeout=400)
    assert launch.returncode == 0, output[-3000:]
    assert json.loads((cell / "result.json").read_text())["resumed"]
    assert "requeued and resumes from last.ckpt" in (cell / "cell.log").read_text()
    job = launcher.read_record(cell)["job_id"]
    assert "Requeued job" in (cell / "submitit" / f"{job}_0_log.out").read_text()  # submitit's own account


@pytest.mark.slow
def test_a_two_gpu_cells_tasks_make_one_ddp_run_under_slurm(tmp_path, isic2017_data_root, monkeypatch):
    """What ``srun`` starts for a cell with 2 GPUs, on CPU: two tasks with SLURM's variables each call the cell's
    job; Lightning's SLURM environment joins them into one DDP run (no launcher of ours); rank 0 writes the cell's
    files, rank 1 logs to ``cell.rank1.log``."""
    monkeypatch.chdir(REPO)
    grid = spec.load(write_grid(tmp_path / "g.yaml", axes={"model.init_args.backbone": ["test_resnet"]}))
    _, [(cell, args, run_dir)] = runner.prepare(grid, str(isic2017_data_root), runs=tmp_path / "runs")
    (tmp_path / "job.json").write_text(json.dumps({"id": cell.id, "args": [*args, "--trainer.devices", "2"],
                                                   "run_dir": str(run_dir)}))
    call = ("import json, sys; from dermlab.grid.launcher import CellJob; j = json.load(open(sys.argv[1])); "
            "print(CellJob(j['id'], j['args'], j['run_dir'])())")
    slurm = {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "tiny", "SLURM_NTASKS": "2",
             "SLURM_NTASKS_PER_NODE": "2", "SLURM_NNODES": "1", "SLURM_JOB_NUM_NODES": "1", "SLURM_NODEID": "0",
             "SLURM_NODELIST": "127.0.0.1", "SLURM_JOB_NODELIST": "127.0.0.1"}
    tasks = [subprocess.Popen([sys.executable, "-c", call, str(tmp_path / "job.json")], text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env={**os.environ, **slurm, "SLURM_PROCID": str(r), "SLURM_LOCALID": str(r)})
             for r in (0, 1)]
    outputs = [task.communicate(timeout=400)[0] for task in tasks]
    assert [task.returncode for task in tasks] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    log = (run_dir / "cell.log").read_text()
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in log and "GLOBAL_RANK: 1, MEMBER: 2/2" in (run_dir / "cell.rank1.log"
                                                                                       ).read_text()
    result = json.loads((run_dir / "result.json").read_text())
    assert 0 <= result["metrics"]["test/auc"] <= 1 and result["best_monitor"] is not None
    assert not (run_dir / "failed.json").exists() and not (run_dir / "checkpoints" / "last.ckpt").exists()


def test_slurm_scripts_quote_the_run_folder_and_jobs_keep_the_data_root(spaced_root, tmp_path, fake_slurm,  # noqa: F811
                                                                        monkeypatch):
    monkeypatch.setattr(runner, "validate", lambda *a, **k: None)  # the cells' arguments are the point here
    grid = spec.load(write_grid(tmp_path / "g.yaml", axes={"model.init_args.backbone": ["test_resnet"]}))
    runs = tmp_path / "runs é x"
    assert Launcher("slurm").run(grid, str(spaced_root.parent), runs=runs) == {"backbone=test_resnet": "submitted"}
    folder = grid.run_root(runs, False) / "backbone=test_resnet" / "submitit"
    script = (folder / "1001_submission.sh").read_text().splitlines()
    output = next(line for line in script if line.startswith("#SBATCH --output="))
    assert shlex.split(output.split("=", 1)[1]) == [f"{folder.absolute()}/%j_0_log.out"]
    srun = shlex.split(next(line for line in script if line.startswith("srun ")))
    assert srun[-1] == str(folder.absolute()) or Path(srun[-1]) == folder
    assert srun[srun.index("--output") + 1] == f"{folder.absolute()}/%j_%t_log.out"
    from submitit.core.utils import DelayedSubmission

    job = DelayedSubmission.load(folder / "1001_submitted.pkl").function
    assert job.args[job.args.index("--data.init_args.root") + 1] == str(spaced_root)
