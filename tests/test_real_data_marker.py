"""The ``real_data`` mark: exactly the tests that read the real sample files of ../shared/data (``SHARED_DATA``)
carry it, so that ``pytest -m real_data`` runs them all and nothing else. tests/helpers/real_data.py finds them by
reading the tests; tests/conftest.py fails collection when a test's mark disagrees, and this file checks the finder
on a hand-made tree and the mark on every test of the suite."""

from __future__ import annotations

import ast
import textwrap

from tests.conftest import REPO
from tests.helpers.real_data import reads_real_data

FILES = {
    "conftest.py": """
        from pathlib import Path

        import pytest

        REPO = Path("/somewhere")
        SHARED_DATA = REPO.parent / "shared" / "data"
        HAM_METADATA = SHARED_DATA / "ham10000" / "HAM10000_metadata.csv"


        @pytest.fixture
        def ham_root():
            return HAM_METADATA.parent


        @pytest.fixture
        def synthetic():
            return REPO
    """,
    "helpers/truths.py": """
        from tests.conftest import SHARED_DATA

        TRUTH = SHARED_DATA / "isic2018" / "truth.csv"
        IDS = ["ISIC_0000000"]
    """,
    "pkg/conftest.py": """
        import pytest


        @pytest.fixture
        def real_folder(ham_root):
            return ham_root
    """,
    "pkg/test_ways.py": """
        import pytest

        from tests.conftest import REPO, SHARED_DATA
        from tests.helpers.truths import IDS, TRUTH as REAL_TRUTH

        FOLDER = SHARED_DATA / "isic2017"
        needs_folder = pytest.mark.skipif(not FOLDER.is_dir(), reason="absent")


        def read():
            return FOLDER / "a.csv"


        @pytest.fixture
        def local(real_folder):
            return real_folder


        def test_direct():
            assert SHARED_DATA


        def test_module_constant():
            assert FOLDER


        def test_helper_function():
            assert read()


        @needs_folder
        def test_skipif_mark():
            pass


        @pytest.mark.parametrize("path", [REAL_TRUTH])
        def test_imported_name_in_a_parameter(path):
            assert path


        def test_conftest_fixture(ham_root):
            assert ham_root


        def test_fixture_of_the_folders_conftest(real_folder):
            assert real_folder


        def test_fixture_of_its_module(local):
            assert local


        def test_synthetic_only(synthetic, tmp_path):
            assert REPO and IDS and synthetic


        def test_a_local_name_like_none_of_them():
            folder = "shared/data"
            assert folder
    """,
    "pkg/test_module_mark.py": """
        import pytest

        from tests.conftest import HAM_METADATA

        pytestmark = pytest.mark.skipif(not HAM_METADATA.is_file(), reason="absent")


        def test_anything():
            pass
    """,
}


def test_the_finder_sees_each_way_a_test_reaches_the_real_data(tmp_path):
    root = tmp_path / "tests"
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    ways = ast.parse((root / "pkg" / "test_ways.py").read_text()).body
    tests = [node.name for node in ways if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")]
    found = {name for name in tests if reads_real_data(root / "pkg" / "test_ways.py", name, root)}
    assert found == set(tests) - {"test_synthetic_only", "test_a_local_name_like_none_of_them"}
    assert reads_real_data(root / "pkg" / "test_module_mark.py", "test_anything", root)


def marked(node: ast.FunctionDef, module: ast.Module) -> bool:
    """Whether the test carries ``@pytest.mark.real_data``, itself or through its module's ``pytestmark``."""
    module_marks = [ast.unparse(n.value) for n in module.body if isinstance(n, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in n.targets)]
    return ("pytest.mark.real_data" in [ast.unparse(d) for d in node.decorator_list]
            or any("pytest.mark.real_data" in mark for mark in module_marks))


def test_exactly_the_tests_that_read_the_real_data_carry_the_mark():
    tests_root = REPO / "tests"
    reading, marking = set(), set()
    for path in sorted(tests_root.rglob("test_*.py")):
        module = ast.parse(path.read_text())
        for node in module.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                name = f"{path.relative_to(REPO)}::{node.name}"
                if reads_real_data(path, node.name, tests_root):
                    reading.add(name)
                if marked(node, module):
                    marking.add(name)
    assert len(reading) > 30  # the finder finds them (41 when this was written)
    assert not reading - marking, f"reading ../shared/data without the mark: {sorted(reading - marking)}"
    assert not marking - reading, f"marked real_data, reading nothing of ../shared/data: {sorted(marking - reading)}"
