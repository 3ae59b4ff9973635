"""Issue 24 (the first hour with flexae): honest defaults, skip reasons, a light `--help`, light exports."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from flexae.cli import cli
from flexae.plots import final_fd_label

REPO = Path(__file__).resolve().parents[1]


def test_fig2_default_of_one_seed_is_what_the_docs_and_legend_say():
    help_text = CliRunner().invoke(cli, ["reproduce", "fig2", "--help"]).output
    assert "[default: 1]" in " ".join(help_text.split())
    assert "`reproduce fig2` runs **1 seed** by default" in (REPO / "docs" / "synthetic.md").read_text()
    # One seed: no "± 0.00, 1 seeds"; several: mean ± population std.
    assert final_fd_label(np.array([4.4])) == "final FD 4.40, 1 seed"
    assert final_fd_label(np.array([1.0, 3.0])) == "final FD 2.00 ± 1.00, 2 seeds"


def _pytest(args: list[str], shared: Path) -> subprocess.CompletedProcess:
    env = {**__import__("os").environ, "FLEXAE_SHARED_DATA": str(shared)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_skips_for_missing_mnist_are_counted_in_one_line_that_says_how_to_enable_them(tmp_path):
    # Four tests of test_image_data need MNIST (marks) and are cheap to collect; point the variable
    # at an empty folder.
    tests = ["tests/test_image_data.py::test_raw_idx_equals_gz",
             "tests/test_image_data.py::test_env_var_and_flat_directory",
             "tests/test_image_data.py::test_truncated_raw_idx_names_file"]
    result = _pytest(tests, tmp_path)
    lines = [line for line in result.stdout.splitlines() if "tests skipped: no MNIST" in line]
    assert lines == [f"3 tests skipped: no MNIST files in FLEXAE_SHARED_DATA={tmp_path}/mnist; to run them: "
                     "flexae data fetch mnist --data-dir DIR && ln -s MNIST/raw DIR/mnist, then "
                     "FLEXAE_SHARED_DATA=DIR (default: ../shared/data beside the repository)"], result.stdout
    readme = (REPO / "README.md").read_text()
    assert "FLEXAE_SHARED_DATA" in readme and "flexae data fetch mnist" in readme


def test_the_enabling_recipe_is_a_layout_the_tests_read(tmp_path):
    # What `flexae data fetch mnist --data-dir DIR` leaves (torchvision's DIR/MNIST/raw, .gz kept),
    # made offline from the shared files, plus the symlink the summary line names.
    from conftest import SHARED_DATA
    import pytest
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"shared MNIST files absent at {SHARED_DATA}")
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for path in (SHARED_DATA / "mnist").glob("*-ubyte.gz"):
        (raw / path.name).write_bytes(path.read_bytes())
    (tmp_path / "mnist").symlink_to("MNIST/raw")
    result = _pytest(["tests/test_image_data.py::test_raw_idx_equals_gz"], tmp_path)
    assert result.returncode == 0 and "1 passed" in result.stdout and "skipped" not in result.stdout, result.stdout


def _imported_by_help(*args: str) -> set[str]:
    """Top-level modules `python -X importtime -m flexae ARGS --help` imports (its stderr lists them)."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "flexae", *args, "--help"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    names = [line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")]
    return {name.split(".")[0] for name in names}


def test_help_imports_neither_torch_nor_scikit_learn():
    for args in ((), ("metrics",), ("metrics", "kid"), ("train",), ("eval",)):
        imported = _imported_by_help(*args)
        assert "flexae" in imported and not imported & {"torch", "sklearn", "scipy"}, (args, imported & {"torch", "sklearn", "scipy"})


def _options():
    import click

    def walk(command, path):
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from walk(sub, [*path, name])
        else:
            for param in command.params:
                if isinstance(param, click.Option) and param.name != "help":
                    yield " ".join(path), param
    return list(walk(cli, ["flexae"]))


def test_every_option_has_help_and_shows_its_default():
    for command, option in _options():
        assert option.help, f"{command} {option.opts[0]} has no help"
        has_default = option.default is not None and "UNSET" not in repr(option.default)  # click 8.2: required
        if has_default and not option.is_flag and not option.multiple:
            assert option.show_default, f"{command} {option.opts[0]}: default {option.default!r} not shown"
    train_steps = next(o for c, o in _options() if c == "flexae train" and o.name == "steps")
    assert "5000" in str(train_steps.show_default)


