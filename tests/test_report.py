"""`flexae report`: a run's page from its folder, checked in a headless browser when one is
installed (CI installs Chromium), and by reading the HTML otherwise."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import SHARED_DATA

from flexae.cli import main
from flexae.config import ModelConfig, OptimConfig, RunConfig, TrainConfig
from flexae.report import kind, read_run, write_report
from flexae.app.train import resume, train

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Path:
    """Two FlexAE-SR iterations on MNIST with grids, then one more after a resume that switches
    TensorBoard on (a logging sink may change on resume)."""
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA}")
    shared_data = SHARED_DATA
    out = tmp_path_factory.mktemp("report") / "sr"
    cfg = RunConfig(ModelConfig(name="flexae-sr", latent_dim=8), OptimConfig(critic_steps=1),
                    train=TrainConfig(dataset="mnist", steps=2, batch_size=4, log_every=1, grid_every=1,
                                device="cpu", data_dir=str(shared_data)))
    train(cfg, out, progress=False)
    resume(out, steps=3, progress=False, tensorboard=True)
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    return out


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory) -> Path:
    cfg = RunConfig(ModelConfig(name="flexae", latent_dim=2),
                    train=TrainConfig(dataset="synthetic-2d", steps=4, batch_size=16, log_every=1, eval_every=2,
                                eval_samples=50, device="cpu"))
    return train(cfg, tmp_path_factory.mktemp("report") / "syn", progress=False)


def test_log_records_say_what_they_are(synthetic_run):
    records = [json.loads(line) for line in (synthetic_run / "log.jsonl").read_text().splitlines()]
    assert {r["kind"] for r in records} == {"losses", "metrics"}
    assert all(("loss_ae" in r) == (r["kind"] == "losses") for r in records)
    assert kind({"step": 3, "fd": 1.0}) == "metrics" and kind({"step": 1, "loss_ae": 2.0}) == "losses"  # old logs


def test_report_of_an_image_run(image_run):
    page = write_report([image_run])
    text = page.read_text()
    run = read_run(image_run)
    assert [r["step"] for r in run.losses] == [1, 2, 3] and set(run.grids) == {"samples", "reconstructions"}
    assert "samples-0000003.png" in text  # the latest grid
    markdown = (page.parent / "report.md").read_text()
    assert "![losses](losses.png)" in markdown and "sr-samples-0000003.png" in markdown
    assert (page.parent / "sr-samples-0000003.png").is_file()
    images = re.findall(r"<img alt='(\w+)' src='data:image/png;base64,", text)
    assert images == ["losses", "samples", "reconstructions"]  # no metrics logged for image runs
    assert "flexae-sr" in text and "ms per iteration" in text
    for png in ("losses.png",):
        assert (page.parent / png).stat().st_size > 1000


def test_comparison_page_and_command(image_run, synthetic_run, tmp_path, capsys):
    main(["report", str(synthetic_run), str(image_run), "--out", str(tmp_path / "cmp")])
    assert "wrote" in capsys.readouterr().out
    text = (tmp_path / "cmp" / "report.html").read_text()
    assert "<th>syn</th><th>sr</th>" in text and "final fd" in text
    with pytest.raises(SystemExit) as info:
        main(["report", str(synthetic_run), str(image_run)])
    assert info.value.code == 2  # several runs need --out


@pytest.mark.skipif(BROWSER is None, reason="no Chromium installed (CI installs it)")
def test_the_page_renders_with_every_image_loaded(image_run, synthetic_run, tmp_path):
    page = write_report([synthetic_run, image_run], tmp_path / "both")
    common = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom = subprocess.run([*common, "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    loaded = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom)
    assert loaded is not None, dom[-500:]
    assert loaded.groups() == ("4", "4")  # loss and metric curves, the image run's two grids
    shot = tmp_path / "report.png"
    subprocess.run([*common, f"--screenshot={shot}", "--window-size=1300,2400", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.stat().st_size > 10_000
