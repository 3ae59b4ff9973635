"""16-bit and float images (issue 25, item 6): every image reader (`folder:` data sets, image
folders, the metrics' folder reader) scales them by the one rule of flexae.data.pixels, or refuses
them with one line, instead of clipping them to 255 / to 0 and 1 without a word."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from flexae.cli import main
from flexae.data.images import load_image_folder
from flexae.data.user import load_user_data
from flexae.errors import UserError
from flexae.metrics.io import read_image_folder

SIDE, COUNT = 16, 10


def _levels(i: int) -> np.ndarray:
    """8-bit grey levels (SIDE, SIDE) of image i, all 256 values over the images."""
    return ((np.arange(SIDE * SIDE).reshape(SIDE, SIDE) + 37 * i) % 256).astype(np.uint8)


def _write(folder: Path, kind: str) -> None:
    folder.mkdir()
    for i in range(COUNT):
        v = _levels(i).astype(np.float64)
        if kind == "16-bit":  # v * 257 + a low byte that the rule drops: 65535 for 255
            image = Image.fromarray((v * 257).astype(np.uint16))
            assert image.mode == "I;16"
            image.save(folder / f"{i:03d}.png")
        elif kind == "float":  # v / 255 in [0, 1]
            image = Image.fromarray((v / 255).astype(np.float32))
            assert image.mode == "F"
            image.save(folder / f"{i:03d}.tiff")


def _readers(folder: Path) -> dict[str, torch.Tensor]:
    """uint8 (N, SIDE, SIDE) of the three readers, in file order."""
    train, test = load_user_data(f"folder:{folder}", seed=0)
    merged = torch.cat([train, test])[:, 0]  # held-out split: a permutation of the files
    return {"user": merged, "folder": load_image_folder(folder, size=SIDE).images[:, 0],
            "metrics": (read_image_folder(folder)[:, 0] * 255).round().to(torch.uint8)}


@pytest.mark.parametrize("kind", ["16-bit", "float"])
def test_deep_images_are_scaled_to_8_bits_by_every_reader(tmp_path, kind):
    _write(tmp_path / "imgs", kind)
    expected = torch.from_numpy(np.stack([_levels(i) for i in range(COUNT)]))
    for name, images in _readers(tmp_path / "imgs").items():
        if name == "user":  # train + test are the files in another order: compare as sets of images
            key = lambda t: sorted(x.flatten().tolist() for x in t)  # noqa: E731
            assert key(images) == key(expected), name
        else:
            assert torch.equal(images, expected), name


@pytest.mark.parametrize("values, message", [
    (np.full((SIDE, SIDE), 200.0, np.float32), r"float image with values outside \[0, 1\] \(min 200"),
    (np.full((SIDE, SIDE), -0.5, np.float32), r"outside \[0, 1\]"),
    (np.full((SIDE, SIDE), np.nan, np.float32), "NaN or infinity"),
    (np.full((SIDE, SIDE), 70000, np.int32), "32-bit integer image"),
])
def test_out_of_range_deep_images_are_refused_by_every_reader(tmp_path, capsys, values, message):
    folder = tmp_path / "imgs"
    _write(folder, "float")
    Image.fromarray(values).save(folder / "bad.tiff")
    for read in (lambda: load_user_data(f"folder:{folder}"), lambda: load_image_folder(folder, size=SIDE),
                 lambda: read_image_folder(folder)):
        with pytest.raises(UserError, match=message):
            read()
    with pytest.raises(SystemExit) as info:
        main(["metrics", "pms", str(folder), str(folder)])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and "bad.tiff" in err[0], err
