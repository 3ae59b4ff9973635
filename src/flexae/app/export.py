"""Published weights: a run's model as one `.safetensors` file, its config as JSON metadata.

A checkpoint is for resuming (optimizer states, RNG states) and is a zip of pickles that only
`torch.load(weights_only=True)` makes safe to open. For sharing a trained model, safetensors is
simpler and safe by construction: a JSON header and raw tensor bytes, no code path that can run
anything. `export_weights` writes the model's state dict with metadata

    format    "flexae-model"
    config    the run's RunConfig as JSON (the model is rebuilt from it, never unpickled)
    versions  flexae / torch / Python versions that wrote the run, as JSON
    step      the training iteration of the weights
    without   JSON list of the model's modules left out (its critics; absent: none left out)

By default only what generation uses is written: encoder, decoder and prior (a learned prior G, or
a baseline's fitted sampler); the WGAN-GP critics (`latent_critic`, FlexAE-SR's `smoothing_critic`)
serve training only, and were 37% of a FlexAE-SR export. `with_critics=True` (`flexae export
--with-critics`) writes every weight, the full model of a training state. A file without critics
loads into a model whose critics keep their fresh initialisation: it encodes, decodes and
generates exactly as the run does, but is not a state to train on.

and `load_weights` (also reached through `flexae.app.load_run(path)`) checks all of it.
The fitted ex-post sampler of a baseline (`sampler.pt`) is part of the export (it is the model's
prior), so an exported ae-gmm, rae-gmm, 2s-vae or vq-vae model generates. A prior learned after
training (`flexae fit-prior`, any kind) is exported only when named (`--prior NAME`; "fitted" is
prior.pt), recorded as `prior` metadata ({name, kind, settings}: what rebuilds the module); loading
such a file needs prior=NAME too (files of older flexae say `learned_prior`: prior="fitted").
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from flexae.config import RunConfig
from flexae.errors import UserError
from flexae.models import AutoEncoder
from flexae.files import atomic_write, first_line
from flexae.data import run_data_shape
from flexae.app.build import build_for_config, build_prior, read_model
from flexae.runs import prior_file
from flexae.finite import require_finite
from flexae.runs.checkpoint import check_versions
from flexae.runs.run_folder import RunFolder
from flexae.trust import allowing_code
from flexae.validation import config_from_dict

FORMAT = "flexae-model"
SUFFIX = ".safetensors"


def critic_modules(model: AutoEncoder) -> list[str]:
    """Names of the model's top-level critic modules (training only: generation never calls them)."""
    return [name for name, _ in model.named_children() if "critic" in name]


def export_weights(run_dir: str | Path, out: str | Path, overwrite: bool = False, prior: str = "own",
                   trust_code: bool = False, with_critics: bool = False) -> Path:
    """Write the generation weights of the run in `run_dir` (encoder, decoder, prior or sampler) to
    the safetensors file `out`; `with_critics` adds the critics (every weight of the model). With
    prior=NAME its prior is the one of that name fitted after training, recorded in the metadata
    (`trust_code`: as for `load_run`)."""
    prior_file.check_prior(prior)
    from safetensors.torch import save

    run_dir, out = Path(run_dir), Path(out)
    if out.suffix != SUFFIX:
        raise UserError(f"{out}: give the exported file the {SUFFIX} suffix")
    if out.exists() and not overwrite:
        raise UserError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise UserError(f"cannot write {out}: folder {out.parent} does not exist")
    run, path = RunFolder.of(run_dir)  # RUN_DIR's last checkpoint, or a checkpoint file (RUN_DIR/best.pt)
    run_dir = run.path
    # The checks load_weights makes; the fitted ex-post sampler (sampler.pt) is part of the model's
    # state dict (its prior), so the exported file generates like the run does.
    with allowing_code(trust_code):
        model, _, state = read_model(path, prior=prior)
    if not model.can_generate():
        warnings.warn(f"{run_dir} has no fitted ex-post sampler (run `flexae fit-sampler {run_dir}` first); "
                      f"the exported model encodes and decodes but cannot generate", stacklevel=2)
    # Own, dense copies: safetensors refuses views and tensors sharing storage.
    left_out = [] if with_critics else critic_modules(model)
    tensors = {name: t.detach().cpu().contiguous().clone() for name, t in model.state_dict().items()
               if name.split(".")[0] not in left_out}
    require_finite(tensors, run_dir, "not exported (its checkpoint, prior.pt or sampler.pt is damaged; fit "
                   "or train it again)")
    metadata = {"format": FORMAT, "config": json.dumps(state["config"]),
                "versions": json.dumps(state["versions"]), "step": str(state["step"])}
    if left_out:
        metadata["without"] = json.dumps(left_out)
    if prior != prior_file.OWN:  # fitted by `flexae fit-prior`: what rebuilds it (never pickled)
        fitted = run.matching_prior(model, int(state["step"]), prior, required=True)
        metadata["prior"] = json.dumps({"name": prior, "kind": fitted["kind"], "settings": fitted["settings"]})
    atomic_write(out, lambda f: f.write(save(tensors, metadata)))
    return out


