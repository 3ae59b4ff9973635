"""flexae: generative auto-encoders with learned latent priors (Mondal et al., UAI 2021).

    from flexae import RunConfig, ModelConfig, TrainConfig, train, load_run, sample
    run = train(RunConfig(ModelConfig("flexae", latent_dim=50), train=TrainConfig(steps=3000)), "runs/a")
    model, cfg = load_run(run)
    images = sample(model, 16, seed=0)    # image runs; model.generate(16) for any run
    model = from_pretrained("exported/a")  # a folder of `flexae export --format folder` (or a Hub id)

The functions are imported on first use, so `import flexae` (and the CLI) starts fast.
"""

from flexae.config import ModelConfig, OptimConfig, RunConfig, TrainConfig
from flexae.version import __version__

_LAZY = {
    "train": "flexae.app.train", "resume": "flexae.app.train",
    "load_run": "flexae.app.load", "export_weights": "flexae.app.export", "load_weights": "flexae.app.export",
    "build_model": "flexae.registry", "register": "flexae.registry", "ModelSpec": "flexae.registry",
    "sample": "flexae.inference", "reconstruct": "flexae.inference", "interpolate": "flexae.inference",
    "load_dataset": "flexae.data",
    "fit_prior": "flexae.app.fit_prior", "fit_prior_run": "flexae.app.fit_prior",
    "compare_priors": "flexae.app.compare_priors", "from_pretrained": "flexae.app.pretrained",
    "fid": "flexae.metrics.api", "kid": "flexae.metrics.api", "prd": "flexae.metrics.api",
}

__all__ = ["ModelConfig", "OptimConfig", "RunConfig", "TrainConfig", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'flexae' has no attribute {name!r}")
