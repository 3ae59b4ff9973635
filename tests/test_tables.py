"""`flexae reproduce table1/table3/table4` (flexae.experiments.tables): run configs, reuse and resume
of runs, cached evaluations and the table files, on a tiny MNIST-format data set with a stand-in
for the Inception-based evaluation (the real one is tested in the metrics tests)."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from flexae.errors import UserError
from flexae.experiments import tables
from flexae.experiments.tables import TableSettings


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def write_tiny_mnist(root: Path) -> Path:
    """ROOT/mnist with 300 training and 100 test images (bars at random rows); returns ROOT."""
    (root / "mnist").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 300), ("t10k", 100)):
        images = np.zeros((n, 28, 28), np.uint8)
        images[np.arange(n), rng.integers(4, 24, n)] = 255
        _write_idx(root / "mnist" / f"{prefix}-images-idx3-ubyte.gz", images, 2051)
        _write_idx(root / "mnist" / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n), 2049)
    return root


@pytest.fixture
def tiny_mnist(tmp_path) -> Path:
    """An MNIST folder of 300 training and 100 test images (bars at random rows)."""
    return write_tiny_mnist(tmp_path / "data")


class FakeEvaluation:
    """Stands in for flexae.evaluation.evaluate_generator: checks what the tables pass and counts calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, generate, reconstruct, test_images, train_images=None, n=10000, metrics=(), **kwargs):
        images = generate(n)
        assert images.shape == (n, 1, 28, 28) and test_images.shape[1:] == (1, 28, 28)
        assert reconstruct(test_images[:n]).shape == (n, 1, 28, 28)
        self.calls.append({"n": n, "metrics": tuple(metrics), "train": train_images})
        results = {"n": n}
        if "fid" in metrics:
            results["fid"] = {"rec": 1.5, "gen": 2.5}
        if "prd" in metrics:
            results["prd"] = {"precision": 0.25, "recall": 0.75}
        if "pms" in metrics:
            results["pms"] = {c: 4.0 for c in tables.TABLE4_COLUMNS}
            results["ims"] = {c: 7.0 for c in tables.TABLE4_COLUMNS}
        return results


@pytest.fixture
def fake_evaluation(monkeypatch):
    import flexae.evaluation
    fake = FakeEvaluation()
    monkeypatch.setattr(flexae.evaluation, "evaluate_generator", fake)
    return fake


def _settings(tmp_path, data_dir, steps=1, **kw) -> TableSettings:
    return TableSettings(dataset="mnist", steps=steps, out=tmp_path / "out", eval_n=kw.pop("eval_n", 40),
                         device="cpu", data_dir=str(data_dir), sampler_steps=2, sampler_fit_points=100,
                         progress=False, **kw)


def test_run_configs_follow_the_paper_per_data_set(tmp_path):
    s = TableSettings(dataset="mnist", steps=40, out=tmp_path, sampler_steps=7)
    cfg = tables.run_config("rae-gmm", s)
    assert cfg.model.latent_dim == 20 and cfg.train.steps == 40 and cfg.train.batch_size == 128
    assert cfg.model.options.rae_code_weight == 1e-4 and tables.run_config("2s-vae", s).model.options.sampler_steps == 7
    cifar = tables.run_config("rae-gmm", TableSettings(dataset="cifar10", steps=1, out=tmp_path))
    assert cifar.model.latent_dim == 64
    assert (cifar.model.options.rae_code_weight, cifar.model.options.rae_decoder_decay) == (1e-3, 1e-6)
    assert tables.run_config("wae-mmd", TableSettings(dataset="celeba", steps=1, out=tmp_path)).model.options.mmd_weight == 100
    assert tables.run_config("wae", s, latent_dim=128).model.latent_dim == 128
    # WAE-GAN / WAE-MMD: the authors' MNIST config on grey sets, their CelebA config on colour sets.
    mnist = tables.run_config("wae-gan", s).model.options
    assert (mnist.wae_gan_weight, mnist.wae_cost_scale, mnist.wae_gan_schedule, mnist.wae_gan_prior_trick,
            mnist.wae_gan_lr, mnist.wae_gan_adversary_lr, mnist.wae_gan_schedule_steps) == \
        (10.0, 0.05, "manual", False, 1e-3, 5e-4, 40)
    celeba = tables.run_config("wae-gan", TableSettings(dataset="celeba", steps=9, out=tmp_path)).model.options
    assert (celeba.wae_gan_weight, celeba.wae_cost_scale, celeba.wae_gan_schedule,
            celeba.wae_gan_prior_trick, celeba.wae_gan_lr, celeba.wae_gan_adversary_lr) == \
        (100.0, 0.2, "smooth", True, 3e-4, 1e-3)
    celeba_mmd = tables.run_config("wae-mmd", TableSettings(dataset="celeba", steps=9, out=tmp_path)).model.options
    assert (celeba_mmd.mmd_weight, celeba_mmd.wae_cost_scale) == (100.0, 0.2)
    assert tables.TABLE1_MODELS.index("wae-gan") < tables.TABLE1_MODELS.index("2s-vae")  # the paper's row
    assert "wae" in tables.TABLE1_MODELS and set(tables.TABLE3_MODELS) == {"wae-gan", "wae", "flexae-sr"}
    tuned = TableSettings(dataset="cifar10", steps=1, out=tmp_path,
                          overrides=("model.bn_momentum=0.1", "model.options.rae_code_weight=0.5"))
    cfg = tables.run_config("rae-gmm", tuned)
    assert cfg.model.bn_momentum == 0.1 and cfg.model.options.rae_code_weight == 0.5  # --set wins
    with pytest.raises(UserError):
        tables.run_config("vae", TableSettings(dataset="mnist", steps=1, out=tmp_path, overrides=("model.nope=1",)))


