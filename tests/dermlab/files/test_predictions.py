"""The per-image predictions file (dermlab.files.predictions): written, read back and refused when wrong."""

from __future__ import annotations

import pytest
import torch

from dermlab.errors import DataError
from dermlab.files.predictions import Predictions, read_predictions, write_predictions
from tests.helpers.predictions import IMAGES, P_A, TARGET, binary


def test_write_then_read_round_trips_the_float32_values(tmp_path):
    probabilities = torch.tensor([[0.123456789, 0.876543211], [1e-9, 1.0], [0.5, 0.5]]).numpy()
    path = write_predictions(tmp_path / "p.csv", ["ISIC_1", "ISIC_2", "ISIC_3"], [0, 1, 1], probabilities,
                             ["benign", "melanoma"], [True, True, False])
    assert path.read_text().splitlines()[0] == "image,target,benign,melanoma,scored"
    frame = read_predictions(path, ["benign", "melanoma"])
    assert frame.image.tolist() == ["ISIC_1", "ISIC_2", "ISIC_3"] and frame.scored.tolist() == [1, 1, 0]
    assert (frame[["benign", "melanoma"]].to_numpy().astype("float32") == probabilities).all()  # exact


def test_reader_names_the_bad_row(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("image,target,a,b,scored\nx,0,0.4,0.6,1\ny,2,0.5,0.5,1\n")
    with pytest.raises(DataError, match=r"row 3 \(image y\): target 2"):
        read_predictions(path)
    path.write_text("image,target,a,b,scored\nx,0,0.4,1.6,1\n")
    with pytest.raises(DataError, match=r"row 2 \(image x\): probabilities"):
        read_predictions(path)
    path.write_text("image,target,a,b,scored\nx,0,0.4,0.6,1\n")
    with pytest.raises(DataError, match="expected"):
        read_predictions(path, ["a", "c"])
    with pytest.raises(DataError, match="no predictions file"):
        read_predictions(tmp_path / "missing.csv")


def test_writer_refuses_clashing_names_and_repeats(tmp_path):
    with pytest.raises(ValueError, match="clash"):
        write_predictions(tmp_path / "p.csv", ["a"], [0], [[0.5, 0.5]], ["target", "b"], [True])
    with pytest.raises(ValueError, match="repeated image"):
        write_predictions(tmp_path / "p.csv", ["a", "a"], [0, 0], [[0.5, 0.5]] * 2, ["x", "y"], [True] * 2)


def test_prediction_files_round_trip_through_the_shared_format(tmp_path):
    path = write_predictions(tmp_path / "p.csv", IMAGES, TARGET, binary(P_A), ("benign", "melanoma"),
                             scored=[1, 1, 1, 1, 1, 0])
    back = Predictions.read(path)
    assert back.class_names == ("benign", "melanoma") and list(back.images) == IMAGES
    assert back.probabilities[:, 1] == pytest.approx(P_A) and len(back.kept()) == 5
    assert list(back.predicted()) == [0, 0, 0, 1, 0, 1]  # P(melanoma) > 0.5
    text = path.read_text().splitlines()
    assert text[0] == "image,target,benign,melanoma,scored" and text[1] == "im1,0,0.899999976,0.100000001,1"
    (tmp_path / "bad.csv").write_text("\n".join([text[0], text[1].replace("im1,0,", "im1,2,"), *text[2:]]) + "\n")
    with pytest.raises(DataError, match="row 2 \\(image im1\\): target 2 is not in \\[0, 1\\]"):
        Predictions.read(tmp_path / "bad.csv")
    shuffled = Predictions.read(path).aligned_to(IMAGES[::-1])
    assert list(shuffled.images) == IMAGES[::-1] and shuffled.probabilities[0, 1] == pytest.approx(0.9)
