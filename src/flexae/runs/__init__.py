"""The run folder's format, and nothing above it, opened through one door: `RunFolder(path)`
(`run_folder`). Behind it: the file names (`layout`), the lock and `--overwrite` (`folder`),
checkpoints (`checkpoint`), the log (`log`), finished / resumable (`status`), and the one sidecar
format (`sidecar`) of a trained run's `sampler.pt` (`sampler_file`) and fitted priors
(`prior_file`). This package imports only the ground floor (config, files, errors, finite, version)
and torch; the commands that open a run and build a model from it (train, load, evaluate,
fit-sampler, fit-prior, export) are `flexae.app`.
"""
