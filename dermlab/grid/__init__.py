"""Experiment grids: a yaml table description → runs per cell → the paper's table beside ours.

``spec`` reads and checks a grid file and expands its cells, ``runner`` runs them (resumably, one
run folder each), ``launcher`` sends them to a SLURM cluster as submitit jobs (``job_resources``: what each asks
for; ``status``: where each stands), ``report`` turns finished cells into Markdown/CSV with mean ± std, the paper's
values, the difference and one-sided two-sample t-tests.
"""