def test_one_data_dir_type_and_one_inception_batch_size():
    import click

    from flexae.config import INCEPTION_BATCH_SIZE
    from flexae.metrics import cli as metrics_cli
    from flexae.metrics import inception
    data_dirs = [(c, o) for c, o in _options() if o.name == "data_dir"]
    assert len(data_dirs) > 10 and all(isinstance(o.type, click.Path) for _, o in data_dirs), \
        [c for c, o in data_dirs if not isinstance(o.type, click.Path)]
    inception_batches = {c: o.default for c, o in _options() if o.name == "batch_size"
                         and (c == "flexae eval" or c.startswith("flexae metrics"))}
    assert len(inception_batches) == 6 and set(inception_batches.values()) == {INCEPTION_BATCH_SIZE}, inception_batches
    # written out in the metrics CLI so that its options import no torch
    assert metrics_cli.PRECISION_CHOICES == inception.PRECISION_CHOICES
    assert (metrics_cli.RESIZE_MODE, metrics_cli.RESIZE_MODES) == (inception.RESIZE_MODE, inception.RESIZE_MODES)


def test_export_writes_generation_weights_by_default_and_critics_on_request(tmp_path):
    import torch
    from safetensors import safe_open

    from flexae import ModelConfig, RunConfig, TrainConfig, load_run, load_weights, sample, train
    from flexae.cli import main

    # A FlexAE-SR run on MNIST-shaped images (28 x 28 greyscale, the Table 7 networks), one iteration.
    np.save(tmp_path / "x.npy", np.random.default_rng(0).integers(0, 256, (16, 28, 28), dtype=np.uint8))
    cfg = RunConfig(ModelConfig("flexae-sr", latent_dim=8),
                    train=TrainConfig(dataset=f"npy:{tmp_path / 'x.npy'}", steps=1, batch_size=4, grid_every=0,
                                      device="cpu"))
    run = train(cfg, tmp_path / "run", progress=False)
    light, full = tmp_path / "gen.safetensors", tmp_path / "full.safetensors"
    main(["export", str(run), "--out", str(light)])
    main(["export", str(run), "--out", str(full), "--with-critics"])

    with safe_open(str(light), framework="pt") as f:
        light_keys, meta = set(f.keys()), f.metadata()
    with safe_open(str(full), framework="pt") as f:
        full_keys = set(f.keys())
    assert {k.split(".")[0] for k in full_keys - light_keys} == {"latent_critic", "smoothing_critic"}
    assert not any("critic" in k for k in light_keys) and {"encoder", "decoder", "prior"} <= {
        k.split(".")[0] for k in light_keys}
    assert json.loads(meta["without"]) == ["latent_critic", "smoothing_critic"]
    assert light.stat().st_size < full.stat().st_size

    original, _ = load_run(run)
    expected = sample(original, 8, seed=3)
    for path in (light, full):
        model, loaded_cfg = load_run(path)
        assert torch.equal(sample(model, 8, seed=3), expected), path
        assert loaded_cfg.model.name == "flexae-sr"
    # the full file is every weight of the run's model
    model, _ = load_weights(full)
    for (name, a), b in zip(model.state_dict().items(), original.state_dict().values()):
        assert torch.equal(a, b), name
    # `flexae sample` takes the file, and says so
    main(["sample", str(light), "-n", "4", "--out", str(tmp_path / "s.npz"), "--device", "cpu"])
    assert np.load(tmp_path / "s.npz")["images"].shape == (4, 28, 28, 1)
    help_text = " ".join(CliRunner().invoke(cli, ["sample", "--help"]).output.split())
    assert ".safetensors file written by `flexae export`" in help_text


def test_a_file_missing_weights_it_does_not_declare_is_refused(tmp_path):
    import pytest
    from safetensors.torch import load_file, save_file

    from flexae import ModelConfig, RunConfig, TrainConfig, load_weights, train
    from flexae.cli import main
    from flexae.errors import UserError

    cfg = RunConfig(ModelConfig("flexae", latent_dim=2),
                    train=TrainConfig(dataset="synthetic-2d", steps=1, batch_size=8, eval_samples=10, device="cpu"))
    run = train(cfg, tmp_path / "run", progress=False)
    main(["export", str(run), "--out", str(tmp_path / "m.safetensors")])
    meta = _metadata(tmp_path / "m.safetensors")
    dropped = {k: v for k, v in load_file(str(tmp_path / "m.safetensors")).items() if not k.startswith("decoder.")}
    save_file(dropped, tmp_path / "bad.safetensors", meta)
    with pytest.raises(UserError, match=r"do not fit the model .*missing decoder\."):
        load_weights(tmp_path / "bad.safetensors")
    meta["without"] = '["decoder"]'  # only critics may be left out
    save_file(dropped, tmp_path / "bad2.safetensors", meta)
    with pytest.raises(UserError, match="garbled 'without' metadata"):
        load_weights(tmp_path / "bad2.safetensors")


def _metadata(path: Path) -> dict:
    """A safetensors file's header metadata."""
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata())
