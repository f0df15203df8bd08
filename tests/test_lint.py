"""The repository passes ruff as configured in pyproject.toml: on the package (datamodules, lightning_modules,
callbacks, dermlab) that includes the docstring (D) and annotation (ANN) rules, so every public class and function
stays typed and documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

RUFF = Path(sys.executable).with_name("ruff")


def ruff(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([str(RUFF), "check", "--no-cache", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_the_repository_passes_ruff_with_the_interface_rules_on_the_package():
    result = ruff(".")
    assert result.returncode == 0, result.stdout[-3000:]


def test_the_interface_rules_apply_to_the_package_and_not_to_tests(tmp_path):
    """An untyped, undocumented public function is refused in a package module and let through in a test module."""
    probe = "def scale(values, factor):\n    return [v * factor for v in values]\n"
    (tmp_path / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    for folder in ("dermlab", "tests"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "probe.py").write_text(probe)
    result = ruff("--output-format", "concise", ".", cwd=tmp_path)
    found = {line.split(":")[0] for line in result.stdout.splitlines() if ".py:" in line}
    codes = {line.split()[1] for line in result.stdout.splitlines() if ".py:" in line}
    assert found == {str(Path("dermlab") / "probe.py")}, result.stdout
    assert {"D103", "ANN001", "ANN201"} <= codes, result.stdout
