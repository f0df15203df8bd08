"""Hyper-parameter studies (``dermlab tune``): a search file over any config key → Optuna trials, each a
``dermlab fit`` run scored on the validation split → the best config as ``best.yaml``, a trials table and plots.

``search`` reads and checks a search file, ``study`` keeps a study's folder (Optuna's journal storage, interrupted
trials), ``trial`` runs one trial in its own process, ``launch`` starts trials here or as submitit jobs,
``results`` writes what a study leaves, ``command`` is the command line.
"""
