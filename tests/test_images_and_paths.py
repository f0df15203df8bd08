"""Images and paths as people have them: every image kind read as RGB (or refused naming the file) on every read
path — the datamodule's batch, the preprocessing cache, ``dermlab prepare``, masks, the split audit's fingerprints —
and data folders named with a space and ``é`` (or not even UTF-8) in datamodules, the cache, ``dermlab audit``,
grids, SLURM scripts and make targets."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from datamodules import ISIC2017DataModule, ISIC2018SegmentationDataModule
from datamodules.fingerprints import FingerprintStore, exact_fingerprint, perceptual_fingerprint
from dermlab.cli import main
from dermlab.errors import DataError
from dermlab.files.io import image_size, load_rgb
from dermlab.grid import command, runner, spec
from dermlab.grid.launcher import Launcher
from tests.conftest import REPO
from tests.test_grid import write_grid
from tests.test_grid_launcher import fake_slurm  # noqa: F401  (the fixture)

SPACED = "My Data é"


def gradient(height: int = 24, width: int = 32) -> np.ndarray:
    """(H, W, 3) uint8 test pixels with distinct channels."""
    g = np.linspace(0, 1, height * width).reshape(height, width)
    return (np.stack([g, g[::-1], 0.5 * g], axis=2) * 255).astype(np.uint8)


def first_val_image(root: Path) -> Path:
    return sorted((root / "ISIC-2017_Validation_Data").glob("ISIC_???????.jpg"))[0]


def replace_image(victim: Path, suffix: str, write) -> Path:
    """``victim`` replaced by a file of the same id with ``suffix`` that ``write(path)`` writes."""
    victim.unlink()
    path = victim.with_suffix(suffix)
    write(path)
    return path


def data(root: Path, **kwargs) -> ISIC2017DataModule:
    return ISIC2017DataModule(str(root), image_size=32, batch_size=8, num_workers=0, **kwargs)


def gray(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).convert("L"))


# kind -> (suffix, writer of the file given the pixels, the RGB pixels the suite must read from it)
KINDS = {
    "grayscale JPEG": (".jpg", lambda p, a: Image.fromarray(gray(a)).save(p, quality=95),
                       lambda p, a: np.repeat(np.asarray(Image.open(p))[..., None], 3, axis=2)),
    "CMYK JPEG": (".jpg", lambda p, a: Image.fromarray(a).convert("CMYK").save(p, quality=95),
                  lambda p, a: np.asarray(Image.open(p).convert("RGB"))),
    "palette PNG": (".png", lambda p, a: Image.fromarray(a).convert("P").save(p),
                    lambda p, a: np.asarray(Image.open(p).convert("RGB"))),
    "grayscale + alpha PNG": (".png", lambda p, a: Image.fromarray(gray(a)).convert("LA").save(p),
                              lambda p, a: np.repeat(gray(a)[..., None], 3, axis=2)),
    "16-bit grayscale PNG": (".png", lambda p, a: Image.fromarray(gray(a).astype(np.uint16) * 257).save(p),
                             lambda p, a: np.repeat(gray(a)[..., None], 3, axis=2)),
    "PNG bytes under a .jpg name": (".jpg", lambda p, a: Image.fromarray(a).save(p, format="PNG"),
                                    lambda p, a: a),
}


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("cached", [False, True], ids=["original", "cache"])
def test_every_image_kind_reads_as_rgb_in_a_batch_and_the_cache(broken_root, tmp_path, kind, cached):
    suffix, write, expected_of = KINDS[kind]
    pixels = gradient()
    path = replace_image(first_val_image(broken_root), suffix, lambda p: write(p, pixels))
    expected = expected_of(path, pixels)
    module = data(broken_root, **({"cache_dir": str(tmp_path / "cache"), "max_side": 32} if cached else {}))
    module.setup("fit")
    dataset = module.dataset("val")
    index = module.table("val").ids.index(path.stem)
    image, _ = dataset._read(index)  # what the transforms get: the file's pixels, or the cached copy (32 px: the same)
    assert image.dtype == np.uint8 and image.shape == (24, 32, 3)
    assert np.array_equal(image, expected)
    batch = next(iter(module.val_dataloader()))
    assert batch["image"].shape == (8, 3, 32, 32) and path.stem in batch["image_id"]
    assert bool(batch["image"].isfinite().all())


def test_prepare_caches_every_kind_and_refuses_an_empty_file_naming_it(broken_root, tmp_path, capsys):
    images = sorted((broken_root / "ISIC-2017_Training_Data").glob("ISIC_???????.jpg"))
    for victim, (suffix, write, _) in zip(images, KINDS.values(), strict=False):
        replace_image(victim, suffix, lambda p, w=write: w(p, gradient()))
    cache = tmp_path / "cache ü"
    main(["prepare", "--dataset", "isic2017", "--root", str(broken_root), "--max-side", "16",
          "--cache-dir", str(cache)])
    assert json.loads(capsys.readouterr().out)["images"] == {"train": 24, "val": 8, "test": 12}
    empty = first_val_image(broken_root)
    empty.write_bytes(b"")
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "--dataset", "isic2017", "--root", str(broken_root), "--max-side", "16",
              "--cache-dir", str(cache)])
    error = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("INFO: ")]
    assert exit_info.value.code == 2 and len(error) == 1
    truth = broken_root / "ISIC-2017_Validation_Part3_GroundTruth.csv"
    assert error[0] == (f"dermlab: error: 1 image(s) listed in '{truth}'"
                        f" are empty (0 bytes), e.g. '{empty}', as after a download or copy that stopped before "
                        "writing them; re-download them, remove those rows, or set on_bad_image: skip.")


BAD = {  # kind -> (suffix, writer, what the message says)
    "zero-byte file": (".jpg", lambda p: p.write_bytes(b""), r"is empty \(0 bytes\), as after a download or copy"),
    "web page under a .jpg name": (".jpg", lambda p: p.write_bytes(b"\n<!DOCTYPE html><html>Access denied</html>"),
                                   r"holds text, not an image \(it begins '<!DOCTYPE html><html>Acc'\): a web page"),
    "32-bit float TIFF": (".tif", lambda p: Image.fromarray(np.full((24, 32), 0.5, np.float32)).save(p),
                          r"holds 32-bit floating-point pixels \(PIL mode F\), which have no agreed 8-bit scale"),
    "32-bit integers above 16 bits": (".tif", lambda p: Image.fromarray(np.full((24, 32), 70000, np.int32)).save(p),
                                      r"holds 32-bit values from 70000 to 70000, outside the 16-bit range"),
}


@pytest.mark.parametrize("kind", list(BAD))
@pytest.mark.parametrize("cached", [False, True], ids=["original", "cache"])
def test_an_image_that_is_not_fine_stops_the_batch_naming_the_file(broken_root, tmp_path, kind, cached):
    suffix, write, said = BAD[kind]
    path = replace_image(first_val_image(broken_root), suffix, write)
    module = data(broken_root, **({"cache_dir": str(tmp_path / "cache"), "max_side": 32} if cached else {}))
    if kind == "zero-byte file":  # found at set-up, by the stat that finds absent images
        with pytest.raises(DataError, match=rf"are empty \(0 bytes\), e.g. '{path}'"):
            module.setup("fit")
        with pytest.raises(DataError, match=f"image '{path}' {said}"):  # and by the reader, were it reached
            load_rgb(path)
    else:
        module.setup("fit")
        with pytest.raises(DataError, match=f"image '{path}' {said}"):
            next(iter(module.val_dataloader()))
    with pytest.raises(DataError, match=f"'{path}'"):  # the split audit's fingerprints say it the same way
        perceptual_fingerprint(path)
    skipped = data(broken_root, on_bad_image="skip")
    skipped.setup("fit")
    assert path.stem not in skipped.table("val").ids and len(skipped.table("val")) == 7


def test_the_image_size_of_an_unreadable_file_names_it(tmp_path):
    empty, page = tmp_path / "empty.jpg", tmp_path / "page.jpg"
    empty.write_bytes(b"")
    page.write_bytes(b"<html></html>")
    with pytest.raises(DataError, match=f"image '{empty}' is empty"):
        image_size(empty)
    with pytest.raises(DataError, match=f"image '{page}' holds text"):
        image_size(page)


@pytest.mark.parametrize("cached", [False, True], ids=["original", "cache"])
def test_an_empty_mask_is_named(copy_of, tmp_path, cached):
    root = copy_of("isic2018_task1")
    mask = sorted((root / "ISIC2018_Task1_Validation_GroundTruth").glob("*.png"))[0]
    mask.write_bytes(b"")
    module = ISIC2018SegmentationDataModule(str(root), num_workers=0, eval_transforms=[],
                                            **({"cache_dir": str(tmp_path / "c"), "max_side": 16} if cached else {}))
    index = module.table("val").ids.index(mask.name.removesuffix("_segmentation.png"))
    with pytest.raises(DataError, match=f"mask '{mask}' is empty \\(0 bytes\\).*; re-download it"):
        module.dataset("val")[index]


def test_a_16_bit_copy_has_the_fingerprints_of_its_8_bit_original(tmp_path):
    """The audit hashes the pixels the suite trains on: a 16-bit copy of an image is its exact and near duplicate."""
    values = gray(gradient(48, 64))
    eight, sixteen = tmp_path / "eight.png", tmp_path / "sixteen.png"
    Image.fromarray(values).save(eight)
    Image.fromarray(values.astype(np.uint16) * 257).save(sixteen)
    assert np.array_equal(load_rgb(sixteen), load_rgb(eight))
    assert exact_fingerprint(sixteen) == exact_fingerprint(eight)
    assert perceptual_fingerprint(sixteen) == perceptual_fingerprint(eight)
    store = FingerprintStore(tmp_path / "cache", workers=1)
    first, second = store.get([eight, sixteen], kind="phash")
    assert first == second is not None


# --- paths -------------------------------------------------------------------------------------------------------


@pytest.fixture
def spaced_root(isic2017_root, tmp_path) -> Path:
    """The tiny ISIC 2017 set in ``<tmp>/My Data é/isic2017`` (a data root named with a space and ``é``)."""
    root = tmp_path / SPACED / "isic2017"
    shutil.copytree(isic2017_root, root)
    return root


def test_datamodule_cache_and_audit_on_a_folder_named_with_a_space_and_e(spaced_root, tmp_path, capsys):
    module = data(spaced_root, cache_dir=str(tmp_path / "cache é x"), max_side=32)
    module.setup("fit")
    assert next(iter(module.val_dataloader()))["image"].shape == (8, 3, 32, 32)
    assert module.split_audit is not None and not module.split_audit.leak
    main(["audit", "-c", str(REPO / "experiments" / "demo_synthetic.yaml"), "--data.init_args.root", str(spaced_root),
          "--data.init_args.cache_dir", str(tmp_path / "cache é x"), "--near-duplicates"])
    report = json.loads(capsys.readouterr().out)
    assert report["root"] == str(spaced_root) and report["leak"] is False


@pytest.mark.skipif(sys.platform != "linux", reason="only Linux keeps file names that are not UTF-8")
def test_a_folder_whose_name_is_not_utf8_is_cached_and_audited(isic2017_root, tmp_path):
    """A folder unpacked from an archive made on a Latin-1 system: 'Donn\\xe9es' (bytes, not UTF-8)."""
    parent = tmp_path / os.fsdecode(b"Donn\xe9es")
    try:
        shutil.copytree(isic2017_root, parent / "isic2017")
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    module = data(parent / "isic2017", cache_dir=str(tmp_path / "cache"), max_side=32, near_duplicates=True)
    module.setup("fit")  # the split audit fingerprints every image, keyed by its path
    assert not module.split_audit.leak
    assert next(iter(module.val_dataloader()))["image"].shape == (8, 3, 32, 32)


@pytest.mark.slow  # a whole grid cell trains (~40 s on two CPU cores)
def test_grid_smoke_run_on_a_data_root_named_with_a_space_and_e(spaced_root, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    grid_file = write_grid(tmp_path / "g.yaml")
    runs = tmp_path / "runs ü"
    command.main(["run", str(grid_file), "--data-root", str(spaced_root.parent), "--smoke", "--first", "1",
                  "--runs", str(runs)])
    cells = sorted((runs / "grids-smoke" / "demo" / "tiny").glob("*/result.json"))
    assert len(cells) == 1, list(runs.rglob("*.log"))
    config = yaml.safe_load(next(cells[0].parent.glob("csv/version_*/config.yaml")).read_text())
    assert config["data"]["init_args"]["root"] == str(spaced_root)  # (a long path with spaces is folded in the yaml)


def test_slurm_scripts_quote_the_run_folder_and_jobs_keep_the_data_root(spaced_root, tmp_path, fake_slurm,  # noqa: F811
                                                                        monkeypatch):
    monkeypatch.setattr(runner, "validate", lambda *a, **k: None)  # the cells' arguments are the point here
    grid = spec.load(write_grid(tmp_path / "g.yaml", axes={"model.init_args.backbone": ["test_resnet"]}))
    runs = tmp_path / "runs é x"
    assert Launcher("slurm").run(grid, str(spaced_root.parent), runs=runs) == {"backbone=test_resnet": "submitted"}
    folder = grid.run_root(runs, False) / "backbone=test_resnet" / "submitit"
    script = (folder / "1001_submission.sh").read_text().splitlines()
    output = next(line for line in script if line.startswith("#SBATCH --output="))
    assert shlex.split(output.split("=", 1)[1]) == [f"{folder.absolute()}/%j_0_log.out"]
    srun = shlex.split(next(line for line in script if line.startswith("srun ")))
    assert srun[-1] == str(folder.absolute()) or Path(srun[-1]) == folder
    assert srun[srun.index("--output") + 1] == f"{folder.absolute()}/%j_%t_log.out"
    from submitit.core.utils import DelayedSubmission

    job = DelayedSubmission.load(folder / "1001_submitted.pkl").function
    assert job.args[job.args.index("--data.init_args.root") + 1] == str(spaced_root)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("target", ["arl-smoke", "cross_dataset", "dds-smoke", "isic2018-seg-smoke", "synth",
                                    "demo-synthetic"])
def test_make_targets_pass_a_data_root_with_spaces_and_quotes_as_one_word(target, tmp_path):
    data_root = tmp_path / f"{SPACED} o'clock"
    printed = subprocess.run(["make", "-n", "-s", target, f"DATA_ROOT={data_root}", "FIRST=1"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout
    words = [shlex.split(line) for line in printed.splitlines() if "--data-root" in line or "--out" in line]
    assert words, printed
    for line in words:
        flag = next(f for f in ("--data-root", "--out") if f in line)
        assert line[line.index(flag) + 1] in (str(data_root), str(data_root / "isic2017")), line


def test_an_empty_image_stops_set_up_naming_it_and_skip_leaves_it_out(copy_of):
    """A zero-byte file (a download that stopped) is found at set-up by the same stat that finds absent images,
    not when its batch loads mid-epoch."""
    root = copy_of("isic2017")
    victim = sorted((root / "ISIC-2017_Training_Data").glob("*.jpg"))[3]
    victim.write_bytes(b"")
    data = ISIC2017DataModule(str(root), image_size=32, num_workers=0)
    with pytest.raises(DataError, match=rf"1 image\(s\) listed in '.*ISIC-2017_Training_Part3_GroundTruth.csv' are "
                                        rf"empty \(0 bytes\), e.g. '.*{victim.name}'.*on_bad_image: skip"):
        data.setup("fit")
    skipping = ISIC2017DataModule(str(root), image_size=32, num_workers=0, on_bad_image="skip")
    skipping.setup("fit")
    assert victim.stem not in skipping.table("train").ids
