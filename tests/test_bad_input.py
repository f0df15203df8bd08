"""Each kind of bad input stops with one clear message naming the file or column (no traceback)."""

from __future__ import annotations

import pytest

from datamodules import ISIC2017DataModule
from dermlab.cli import main
from dermlab.errors import DataError
from tests.conftest import tiny_args

TRAIN_CSV = "ISIC-2017_Training_Part3_GroundTruth.csv"


def rewrite_csv(root, edit):
    path = root / TRAIN_CSV
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")
    return lines


def first_image(root, folder="Training"):
    return sorted((root / f"ISIC-2017_{folder}_Data").glob("ISIC_???????.jpg"))[0]


def table_error(root) -> str:
    with pytest.raises(DataError) as caught:
        ISIC2017DataModule(str(root), num_workers=0).setup("fit")
    return str(caught.value)


def test_root_that_does_not_exist(tmp_path):
    message = table_error(tmp_path / "nowhere")
    assert "nowhere" in message and "does not exist" in message and "dermlab synth" in message


def test_image_listed_but_absent(broken_root):
    image = first_image(broken_root)
    image.unlink()
    message = table_error(broken_root)
    assert image.name in message and TRAIN_CSV in message and "missing" in message


def test_empty_image_folder(broken_root):
    for path in (broken_root / "ISIC-2017_Training_Data").iterdir():
        path.unlink()
    message = table_error(broken_root)
    assert "ISIC-2017_Training_Data" in message and "no images (.jpg/" in message


def test_csv_without_expected_column(broken_root):
    rewrite_csv(broken_root, lambda lines: [lines[0].replace("melanoma", "mel")] + lines[1:])
    message = table_error(broken_root)
    assert TRAIN_CSV in message and "lacks column(s) melanoma" in message


def test_label_outside_zero_one(broken_root):
    lines = rewrite_csv(broken_root, lambda lines: [lines[0], lines[1].replace(",0.0,", ",2.0,", 1)
                                                    .replace(",1.0,", ",2.0,", 1), *lines[2:]])
    message = table_error(broken_root)
    assert "'melanoma'" in message and "'2.0'" in message and lines[1].split(",")[0] in message


def test_same_image_twice(broken_root):
    lines = rewrite_csv(broken_root, lambda lines: [*lines, lines[1]])
    message = table_error(broken_root)
    assert lines[1].split(",")[0] in message and "more than once" in message


def test_truncated_jpeg_names_the_file(broken_root):
    image = first_image(broken_root)
    image.write_bytes(image.read_bytes()[:200])
    data = ISIC2017DataModule(str(broken_root), num_workers=0)
    data.setup("fit")
    index = data.table("train").ids.index(image.stem)
    with pytest.raises(DataError, match=f"cannot decode image '.*{image.name}'.*corrupt or truncated"):
        data.dataset("train")[index]


def test_cli_prints_one_line_not_a_traceback(broken_root, tmp_path, capsys):
    broken = first_image(broken_root, "Validation")  # fast_dev_run validates one batch: all 8 images
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *tiny_args(broken_root, tmp_path / "run", "--trainer.fast_dev_run", "true",
                                "--data.init_args.num_workers", "1")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    error = [line for line in err.strip().splitlines() if not line.startswith(("INFO: ", "WARNING: "))]  # log lines
    assert len(error) == 1 and error[0].startswith("dermlab: error: cannot decode image")
    assert broken.name in error[0] and "Traceback" not in err