def test_bad_settings_are_user_errors_and_small_n_warns(tmp_path):
    warnings = []
    with pytest.raises(UserError, match="image data"):
        tables.check_settings(TableSettings(dataset="synthetic-5d", steps=1, out=tmp_path), warnings.append)
    with pytest.raises(UserError, match="steps"):
        tables.check_settings(TableSettings(dataset="mnist", steps=0, out=tmp_path), warnings.append)
    with pytest.raises(UserError, match="eval-n"):
        tables.check_settings(TableSettings(dataset="mnist", steps=1, out=tmp_path, eval_n=5), warnings.append)
    tables.check_settings(TableSettings(dataset="mnist", steps=1, out=tmp_path, eval_n=10000), warnings.append)
    assert warnings == []
    tables.check_settings(TableSettings(dataset="mnist", steps=1, out=tmp_path, eval_n=500), warnings.append)
    assert len(warnings) == 1 and "2048" in warnings[0]
    with pytest.raises(UserError, match="unknown models"):
        tables.reproduce_table1(TableSettings(dataset="mnist", steps=1, out=tmp_path), models=("nope",),
                                warn=warnings.append)


def test_table1_trains_evaluates_reuses_and_resumes(tmp_path, tiny_mnist, fake_evaluation):
    settings = _settings(tmp_path, tiny_mnist)
    markdown = tables.reproduce_table1(settings, models=("vae", "ae-gmm"), warn=lambda m: None)
    out = settings.out
    assert "| VAE | 1.50 | 2.50 | 52.14 | 56.07 |" in markdown          # ours, then the paper's
    assert "| AE + GMM | 0.25/0.75 | - |" in markdown                   # Table 2: no paper value
    payload = json.loads((out / "table1.json").read_text())
    assert [r["model"] for r in payload["rows"]] == ["vae", "ae-gmm"] and payload["eval_n"] == 40
    assert (out / "table1.md").read_text() == markdown
    assert (out / "samples" / "vae.png").is_file() and (out / "samples" / "ae-gmm.png").is_file()
    assert (out / "runs" / "ae-gmm" / "sampler.pt").is_file()
    assert len(fake_evaluation.calls) == 2 and fake_evaluation.calls[0]["metrics"] == ("fid", "prd")

    # Re-running reuses the finished runs and the cached evaluations.
    stamp = (out / "runs" / "vae" / "checkpoint.pt").stat().st_mtime_ns
    assert tables.reproduce_table1(settings, models=("vae", "ae-gmm"), warn=lambda m: None) == markdown
    assert (out / "runs" / "vae" / "checkpoint.pt").stat().st_mtime_ns == stamp
    assert len(fake_evaluation.calls) == 2

    # More steps: the runs are resumed (not retrained) and evaluated again.
    longer = _settings(tmp_path, tiny_mnist, steps=2)
    tables.reproduce_table1(longer, models=("ae-gmm",), warn=lambda m: None)
    log = [json.loads(line) for line in (out / "runs" / "ae-gmm" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss_ae" in r] == [1, 2]
    assert json.loads((out / "runs" / "ae-gmm" / "metrics.json").read_text())["step"] == 2
    assert len(fake_evaluation.calls) == 3


def test_table1_has_the_vae_iop_row_beside_the_paper(tmp_path, tiny_mnist, fake_evaluation):
    settings = _settings(tmp_path, tiny_mnist)
    assert tables.TABLE1_MODELS.index("vae-iop") == tables.TABLE1_MODELS.index("vamp-vae") + 1  # paper order
    markdown = tables.reproduce_table1(settings, models=("vae-iop",), warn=lambda m: None)
    assert "| VAE-IOP | 1.50 | 2.50 | 28.01 | 40.16 |" in markdown  # Table 1, paper's MNIST row
    assert "| VAE-IOP | 0.25/0.75 | - |" in markdown               # Table 2 has no VAE-IOP row
    assert (settings.out / "samples" / "vae-iop.png").is_file()


def test_table3_sweeps_the_latent_size(tmp_path, tiny_mnist, fake_evaluation):
    settings = _settings(tmp_path, tiny_mnist)
    markdown = tables.reproduce_table3(settings, models=("vae",), multiples=(1, 2), warn=lambda m: None)
    assert (settings.out / "runs" / "vae-m32").is_dir() and (settings.out / "runs" / "vae-m64").is_dir()
    assert "| 2 m_b = 64 | 1.50 | 2.50 | 5.61/3.10 | 24.58/3.37 |" in markdown
    rows = json.loads((settings.out / "table3.json").read_text())["rows"]
    assert [r["latent_dim"] for r in rows] == [32, 64]
    assert all(call["metrics"] == ("fid",) for call in fake_evaluation.calls)


def test_table4_scores_memorisation(tmp_path, tiny_mnist, fake_evaluation):
    settings = _settings(tmp_path, tiny_mnist, eval_n=30)
    markdown = tables.reproduce_table4(settings, model="vae", warn=lambda m: None)
    assert "| mnist | 4.00/7.00 | 4.00/7.00 | 4.00/7.00 | 4.00/7.00 |" in markdown
    assert "| paper | 4.72/7.11 |" in markdown
    call = fake_evaluation.calls[0]
    assert call["metrics"] == ("pms", "ims") and call["train"].shape == (60, 1, 28, 28)
    assert 0 <= float(call["train"].min()) and float(call["train"].max()) <= 1  # floats in [0, 1]


def test_cli_table1_rejects_synthetic_data(tmp_path):
    from click.testing import CliRunner

    from flexae.cli import cli
    result = CliRunner().invoke(cli, ["reproduce", "table1", "--dataset", "synthetic-5d", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "image data" in str(result.exception or result.output)
