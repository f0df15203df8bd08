"""``dermlab/files/listing.py``: the one folder lister: macOS debris and hidden files ignored, other image
types read."""

from __future__ import annotations

import logging

from PIL import Image

from datamodules import VitiligoDataModule
from dermlab.files.listing import list_images

# --- cases 3 and 10: the folder lister ---------------------------------------------------------------------------

def test_macos_debris_is_ignored_and_other_image_types_are_read(copy_of, caplog):
    root = copy_of("vitiligo")
    yes = root / "train" / "Yes"
    first = sorted(yes.iterdir())[0]
    (yes / f"._{first.name}").write_bytes(b"\x00\x05\x16\x07AppleDouble resource fork")  # case 3
    (yes / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "__MACOSX" / "train" / "Yes").mkdir(parents=True)
    (yes / "__MACOSX").mkdir()
    Image.open(first).save(yes / "phone.webp")  # case 10: .webp and an upper-case .JPEG are images too
    Image.open(first).save(yes / "camera.JPEG")
    (yes / "iphone.heic").write_bytes(b"not decodable by PIL")  # skipped, but said in a warning
    with caplog.at_level(logging.INFO, logger="dermlab.files.listing"):
        data = VitiligoDataModule(str(root), image_size=32, num_workers=0)
        train = data.table("train")
    ids = [i for i in train.ids if i.startswith("Yes/")]
    assert "Yes/phone" in ids and "Yes/camera" in ids
    assert not any(i.startswith("Yes/.") or "MACOSX" in i for i in train.ids)
    for index in range(len(train)):  # every listed file decodes: no AppleDouble file fails mid-epoch
        assert data.dataset("train")[index]["image"].shape == (3, 32, 32)
    lines = [r for r in caplog.records if str(yes) in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    assert "2 hidden file(s)" in lines[0].getMessage() and "__MACOSX" in lines[0].getMessage()
    assert ".heic ×1" in lines[0].getMessage()


def test_lister_ignores_hidden_files_in_every_reader(tmp_path):
    for name in ("ISIC_0000001.jpg", "ISIC_0000002.JPG", "ISIC_0000003.Png", "._ISIC_0000001.jpg", ".hidden.png",
                 "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_images(tmp_path)] == ["ISIC_0000001.jpg", "ISIC_0000002.JPG", "ISIC_0000003.Png"]
