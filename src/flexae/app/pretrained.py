"""A trained model as the field shares one: a folder (or a Hugging Face Hub repository) holding

    config.json        format "flexae-pretrained", the run's RunConfig (the model is rebuilt from
                       it), versions, step, the chosen prior (name, kind, settings) and the sha256
                       of every other file of the folder
    model.safetensors  encoder and decoder (what generation uses; the critics are left out)
    prior.safetensors  the chosen prior: the run's own (a FlexAE G_psi, an ex-post GMM / second-stage
                       VAE / code prior) or one fitted after training (`flexae fit-prior --name`)
    eval.json          the run's evaluations of that prior, each with its provenance
    README.md          a model card: paper, config, data, metrics with n / mode / weights, commands

`export_folder` writes it (`flexae export RUN --format folder --out DIR`), `from_pretrained(DIR or
REPO_ID)` loads it ready to generate, `push` uploads it (`flexae push RUN --repo-id ID`). Nothing
in the folder is unpickled: safetensors and JSON only, and every file must match its checksum in
config.json, so a file replaced by anything else (a pickle, say) is refused with one line. The Hub
needs the optional `huggingface_hub` package (`pip install 'flexae[hub]'`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from flexae.app.build import build_for_config, build_prior, read_model
from flexae.app.export import critic_modules, load_checked_tensors
from flexae.config import RunConfig
from flexae.data import run_data_shape
from flexae.errors import UserError
from flexae.files import atomic_write, atomic_write_text, first_line
from flexae.finite import require_finite
from flexae.models import AutoEncoder
from flexae.runs import prior_file
from flexae.runs.checkpoint import check_versions
from flexae.runs.run_folder import RunFolder
from flexae.runs.layout import (COMPARE_JSON, EVAL_JSON, FOLDER_CARD, FOLDER_CONFIG, FOLDER_EVAL, FOLDER_MODEL,
                                FOLDER_PRIOR)
from flexae.trust import allowing_code
from flexae.validation import config_from_dict

FORMAT, FORMAT_VERSION = "flexae-pretrained", 1
PAPER = ("A. K. Mondal, H. Asnani, P. Singla, Prathosh AP, \"FlexAE: Flexibly Learning Latent Priors for "
         "Wasserstein Auto Encoders\", UAI 2021")


# --- writing ----------------------------------------------------------------------------------

def export_folder(run_dir: str | Path, out: str | Path, prior: str = prior_file.OWN, overwrite: bool = False,
                  trust_code: bool = False) -> Path:
    """Write the model of `run_dir` with its prior `prior` ("own", or a fitted prior's name) as a
    pretrained folder `out` (see the module docstring); returns `out`."""
    from safetensors.torch import save

    prior_file.check_prior(prior)
    out = _check_out(Path(out), overwrite)
    run, path = RunFolder.of(run_dir)
    run_dir = run.path
    with allowing_code(trust_code):
        model, cfg, state = read_model(path, prior=prior)
    if not model.can_generate():
        raise UserError(f"{run_dir} has no fitted ex-post sampler (run `flexae fit-sampler {run_dir}` first); "
                        f"a published model must generate")
    left_out = critic_modules(model)
    body = {k: _own(t) for k, t in model.state_dict().items() if k.split(".")[0] not in left_out + ["prior"]}
    prior_tensors = {k: _own(t) for k, t in model.prior.state_dict().items()}
    require_finite({"model": body, "prior": prior_tensors}, run_dir, "not exported (train or fit it again)")
    held = _held_prior(model, run_dir, int(state["step"]), prior)
    files = {
        FOLDER_MODEL: save(body, {"format": FORMAT, "part": "model"}),
        FOLDER_PRIOR: save(prior_tensors, {"format": FORMAT, "part": "prior", "prior": json.dumps(held)}),
    }
    evaluations = _evaluations(run_dir, prior)
    files[FOLDER_EVAL] = (json.dumps(evaluations, indent=2) + "\n").encode()
    files[FOLDER_CARD] = model_card(cfg, int(state["step"]), held, evaluations).encode()
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, "run_config": state["config"],
              "versions": state["versions"], "step": int(state["step"]), "prior": held, "without": left_out,
              "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}}
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        atomic_write(out / name, lambda f, data=data: f.write(data))
    atomic_write_text(out / FOLDER_CONFIG, json.dumps(config, indent=2) + "\n")  # last: it vouches for the rest
    return out


def _own(t: torch.Tensor) -> torch.Tensor:
    return t.detach().cpu().contiguous().clone()  # safetensors refuses views and shared storage


def _check_out(out: Path, overwrite: bool) -> Path:
    if out.suffix == ".safetensors":
        raise UserError(f"{out}: --format folder writes a folder; give a folder name (or use --format safetensors)")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserError(f"{out} is not empty; pass --overwrite to replace the exported files in it")
    if not out.parent.is_dir():
        raise UserError(f"cannot write {out}: folder {out.parent} does not exist")
    return out


def _held_prior(model: AutoEncoder, run_dir: Path, step: int, prior: str) -> dict[str, Any]:
    """{name, kind, settings} of the exported prior; kind "own" is the prior the config builds."""
    if prior == prior_file.OWN:
        return {"name": prior_file.OWN, "kind": prior_file.OWN, "settings": {}, "class": type(model.prior).__name__}
    fitted = RunFolder(run_dir).matching_prior(model, step, prior, required=True)
    return {"name": prior, "kind": fitted["kind"], "settings": fitted["settings"], "class": type(model.prior).__name__,
            "fit_stats": fitted["stats"]}


def _evaluations(run_dir: Path, prior: str) -> dict[str, Any]:
    """The run's results for this prior: eval*.json with "prior" equal to it, and its compare-priors row."""
    found: dict[str, Any] = {"prior": prior, "evaluations": [], "compare_priors": None}
    run = RunFolder(run_dir)
    for name in run.evaluation_files():
        results = run.read_json(name)
        if isinstance(results, dict) and results.get("prior", prior_file.OWN) == prior:
            found["evaluations"].append({"source": name, "command": _eval_command(name, results), "results": results})
    table = run.read_json(COMPARE_JSON)
    try:
        rows = [r for r in table.get("rows", []) if r.get("name") == prior] if table is not None else []
    except AttributeError:  # not the table compare-priors writes
        rows = []
    if rows:
        found["compare_priors"] = {"source": COMPARE_JSON, "protocol": table.get("protocol"), "row": rows[0]}
    return found


def _eval_command(name: str, results: dict[str, Any]) -> str:
    checkpoint = "" if name == EVAL_JSON else f"/{name[len('eval-'):-len('.json')]}.pt"
    mode = (results.get("resize") or "pytorch-fid")
    return (f"flexae eval RUN_DIR{checkpoint} --n {results.get('n', '?')} --seed {results.get('seed', 0)} "
            f"--mode {mode} --prior {results.get('prior', 'own')}")


def model_card(cfg: RunConfig, step: int, held: dict[str, Any], evaluations: dict[str, Any]) -> str:
    """README.md of a published folder."""
    m = cfg.model
    prior = ("the run's own prior" if held["name"] == prior_file.OWN
             else f"the prior {held['name']!r} ({held['kind']}) fitted after training on the frozen codes")
    lines = [f"# flexae {m.name} on {cfg.train.dataset}", "",
             f"A generative auto-encoder trained with flexae, after {PAPER}.", "",
             "## Model", "",
             f"- model `{m.name}`, latent size m = {m.latent_dim}, data `{cfg.train.dataset}`",
             f"- trained {step} steps, batch size {cfg.train.batch_size}, seed {cfg.train.seed}",
             f"- generates through {prior} (`{held.get('class', '?')}`); files: {FOLDER_MODEL} (encoder, decoder), "
             f"{FOLDER_PRIOR} (the prior), {FOLDER_CONFIG} (the full config)", "",
             "## Use", "", "```python", "import flexae", "model = flexae.from_pretrained(\"THIS_FOLDER_OR_REPO_ID\")",
             "images = flexae.sample(model, 16, seed=0)    # (16, C, H, W) in [0, 1]; model.generate(16) for any run",
             "```", "", "## Metrics", ""]
    lines += _metric_lines(evaluations)
    lines += ["", "## Reproduce", "", "```bash",
              f"flexae train --model {m.name} --dataset {cfg.train.dataset} --latent-dim {m.latent_dim} "
              f"--steps {step} --batch-size {cfg.train.batch_size} --seed {cfg.train.seed} --out runs/this",
              "```", "",
              f"Every other setting is in `{FOLDER_CONFIG}` (`run_config`, as `flexae.validation.config_from_dict` "
              f"reads it)." + ("" if held["name"] == prior_file.OWN else
                               f" Then `flexae fit-prior runs/this --kind {held['kind']} --name {held['name']}` "
                               f"with the settings of `prior` in {FOLDER_CONFIG}."), ""]
    return "\n".join(lines)


def _metric_lines(evaluations: dict[str, Any]) -> list[str]:
    lines = []
    for item in evaluations["evaluations"]:
        r = item["results"]
        fid = r.get("fid", {})
        inception = r.get("inception", {})
        weights = inception.get("weights", "?") if isinstance(inception, dict) else "?"
        lines.append(f"- `{item['source']}`: FID gen {_num(fid.get('gen'))}, rec {_num(fid.get('rec'))}; "
                     f"n = {r.get('n', '?')}, mode {r.get('resize', '?')}, Inception weights {weights}, "
                     f"step {r.get('step', '?')}; command: `{item['command']}`")
    row = evaluations["compare_priors"]
    if row is not None:
        latent = row["row"].get("latent", {})
        images = (row.get("protocol") or {}).get("images", {})
        extra = (f", FID {_num(row['row'].get('fid'))}, KID {_num(row['row'].get('kid'), 4)} at n = "
                 f"{images.get('n')} (mode {images.get('mode')})" if "fid" in row["row"] else "")
        lines.append(f"- `{row['source']}`: latent W1 {_num(latent.get('w1_prior'), 4)}, latent MMD^2 "
                     f"{_num(latent.get('mmd_prior'), 4)}{extra}; command: `flexae compare-priors RUN_DIR`")
    return lines or ["No evaluation of this prior was in the run folder when it was exported (`flexae eval`)."]


def _num(value: Any, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "-"


# --- reading ----------------------------------------------------------------------------------

def from_pretrained(source: str | Path, device: str | torch.device = "cpu", revision: str | None = None,
                    trust_code: bool = False) -> AutoEncoder:
    """The model of a pretrained folder, or of a Hub repository id ("owner/name", fetched with
    huggingface_hub), in eval mode on `device`, ready to generate (`model.generate(n)`,
    `flexae.sample(model, n, seed)`); its RunConfig is `model.run_config`."""
    folder = Path(source)
    if not folder.is_dir():
        folder = _fetch(str(source), revision)
    model, cfg = load_folder(folder, device, trust_code)
    model.run_config = cfg
    return model


def is_pretrained_folder(path: Path) -> bool:
    return path.is_dir() and (path / FOLDER_MODEL).is_file() and (path / FOLDER_CONFIG).is_file()


def load_folder(folder: Path, device: str | torch.device = "cpu", trust_code: bool = False,
                prior: str | None = None) -> tuple[AutoEncoder, RunConfig]:
    """(model, RunConfig) of a pretrained folder, every file checked against config.json; `prior`,
    if given, must name the prior it holds (as for an exported .safetensors file)."""
    from safetensors.torch import load

    config = _read_config(folder)
    held_name = config["prior"].get("name")
    if prior is not None and prior != held_name:
        raise UserError(f"{folder} holds the prior {held_name!r}, not prior={prior!r}; load it with "
                        f"prior={held_name!r} (--prior {held_name})")
    data = {name: _checked_bytes(folder, name, digest) for name, digest in config["files"].items()}
    with allowing_code(trust_code):
        cfg = config_from_dict(config["run_config"], folder / FOLDER_CONFIG)
        model = build_for_config(cfg, folder)
    held = config["prior"]
    if held.get("kind") != prior_file.OWN:  # a prior fitted after training replaces the model's own
        try:
            model.prior = build_prior(prior_file.check_kind(held["kind"]), dict(held["settings"]),
                                      run_data_shape(cfg.train, folder), cfg.model.latent_dim)
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{folder / FOLDER_CONFIG}: garbled prior entry") from None
    try:
        tensors = load(data[FOLDER_MODEL])
        tensors.update({f"prior.{k}": v for k, v in load(data[FOLDER_PRIOR]).items()})
    except Exception as exc:  # checked bytes that are still no safetensors file: written by something else
        raise UserError(f"{folder}: not readable safetensors files ({first_line(exc)})") from None
    require_finite(tensors, folder, "these weights cannot be used (export the run again)")
    load_checked_tensors(model, tensors, list(config["without"]), folder)
    check = getattr(model.prior, "check", None)  # the GMM's covariances
    if check is not None:
        check()
    return model.to(device).eval(), cfg


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / FOLDER_CONFIG
    try:
        config = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"cannot load {path}: not a JSON file ({first_line(exc)})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise UserError(f"{path} is not the config of a flexae pretrained folder (format {FORMAT!r})")
    if int(config.get("format_version", 0)) > FORMAT_VERSION:
        raise UserError(f"{path} was written by a newer flexae (format version {config.get('format_version')}); "
                        f"upgrade flexae")
    files = config.get("files")
    needed = {FOLDER_MODEL, FOLDER_PRIOR}
    if not isinstance(files, dict) or not needed <= set(files) or not isinstance(config.get("prior"), dict) \
            or not isinstance(config.get("without"), list) or not isinstance(config.get("run_config"), dict):
        raise UserError(f"{path}: garbled config (files, prior, without, run_config)")
    check_versions(config.get("versions"), path)
    return config


def _checked_bytes(folder: Path, name: str, digest: Any) -> bytes:
    if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
        raise UserError(f"{folder / FOLDER_CONFIG} names an unexpected file {name!r}")
    path = folder / name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot load {path} ({first_line(exc)}); the folder is incomplete: export it again") from None
    if hashlib.sha256(data).hexdigest() != digest:
        raise UserError(f"{path} does not match its checksum in {FOLDER_CONFIG} (changed or replaced since it was "
                        f"exported); refused: export the run again")
    return data


# --- the Hub (optional) -------------------------------------------------------------------------

def _hub() -> Any:
    try:
        import huggingface_hub
    except ImportError:
        raise UserError("the Hugging Face Hub needs the optional package huggingface_hub: "
                        "pip install 'flexae[hub]' (a local folder loads without it)") from None
    return huggingface_hub


def _fetch(repo_id: str, revision: str | None) -> Path:
    if repo_id.count("/") != 1 or any(not part for part in repo_id.split("/")):
        raise UserError(f"{repo_id}: neither a folder nor a Hub repository id (owner/name)")
    hub = _hub()
    try:
        return Path(hub.snapshot_download(repo_id, revision=revision))
    except Exception as exc:  # offline, no such repository, no access
        raise UserError(f"cannot fetch {repo_id} from the Hugging Face Hub ({first_line(exc)})") from None


def push(run_dir: str | Path, repo_id: str, prior: str = prior_file.OWN, private: bool = False,
         trust_code: bool = False) -> str:
    """Export the run as a pretrained folder and upload it to the Hub repository `repo_id`
    (created if needed; the token is huggingface_hub's own login). Returns the repository's URL."""
    hub = _hub()
    with tempfile.TemporaryDirectory() as tmp:
        folder = export_folder(run_dir, Path(tmp) / "model", prior, trust_code=trust_code)
        try:
            api = hub.HfApi()
            url = api.create_repo(repo_id, private=private, exist_ok=True)
            api.upload_folder(folder_path=str(folder), repo_id=repo_id,
                              commit_message=f"flexae export of {Path(run_dir).name} (prior {prior})")
        except Exception as exc:  # offline, not logged in, no write access
            raise UserError(f"cannot upload to {repo_id} on the Hugging Face Hub ({first_line(exc)})") from None
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return str(url)


__all__ = ["export_folder", "from_pretrained", "load_folder", "push", "model_card", "is_pretrained_folder"]
