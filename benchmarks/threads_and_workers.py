"""Training images/s and CPU time (user / sys) of ``dermlab fit`` for several DataLoader-worker and torch-thread
counts, with and without ``--run.keep_freed_memory``, denormal flushing and channels-last memory format, each in
its own process, side by side in one run.

The run fine-tunes the real demo's EfficientNet-Lite0 on the shipped sample (``experiments/demo.yaml``) at
``--size`` px; images/s is the batch size over the median step time between training step ``--warmup`` and
``--steps`` (validation off), the median over ``--rounds`` fresh runs of each setting taken in alternating order.
User and sys CPU seconds are those of the run's process and its DataLoader workers (``getrusage`` of the child).
``auto`` is the suite's default (:func:`dermlab.runtime.resources.default_workers`; torch's own thread count).

    python benchmarks/threads_and_workers.py [--size 192 --batch 32 --steps 20 --warmup 4 --rounds 2 --settings 0 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from results import Figure, record  # benchmarks/ is on sys.path when run as a script

from dermlab.runtime.resources import available_cores

# "auto" = what the suite picks on this machine
# (DataLoader workers, torch threads, keep freed memory, flush denormals, channels-last)
SETTINGS = (("auto", "auto", True, True, True), (2, "auto", False, False, False), ("auto", "auto", True, True, False),
            ("auto", "auto", False, True, True), ("auto", "auto", True, False, True), (2, 2, True, True, True),
            (0, 2, True, True, True), (1, 1, True, True, True))
OLD_DEFAULT = 1  # the suite's settings before 2026-11-30: 2 workers, torch's threads, glibc's malloc, denormals, NCHW


def one_run(workers, threads, keep, flush, channels_last, args) -> dict:
    """images/s of one configuration, measured in this (child) process."""
    import torch
    from lightning_vs_bare import StepTimer  # this folder is on sys.path when run as a script

    from dermlab.commands.trainer import build_cli

    overrides = ["-c", "experiments/demo.yaml", "--data.init_args.image_size", str(args.size),
                 "--data.init_args.batch_size", str(args.batch), "--trainer.max_steps", str(args.steps),
                 "--trainer.max_epochs", "-1", "--trainer.limit_val_batches", "0", "--run.wandb", "disabled",
                 "--trainer.default_root_dir", "runs/bench_threads", "--trainer.enable_model_summary", "false"]
    if workers != "auto":
        overrides += ["--data.init_args.num_workers", str(workers)]
    if threads != "auto":
        overrides += ["--run.threads", str(threads)]
    overrides += ["--run.keep_freed_memory", str(keep).lower(), "--run.flush_denormal", str(flush).lower(),
                  "--model.init_args.channels_last", str(channels_last).lower()]
    timer = StepTimer(args.warmup)
    cli = build_cli(overrides, run=False)
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)

    return {"images_per_s": args.batch / statistics.median(timer.times.seconds),  # median step: robust to bursts
            "workers": cli.datamodule.loader_workers(), "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2, help="runs of each setting (medians are printed)")
    parser.add_argument("--settings", type=int, nargs="+", default=None,
                        help="only these rows of the table (0-based; default all); 0 and 1 give the headline ratio")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        workers, threads = (v if v == "auto" else int(v) for v in args.child[:2])
        keep, flush, channels_last = (flag == "True" for flag in args.child[2:])
        print("RESULT " + json.dumps(one_run(workers, threads, keep, flush, channels_last, args)))
        return
    print(f"dermlab fit, EfficientNet-Lite0 on the shipped sample at {args.size} px, batch {args.batch}, steps "
          f"{args.warmup}–{args.steps} timed; {available_cores()} cores")
    print(f"{'workers':>8} {'threads':>8} {'keep freed':>10} {'flush':>6} {'NHWC':>5} {'images/s':>9} {'wall s':>7} "
          f"{'user s':>7} {'sys s':>6}   (images/s of each run; medians of {args.rounds} runs, in alternating order)")
    rows = sorted(set(args.settings)) if args.settings else list(range(len(SETTINGS)))
    runs: dict[int, list[tuple[float, float, float, float, dict]]] = {index: [] for index in rows}
    for round_index in range(args.rounds):  # every other round in reverse order: no setting always runs first
        for index in (rows if round_index % 2 == 0 else reversed(rows)):
            runs[index].append(child_run(SETTINGS[index], args))
    rates, figures = {}, []
    for index in rows:
        workers, threads, keep, flush, channels_last = SETTINGS[index]
        rate, wall, user, system = (statistics.median(run[k] for run in runs[index]) for k in range(4))
        result = runs[index][0][4]
        label = lambda asked, used: f"{used}" if asked != "auto" else f"auto={used}"  # noqa: E731
        print(f"{label(workers, result['workers']):>8} {label(threads, result['threads']):>8} {str(keep):>10} "
              f"{str(flush):>6} {str(channels_last):>5} {rate:9.1f} {wall:7.1f} {user:7.1f} {system:6.1f}   "
              f"({', '.join(f'{run[0]:.1f}' for run in runs[index])})")
        rates[index] = rate
        setting = (f"EfficientNet-Lite0, {args.size} px, batch {args.batch}: workers "
                   f"{label(workers, result['workers'])}, threads {label(threads, result['threads'])}, keep freed "
                   f"memory {keep}, flush denormals {flush}, channels-last {channels_last}")
        figures += [Figure("dermlab fit", rate, "images/s", setting),
                    Figure("wall time of the run", wall, "s", setting),
                    Figure("user CPU time", user, "s", setting), Figure("sys CPU time", system, "s", setting)]
    if 0 in rates and OLD_DEFAULT in rates:
        print(f"suite default (row 1) / settings before 2026-11-30 (row {OLD_DEFAULT + 1}) = "
              f"{rates[0] / rates[OLD_DEFAULT]:.2f}x")
    if 0 in rates and 2 in rates:
        print(f"channels-last (row 1) / NCHW (row 3) = {rates[0] / rates[2]:.2f}x")
    setting = f"EfficientNet-Lite0, {args.size} px, batch {args.batch}: ratio of row 1 to row "
    if 0 in rates and OLD_DEFAULT in rates:
        figures.append(Figure("suite default / settings before 2026-11-30", rates[0] / rates[OLD_DEFAULT], "ratio",
                              f"{setting}{OLD_DEFAULT + 1}", "images/s, row 1 (auto workers and threads, freed "
                              "memory kept, denormals flushed, channels-last) / row 2 (2 workers, freed memory "
                              "returned, denormals not flushed, NCHW)"))
    if 0 in rates and 2 in rates:
        figures.append(Figure("channels-last / NCHW", rates[0] / rates[2], "ratio", f"{setting}3",
                              "images/s, row 1 / row 3 (the same settings in NCHW)"))
    record("threads_and_workers", figures)


def child_run(setting: tuple, args) -> tuple[float, float, float, float, dict]:
    """(images/s, wall s, user s, sys s, the child's result) of one setting in a fresh process."""
    workers, threads, keep, flush, channels_last = setting
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--child", str(workers), str(threads), str(keep),
                           str(flush), str(channels_last)],
                          capture_output=True, text=True, env={**os.environ, "WANDB_MODE": "disabled"})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        print(done.stdout[-2000:], done.stderr[-4000:])
        raise SystemExit(f"run workers={workers} threads={threads} failed")
    result = json.loads(lines[-1][7:])
    return (result["images_per_s"], wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime,
            result)

if __name__ == "__main__":
    main()
