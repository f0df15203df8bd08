"""``dermlab lerf`` (``dermlab/commands/lerf.py``): the LERF table and maps, and the cache the layer selection reads."""

from __future__ import annotations

import json

import pytest


def test_lerf_command_writes_json_maps_and_the_cache_the_callback_reads(tmp_path, monkeypatch, capsys):
    from callbacks import layer_selection
    from dermlab.commands.lerf import main as lerf_command

    named = lerf_command(["--backbone", "resnet18", "--size", "32", "--inits", "2", "--out", str(tmp_path)])
    printed = json.loads(capsys.readouterr().out.splitlines()[0])
    assert printed == named and list(named)[0] == "conv1" and named["conv1"] <= 7 + 1e-9  # 7×7 conv
    assert (tmp_path / "lerf_resnet18_32.png").is_file()
    monkeypatch.setattr("lightning_modules.nets.lerf_table.lerf",
                        lambda *a, **k: pytest.fail("recomputed instead of cached"))
    cached = layer_selection.lerf_table("resnet18", 32, 2, 0, tmp_path)
    assert {k: round(v, 2) for k, v in cached.items()} == named
