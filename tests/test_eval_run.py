"""`flexae eval RUN_DIR` on a real (tiny) MNIST run with the real Inception network."""

import json

from click.testing import CliRunner

from flexae.cli import cli


def test_eval_writes_paper_protocol_results(tmp_path, shared_data):
    run = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--model", "wae", "--dataset", "mnist", "--steps", "1",
                                 "--batch-size", "8", "--data-dir", str(shared_data), "--out", str(run),
                                 "--quiet", "--set", "train.grid_every=0"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["eval", str(run), "--n", "40", "--metrics", "fid,pms", "--quiet",
                                 "--batch-size", "20"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "eval.json").read_text())
    assert saved["model"] == "wae" and saved["dataset"] == "mnist"
    text = json.dumps(saved)
    assert "fid" in text and "pms" in text
    assert (run / "eval.md").read_text().strip()
