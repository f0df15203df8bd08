"""``dermlab postprocess`` (``dermlab/commands/postprocess.py``): written masks refined."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dermlab.errors import DataError
from tests.helpers.segmentation import lesion_picture


def test_postprocess_command_refines_written_masks(tmp_path):
    from dermlab.commands.postprocess import main

    image, disc = lesion_picture()
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(image).save(tmp_path / "images" / "ISIC_0000001.jpg", quality=95)
    specked = disc.copy()
    specked[3:5, 3:5] = True
    Image.fromarray(specked.astype(np.uint8) * 255).save(tmp_path / "masks" / "ISIC_0000001_segmentation.png")
    main(["--images", str(tmp_path / "images"), "--masks", str(tmp_path / "masks"), "--out", str(tmp_path / "out")])
    refined = np.asarray(Image.open(tmp_path / "out" / "ISIC_0000001_segmentation.png")) > 128
    assert np.array_equal(refined, disc)
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "masks" / "ISIC_0000001_segmentation.png")
    with pytest.raises(DataError, match="5×5 pixels"):
        main(["--images", str(tmp_path / "images"), "--masks", str(tmp_path / "masks"), "--out", str(tmp_path / "o")])
