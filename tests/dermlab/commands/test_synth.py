"""``dermlab synth`` (``dermlab/commands/synth.py``): the sizes and seeds it refuses and what its help says."""

from __future__ import annotations

import logging

import pytest

from datamodules.synthetic import SIZES
from dermlab.commands.synth import main as synth
from tests.helpers.synthetic import SIDE


@pytest.fixture(autouse=True)
def quiet(caplog):
    caplog.set_level(logging.ERROR)


@pytest.mark.parametrize("name", sorted(n for n, s in SIZES.items() if s.minimum > 1))
def test_synth_refuses_an_n_below_the_smallest_naming_it(name, tmp_path, capsys):
    minimum = SIZES[name].minimum
    with pytest.raises(SystemExit) as leaving:
        synth(["--dataset", name, "--out", str(tmp_path / "twin"), "--n", str(minimum - 1), "--size", str(SIDE)])
    assert leaving.value.code == 2
    err = capsys.readouterr().err
    assert f"--n {minimum - 1} is too small for {name}" in err and f"use --n {minimum} or more" in err
    assert not (tmp_path / "twin").exists()


def test_synth_refuses_a_negative_seed_and_a_tiny_size(tmp_path, capsys):
    for args, said in ((["--seed", "-1"], "--seed -1 is negative"), (["--size", "4"], "--size 4 is too small")):
        with pytest.raises(SystemExit) as leaving:
            synth(["--dataset", "isic2017", "--out", str(tmp_path / "twin"), "--n", "8", *args])
        assert leaving.value.code == 2 and said in capsys.readouterr().err


def test_synth_help_says_what_n_counts_for_each_data_set(capsys):
    with pytest.raises(SystemExit):
        synth(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name, size in SIZES.items():
        assert f"{name} {' '.join(size.counts.split())}; --n {size.minimum} or more" in text
    assert "derm7pt all images" in text and "isic2017 training images" in text
