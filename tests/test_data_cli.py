"""`flexae data fetch` and `flexae data export`, on the real MNIST files."""

import numpy as np
import pytest

from flexae.cli import main
from flexae.data.images import load_images


def _cli(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main([*args])
    return info.value.code, capsys.readouterr()


def test_export_writes_the_layout_sample_writes(shared_data, tmp_path, capsys):
    out = tmp_path / "mnist_test.npz"
    main(["data", "export", "mnist", "--split", "test", "-n", "7", "--out", str(out), "--data-dir", str(shared_data)])
    images = np.load(out)["images"]
    expected = load_images("mnist", "test", shared_data).images[:7].permute(0, 2, 3, 1).numpy()
    assert images.dtype == np.uint8 and images.shape == (7, 28, 28, 1)
    np.testing.assert_array_equal(images, expected)
    code, captured = _cli(capsys, "data", "export", "mnist", "--out", str(out), "--data-dir", str(shared_data))
    assert code == 2 and "exists" in captured.err  # no silent overwrite


def test_fetch_finds_present_files_without_downloading(shared_data, capsys):
    main(["data", "fetch", "mnist", "--data-dir", str(shared_data)])
    assert "mnist train: 60000 images" in capsys.readouterr().out


def test_missing_files_name_a_command_that_exists(tmp_path, capsys):
    code, captured = _cli(capsys, "data", "export", "fashion-mnist", "--out", str(tmp_path / "f.npz"),
                          "--data-dir", str(tmp_path))
    assert code == 2 and "flexae data fetch" in captured.err and len(captured.err.strip().splitlines()) == 1
    code, captured = _cli(capsys, "data", "fetch", "nope")
    assert code == 2 and "unknown image data set 'nope'" in captured.err
