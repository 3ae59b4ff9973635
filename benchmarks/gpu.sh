#!/usr/bin/env bash
# The GPU checks of CUDA-graph training, as one command (about 8 minutes on one H100 / H200):
#
#   bash benchmarks/gpu.sh prepare DATA_DIR NAIVE_SCRIPT   # here: copies MNIST and the yardstick into .gpu/
#   bash benchmarks/gpu.sh [--quick]                       # on the GPU machine: tests, then the tables
#
# DATA_DIR holds mnist/ (the IDX .gz files); NAIVE_SCRIPT is the naive single-file transcription
# of one FlexAE-SR iteration. .gpu/ is git-ignored; carry it to the GPU machine. Results go to
# $OUT (or gpu-results/): gpu_bench.json, gpu_bench.log, pytest.log, samples_{fp32,bf16,bn-authors}.npz
# (6 files). Score the samples where the Inception weights are, e.g. on the CPU:
#   flexae metrics fid OUT/samples_fp32.npz mnist:test --n 2048   (and bf16, bn-authors)
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "prepare" ]]; then
    mkdir -p .gpu/data
    cp -r "$2/mnist" .gpu/data/ && cp "$3" .gpu/naive_flexae_sr.py && du -sh .gpu
    exit
fi

OUT_DIR="${OUT:-gpu-results}"
mkdir -p "$OUT_DIR"
export PYTHONPATH=src PYTHONUNBUFFERED=1 FLEXAE_DATA_DIR="$PWD/.gpu/data"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

echo "== GPU tests (tests/test_cuda_graphs.py)"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_cuda_graphs.py 2>&1 | tee "$OUT_DIR/pytest.log" | tail -20

echo "== benchmarks/gpu_bench.py"
timeout 420 python3 benchmarks/gpu_bench.py --out "$OUT_DIR" --naive .gpu/naive_flexae_sr.py \
    --data-dir .gpu/data "$@" 2>&1 | tee "$OUT_DIR/gpu_bench.log"
rm -rf "$OUT_DIR/loop" "$OUT_DIR"/quality_*  # run folders stay behind (the file limit of the way back)
