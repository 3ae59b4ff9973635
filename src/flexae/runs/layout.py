"""What a run folder holds (and, at the end, what a folder written by `flexae export --format
folder` holds): the one list of file names, and which of them a run owns.

    config.json      the resolved RunConfig plus library/torch/Python versions, device, processes
    log.jsonl        one JSON object per logged iteration (losses) or evaluation (metrics)
    checkpoint.pt    config, step, model and optimizer states, RNG states, versions
    best.pt          image runs evaluated while training (train.eval_images): the checkpoint with
                     the best train.best_metric so far (load it with `RUN_DIR/best.pt` anywhere a
                     run is given, or load_run(RUN_DIR, checkpoint="best"))
    metrics.json     the final evaluation of a synthetic run
    sampler.pt       the fitted ex-post sampler of a baseline that has one (flexae.app.fit_sampler)
    prior.pt         a FlexAE prior learned after training on the frozen codes (`flexae fit-prior`);
                     the prior named "fitted" (flexae.runs.prior_file)
    priors/NAME.pt   the other priors fitted after training, one file per name (`fit-prior --name`)
    compare-priors.json/.md, grids/priors-NAME.png   `flexae compare-priors` results and sample grids
    eval.json/.md    `flexae eval` results
    grids/           image runs: samples-<step>.png and reconstructions-<step>.png
    tensorboard/     with train.tensorboard: event files of the logged numbers and the grids
    .lock            held by the process writing the run (flexae.runs.folder.RunFolderLock)
"""

CONFIG_NAME = "config.json"
LOG_NAME = "log.jsonl"
CHECKPOINT_NAME = "checkpoint.pt"
BEST_NAME = "best.pt"
METRICS_NAME = "metrics.json"
SAMPLER_NAME = "sampler.pt"
PRIOR_NAME = "prior.pt"
PRIORS_DIR = "priors"
COMPARE_JSON, COMPARE_MD = "compare-priors.json", "compare-priors.md"
EVAL_JSON, EVAL_MD = "eval.json", "eval.md"
EVAL_PATTERN = "eval*.json"  # eval.json and eval-<checkpoint>.json (`flexae eval RUN_DIR/best.pt`)
GRIDS_DIR, TENSORBOARD_DIR = "grids", "tensorboard"
LOCK_NAME = ".lock"

OWNED_FILES = (CONFIG_NAME, LOG_NAME, CHECKPOINT_NAME, BEST_NAME, METRICS_NAME, SAMPLER_NAME, PRIOR_NAME, EVAL_JSON, EVAL_MD,
               COMPARE_JSON, COMPARE_MD,
               "eval-best.json", "eval-best.md")


def prior_file_name(name: str) -> str:
    """The run-relative file of the fitted prior `name` (checked by flexae.runs.prior_file):
    "fitted", what `flexae fit-prior RUN` writes and older runs have, is prior.pt."""
    return PRIOR_NAME if name == "fitted" else f"{PRIORS_DIR}/{name}.pt"


def prior_name_of(file_name: str) -> str | None:
    """The prior name of a file name inside PRIORS_DIR ("gmm.pt" -> "gmm"), None for other files."""
    return file_name[:-3] if file_name.endswith(".pt") else None


def prior_grid_name(name: str) -> str:
    """The sample grid of prior `name` written by `flexae compare-priors`, under GRIDS_DIR."""
    return f"{GRIDS_DIR}/priors-{name}.png"


# A published model folder (`flexae export --format folder`, flexae.app.pretrained): config.json
# (its own layout: format, the run's config, the chosen prior, checksums of the other files),
# model.safetensors (encoder, decoder), prior.safetensors (the chosen prior or ex-post sampler),
# eval.json (evaluations with their provenance), README.md (the model card).
FOLDER_MODEL, FOLDER_PRIOR, FOLDER_CARD = "model.safetensors", "prior.safetensors", "README.md"
FOLDER_CONFIG, FOLDER_EVAL = CONFIG_NAME, EVAL_JSON
