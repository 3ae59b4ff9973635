"""Encoder / decoder classes of a user's own: trained by any model, recorded in the config as
"module:Class", rebuilt by load_run (also from an export), and refused with one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from flexae import build_model, load_run
from flexae.config import ModelConfig, RunConfig, TrainConfig
from flexae.errors import UserError
from flexae.app.export import export_weights
from flexae.app.train import train
from user_nets import TinyEncoder, TinyImageDecoder


@pytest.mark.parametrize("model_name", ["wae", "ae-gmm", "vae"])
def test_own_networks_train_save_and_reload(tmp_path: Path, model_name: str) -> None:
    images = torch.randint(0, 256, (12, 1, 8, 8), dtype=torch.uint8)
    cfg = RunConfig(ModelConfig(model_name, latent_dim=3, encoder=TinyEncoder, decoder=TinyImageDecoder,
                                options={"expost_gmm_components": 2} if model_name == "ae-gmm" else {}),
                    train=TrainConfig(steps=2, batch_size=4, grid_every=0))
    assert cfg.model.encoder == "user_nets:TinyEncoder"
    run = train(cfg, tmp_path / "run", progress=False, data=images)
    model, loaded = load_run(run)
    assert (loaded.model.encoder, loaded.model.decoder) == ("user_nets:TinyEncoder", "user_nets:TinyImageDecoder")
    assert isinstance(model.encoder, TinyEncoder) and isinstance(model.decoder, TinyImageDecoder)
    # VAE encoders give 2m outputs (mean, log-variance): flexae asks the class for them
    assert model.encoder.net[-1].out_features == (6 if model_name == "vae" else 3)
    state = torch.load(run / "checkpoint.pt", weights_only=True)["model"]
    # the checkpoint holds the trained weights (the ex-post sampler lives in sampler.pt)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items() if not k.startswith("prior."))
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    out = export_weights(run, tmp_path / "w.safetensors")
    exported, _ = load_run(out)
    assert torch.equal(exported.generate(3, g()), model.generate(3, g()))
    assert model.generate(3).shape == (3, 1, 8, 8)


def test_build_model_takes_classes_and_refuses_what_cannot_be_rebuilt() -> None:
    cfg = ModelConfig("wae", latent_dim=4)
    model = build_model(cfg, (1, 8, 8), encoder=TinyEncoder, decoder="user_nets:TinyImageDecoder")
    assert cfg.encoder == "user_nets:TinyEncoder" and isinstance(model.decoder, TinyImageDecoder)
    with pytest.raises(UserError, match="takes the class"):
        build_model(ModelConfig("wae"), (1, 8, 8), encoder=TinyEncoder((1, 8, 8), 4))

    class Local(torch.nn.Module):
        pass

    for ref, match in [(Local, "importable"), ("no_such_module_xyz:Net", "cannot import"),
                       ("user_nets:Missing", "has no Missing"), ("math:sqrt", "failed"), ("user_nets", "importable")]:
        with pytest.raises(UserError, match=match) as exc:
            build_model(ModelConfig("wae", latent_dim=4), (1, 8, 8), encoder=ref)
        assert "\n" not in str(exc.value)
