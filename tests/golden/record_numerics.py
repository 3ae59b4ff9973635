"""Kept as run (against the pre-refactor API, commit ea93014) to record, on the pre-refactor main, 3 CPU iterations of every model at a fixed seed: the losses of
each iteration and 8 generated images after them. tests/test_refactor_numerics.py compares.
Add the kernel family (`kernel_family()` of that test) to the file as "kernels" after recording."""
import sys
import torch
from flexae.config import ModelConfig, OptimConfig
from flexae.data import RandomBatches
from flexae.models import MODEL_NAMES, build_model
from flexae.training.precision import StepOptions
from flexae.training.trainers import make_trainer
from flexae.baselines import samplers

SHAPES = {"image": (1, 28, 28), "synthetic": (128,)}

def small_config(name):
    cfg = ModelConfig(name=name, latent_dim=4)
    hp = cfg.baseline
    hp.vamp_pseudo_inputs, hp.vq_codebook_size, hp.vq_embedding_dim = 6, 16, 3
    hp.second_stage_width, hp.vq_prior_width, hp.iaf_hidden = 32, 16, 16
    hp.expost_gmm_components, hp.sampler_steps, hp.sampler_batch_size = 3, 3, 8
    return cfg

def run(name, kind):
    shape = SHAPES[kind]
    torch.manual_seed(0)
    data = torch.rand(64, *shape) if kind == "image" else torch.randn(64, *shape)
    torch.manual_seed(1)
    cfg = small_config(name)
    model = build_model(cfg, shape)
    batches = RandomBatches(data, 8)
    trainer = make_trainer(model, OptimConfig(), batches, StepOptions(channels_last=False))
    losses = []
    for _ in range(3):
        logs = trainer.step()
        losses.append({k: float(v) for k, v in logs.items()})
    model.eval()
    if samplers.expost_sampler(model) is not None:
        samplers.fit(model, data, cfg.baseline, seed=0)
    with torch.no_grad():
        images = model.generate(8, torch.Generator().manual_seed(2))
    return {"losses": losses, "images": images.detach().clone()}

if __name__ == "__main__":
    torch.set_num_threads(1)
    out = {"torch": str(torch.__version__), "cpu_capability": torch.backends.cpu.get_cpu_capability(), "runs": {}}
    for name in MODEL_NAMES:
        for kind in SHAPES:
            if name == "flexae-sr" and kind == "synthetic":
                continue
            out["runs"][f"{name}/{kind}"] = run(name, kind)
            print(name, kind, out["runs"][f"{name}/{kind}"]["losses"][-1], flush=True)
    torch.save(out, sys.argv[1])
