"""The commands that open a run folder and build something from it, one module each, above the
model registry: `train` (train / resume a run; `previews`, `image_eval` are its helpers),
`load` (`load_run`: a trained model for use), `build` (a model from a run's config and
checkpoint), `evaluate` (`flexae eval`), `fit_sampler` (`flexae fit-sampler`), `fit_prior`
(`flexae fit-prior`) and `export` (published weights). The CLI and the experiments call these;
`flexae.runs` below them is the folder's format only.

    from flexae.app.load import load_run
    model, cfg = load_run("runs/flexae-5d")   # eval mode, rebuilt from the saved config
"""
