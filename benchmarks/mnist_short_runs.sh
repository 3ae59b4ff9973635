#!/usr/bin/env bash
# Short real-MNIST runs measured on a CPU: a WAE (FlexAE with its prior fixed to N(0, I)) and a
# plain AE (ae-gmm) trained for the same STEPS iterations with the same seed, then `flexae
# compare-priors` at n generated vs n MNIST test images (docs/usage.md "Which prior for these
# codes?"); then Tolstikhin et al.'s WAE-GAN for as many iterations, its own N(0, I) prior scored
# the same way beside the WAE's own row (docs/baselines.md, `wae` vs `wae-gan`).
#
#     bash benchmarks/mnist_short_runs.sh OUT DATA_DIR [STEPS=300] [N=2048] [FIT_STEPS=5000]
#
# FIT_STEPS: iterations of each prior fit (compare-priors --steps; the library's default 5000).
#
# Tables land in OUT/NAME/compare-priors.md (and .json); sample grids in OUT/NAME/grids/.
# Re-running resumes: finished runs are reused (and fits and FIDs are done again).
# About 2 hours on a 2-core AVX2 CPU, most of it Inception (about 5 images/s there).
set -euo pipefail
out=${1:?OUT}; data=${2:?DATA_DIR}; steps=${3:-300}; n=${4:-2048}; fit_steps=${5:-5000}
flexae() { python -m flexae "$@"; }
train() {  # MODEL: train it for STEPS iterations, or resume an interrupted run up to STEPS
  if [ -f "$out/$1/checkpoint.pt" ]; then
    flexae train --resume "$out/$1" --steps "$steps" --data-dir "$data" --quiet
  else
    flexae train --model "$1" --dataset mnist --steps "$steps" --seed 0 --data-dir "$data" --out "$out/$1" --quiet
  fi
}
kinds=adversarial,gmm,flow-matching,2s-vae
train wae
train ae-gmm
flexae compare-priors "$out/wae" --kinds "own,$kinds" --n "$n" --steps "$fit_steps" --data-dir "$data" --quiet
flexae compare-priors "$out/ae-gmm" --kinds "own,$kinds" --n "$n" --steps "$fit_steps" --data-dir "$data" --quiet
train wae-gan
flexae compare-priors "$out/wae-gan" --kinds own --n "$n" --data-dir "$data" --quiet
