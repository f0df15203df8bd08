"""The project's licence and the shipped sample's, declared once and consistently."""

from __future__ import annotations


def test_the_project_licence_is_declared_once_and_consistently():
    import tomllib

    from tests.conftest import REPO

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"]
    assert declared == {"text": "MIT"} and (REPO / "LICENSE").read_text().startswith("MIT License")
    assert "## Licences" in (REPO / "README.md").read_text()
    assert "CC0" in (REPO / "docs" / "datasets" / "isic-sample.md").read_text()
