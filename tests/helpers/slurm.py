"""Fake SLURM commands (the ``fake_slurm`` fixture of tests/dermlab/grid/conftest.py puts them on PATH) and the
job states they report."""

from __future__ import annotations

from pathlib import Path

FAKES = {  # SLURM's commands as this test needs them; each keeps what it was given in its folder
    "sbatch": 'n=$(cat "$here/next_id" 2>/dev/null || echo 1001); echo $((n + 1)) > "$here/next_id"\n'
              'cp "$1" "$here/sbatch_$n.sh"; echo "Submitted batch job $n"',
    "srun": "exit 0",
    "sacct": 'echo "JobID|State|NodeList"; cat "$here/states" 2>/dev/null; true',
    "scancel": 'echo "$@" >> "$here/scancel_calls"',
}


def states(fake_slurm: Path, **jobs: str) -> None:
    (fake_slurm / "states").write_text("".join(f"{job.lstrip('j')}|{state}|node1\n" for job, state in jobs.items()))