def _metadata(path: Path) -> tuple[dict, int]:
    """(config dict, step) from the header of a flexae safetensors file, checked."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # SafetensorError, OSError, a header that is not JSON, ...
        raise UserError(f"cannot load {path}: not a readable safetensors file ({first_line(exc)})") from None
    if meta.get("format") != FORMAT:
        raise UserError(f"{path} is not a flexae model file (its metadata lacks format={FORMAT!r})")
    try:
        config, found_versions, step = json.loads(meta["config"]), json.loads(meta["versions"]), int(meta["step"])
    except (KeyError, ValueError, TypeError):
        raise UserError(f"{path}: garbled flexae metadata (config, versions or step)") from None
    check_versions(found_versions, path)
    return config, step


def _left_out(path: Path) -> list[str]:
    """The critic modules `export_weights` left out of the file (metadata "without"), checked."""
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        raw = (f.metadata() or {}).get("without")
    try:
        names = [] if raw is None else json.loads(raw)
    except ValueError:
        names = None
    if not isinstance(names, list) or not all(isinstance(n, str) and "critic" in n for n in names):
        raise UserError(f"{path}: garbled 'without' metadata (expected a list of critic modules)")
    return names


def load_checked_tensors(model: AutoEncoder, tensors: dict[str, torch.Tensor], left_out: list[str], path: Path) -> None:
    """Load the file's tensors; only the weights of the modules it says it left out may be missing."""
    try:
        result = model.load_state_dict(tensors, strict=False)
    except (RuntimeError, ValueError) as exc:
        raise UserError(f"{path}: weights do not fit the model its config describes ({first_line(exc)})") from None
    missing = [k for k in result.missing_keys if k.split(".")[0] not in left_out]
    if missing or result.unexpected_keys:
        problem = (f"missing {missing[0]}" if missing else f"unexpected {result.unexpected_keys[0]}")
        raise UserError(f"{path}: weights do not fit the model its config describes ({problem}; "
                        f"{len(missing)} missing, {len(result.unexpected_keys)} unexpected)")


def held_prior(path: Path) -> dict | None:
    """{name, kind, settings} of the prior fitted after training (`flexae fit-prior`) exported with
    the weights (metadata "prior"; "learned_prior" of older files: an adversarial one), or None."""
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    try:
        if "prior" in meta:
            held = json.loads(meta["prior"])
            held = {"name": prior_file.check_prior(held["name"]), "kind": prior_file.check_kind(held["kind"]),
                    "settings": dict(held["settings"])}
            return None if held["name"] == prior_file.OWN else held
        if "learned_prior" in meta:
            noise_dim = int(json.loads(meta["learned_prior"])["noise_dim"])
            return {"name": prior_file.DEFAULT_NAME, "kind": "adversarial", "settings": {"noise_dim": noise_dim}}
    except (ValueError, KeyError, TypeError, UserError):
        raise UserError(f"{path}: garbled prior metadata") from None
    return None


def load_weights(path: str | Path, device: str | torch.device = "cpu",
                 prior: str = "own") -> tuple[AutoEncoder, RunConfig]:
    """Model in eval mode on `device`, and its RunConfig, from a file written by `export_weights`;
    `prior` must name the prior the file holds ("own", or the name it was exported with: --prior NAME)."""
    prior_file.check_prior(prior)
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise UserError(f"no model file at {path}")
    config, _ = _metadata(path)
    cfg = config_from_dict(config, path)
    model = build_for_config(cfg, path)
    fitted = held_prior(path)
    held = prior_file.OWN if fitted is None else fitted["name"]
    if held != prior:
        what = "the run's own prior" if fitted is None else "a prior fitted after training"
        raise UserError(f"{path} holds {what}, not prior={prior!r}; load it with prior={held!r} (--prior {held})")
    if fitted is not None:  # a prior fitted after training replaces the model's own
        model.prior = build_prior(fitted["kind"], fitted["settings"], run_data_shape(cfg.train, path),
                                  cfg.model.latent_dim)
    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as exc:  # truncated data, offsets outside the file, bad dtypes
        raise UserError(f"cannot load {path}: truncated or corrupt ({first_line(exc)})") from None
    require_finite(tensors, path, "these weights cannot be used (export the run again)")
    load_checked_tensors(model, tensors, _left_out(path), path)
    return model.to(device).eval(), cfg
