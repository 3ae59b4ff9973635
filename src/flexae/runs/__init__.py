"""The run folder's format, and nothing above it: the file names (`layout`), the lock and
`--overwrite` (`folder`), checkpoints (`checkpoint`), the log (`log`), and the two sidecar files of
a trained run, `sampler.pt` (`sampler_file`) and `prior.pt` (`prior_file`). This package imports
only the ground floor (config, files, errors, version) and torch; the commands that open a run and
build a model from it (train, load, evaluate, fit-sampler, fit-prior, export) are `flexae.app`.
"""
