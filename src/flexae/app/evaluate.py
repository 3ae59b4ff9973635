"""`flexae eval RUN_DIR`: the paper's evaluation protocol for one trained image model.

Generation FID / precision-recall: n generated images vs n test images; reconstruction FID: the
reconstructions of those n test images vs the same test images; PMS / IMS in the Table 4 layout.
Everything is delegated to `flexae.evaluation.protocol.evaluate_generator`; this module only loads the run,
its data and the Inception network, and writes `eval.json` and `eval.md` into the run folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import torch

from flexae.config import INCEPTION_BATCH_SIZE
from flexae.data import as_float, load_for_config
from flexae.devices import resolve_device
from flexae.eta import Notice
from flexae.errors import UserError
from flexae.evaluation.protocol import METRICS, check_metrics, evaluate_generator, results_markdown
from flexae.app.build import read_model
from flexae.runs.folder import checkpoint_path
from flexae.runs.layout import CHECKPOINT_NAME, CONFIG_NAME, EVAL_JSON, EVAL_MD, METRICS_NAME
from flexae.runs.run_folder import RunFolder
from flexae.trust import allowing_code


def _fingerprint(paths: tuple[Path, ...]) -> tuple:
    """What changes when a file is rewritten (flexae writes by rename: a new inode) or edited."""
    def one(path: Path) -> tuple:
        try:
            info = path.stat()
        except OSError:
            return ()
        return (info.st_ino, info.st_size, info.st_mtime_ns)
    return tuple(one(p) for p in paths)


def inception_images(n: int, metrics: Iterable[str]) -> int:
    """Images the protocol passes through Inception: n test and n generated (fid, prd, ims), n
    reconstructions (fid), 2n training images (ims). Cached test features make it fewer."""
    metrics = set(metrics)
    return (2 * n if {"fid", "prd", "ims"} & metrics else 0) + (n if "fid" in metrics else 0) + \
        (2 * n if "ims" in metrics else 0)


def _inception_notice(n: int, metrics: Iterable[str], device: torch.device, progress: bool) -> Notice:
    """The note of how long the Inception passes take, timed on the first batch."""
    total = inception_images(n, metrics)
    return Notice(f"eval ({total} Inception passes: n = {n}, metrics {','.join(metrics)})", total,
                  "pass --n N for fewer images (FID needs >= 2048) or --metrics fid", str(device),
                  unit="image", warmup=0, max_units=1, enabled=progress)


def evaluate_run(run_dir: str | Path, n: int = 10_000, metrics: Iterable[str] = METRICS,
                 device: str = "auto", data_dir: str | None = None, batch_size: int = INCEPTION_BATCH_SIZE,
                 precision: str = "auto", weights: str | None = None, seed: int = 0,
                 progress: bool = True, mode: str = "pytorch-fid", prior: str = "own",
                 trust_code: bool = False) -> dict:
    """Evaluate the model in `run_dir`; returns the results and writes eval.json / eval.md there
    (eval-best.json / eval-best.md for `RUN_DIR/best.pt`). ``mode``: Inception preprocessing,
    "pytorch-fid" or "tf" (flexae.metrics.inception.preprocess). ``prior``: "own" (the run's) or
    the name of a prior fitted after training ("fitted": prior.pt; `flexae fit-prior --name`);
    recorded in the results as "prior". ``trust_code``:
    as for `load_run`."""
    from flexae.metrics.inception import check_mode, load_extractor

    source = Path(run_dir)  # a run folder, or a checkpoint file in one (RUN_DIR/best.pt)
    run_dir = source.parent if source.is_file() else source
    json_name, md_name = ((EVAL_JSON, EVAL_MD) if source == run_dir or source.name == CHECKPOINT_NAME
                          else (f"eval-{source.stem}.json", f"eval-{source.stem}.md"))
    metrics = check_metrics(metrics)  # argument errors first: loading the run and data takes a while
    check_mode(mode)
    torch_device = resolve_device(device)
    path = checkpoint_path(source)
    watched = (path, run_dir / CONFIG_NAME)  # a training run or --overwrite rewrites them
    before = _fingerprint(watched)
    with allowing_code(trust_code):
        model, cfg, state = read_model(path, torch_device, prior=prior)
    model = model.to(torch_device).eval()
    data = load_for_config(cfg.train, data_dir)
    if not data.is_image:
        raise UserError(f"flexae eval computes image metrics; {cfg.train.dataset} runs report FD and "
                        f"latent W1 in {run_dir / METRICS_NAME}")
    extractor = (load_extractor(weights, device=torch_device, batch_size=batch_size, precision=precision,
                                progress=progress, mode=mode)  # type: ignore[arg-type]
                 if {"fid", "prd", "ims"} & set(metrics) else None)  # PMS alone compares pixels
    if extractor is not None:
        extractor.notice = _inception_notice(n, metrics, torch_device, progress)
    gen = torch.Generator(device=torch_device).manual_seed(seed)
    train = None
    if {"pms", "ims"} & set(metrics):  # Table 4 needs 2n training images, drawn at random
        pick = torch.randperm(data.train.shape[0], generator=torch.Generator().manual_seed(seed))[:2 * n]
        train = as_float(data.train[pick])
    results = evaluate_generator(
        lambda k: model.generate(k, gen), lambda x: model.reconstruct(x.to(torch_device)),
        as_float(data.test), train, n=n, metrics=metrics, extractor=extractor,
        device=torch_device, batch_size=batch_size, seed=seed)
    results = {"run": str(source), "model": cfg.model.name, "dataset": cfg.train.dataset, "prior": prior,
               "checkpoint": path.name, "step": int(state["step"]), **results}
    if _fingerprint(watched) != before:  # the results describe a model that is no longer the run's
        raise UserError(f"{run_dir} changed while it was evaluated ({path.name} or {CONFIG_NAME} was rewritten, "
                        f"e.g. by training or --overwrite); {json_name} not written: evaluate it again")
    run = RunFolder(run_dir)
    run.sweep_stale()
    run.save_text(json_name, json.dumps(results, indent=2) + "\n")
    run.save_text(md_name, results_markdown(results, label=cfg.model.name))
    return results
