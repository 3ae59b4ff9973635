#!/usr/bin/env bash
# The GPU checks of CUDA-graph training, and FID on the GPU, as one command:
#
#   bash benchmarks/gpu.sh prepare DATA_DIR NAIVE_SCRIPT   # here: MNIST, the yardstick, compact weights into .gpu/
#   bash benchmarks/gpu.sh [--quick] [--budget-s S]        # on the GPU machine: tests, then the tables
#
# DATA_DIR holds mnist/ (the IDX .gz files); NAIVE_SCRIPT is the naive single-file transcription
# of one FlexAE-SR iteration. prepare also writes .gpu/inception-fp16.safetensors (`flexae metrics
# compact-weights`, 44 MB: the 91 MB offline weights do not fit the 64 MiB a working tree may take
# to the GPU machine) and fails if the tracked files and .gpu/ together exceed 64 MiB. .gpu/ is
# git-ignored; carry it to the GPU machine.
#
# gpu_bench.py runs in --budget-s seconds (default 400): after the step tables, the loop and the
# quality runs, the rest trains FlexAE-SR on MNIST (default config) as long as it fits (--quick
# leaves the quality runs out, so the long run gets their time), then scores FID on the GPU with
# the compact weights: the long run's 10k samples in both modes, the quality runs' 5000 each. The
# tests (at most 150 s) and the default budget fit one 10-minute command. The long run's folder is
# gpu-runs/long (git-ignored, never carried): a second call on the same, still warm machine
# resumes it; a fresh machine starts it again.
#
# Results go to $OUT (or gpu-results/): gpu_bench.json, gpu_bench.log, pytest.log,
# samples_{fp32,bf16,bn-authors}.npz, long_samples.png, long_losses.png (8 files).
set -uo pipefail
cd "$(dirname "$0")/.."
LIMIT=$((64 * 1024 * 1024))  # what a working tree may take to the GPU machine

if [[ "${1:-}" == "prepare" ]]; then
    mkdir -p .gpu/data
    cp -r "$2/mnist" .gpu/data/ && cp "$3" .gpu/naive_flexae_sr.py || exit 1
    PYTHONPATH=src "${PYTHON:-python3}" -m flexae metrics compact-weights .gpu/inception-fp16.safetensors || exit 1
    du -sh .gpu
    # What travels: tracked and untracked-but-not-ignored files, and the carried .gpu/.
    tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
    total=$((tree + $(du -sb .gpu | cut -f1)))
    echo "working tree + .gpu: $total bytes (limit $LIMIT)"
    if ((total > LIMIT)); then
        echo "ERROR: $total bytes exceed the $LIMIT the GPU machine accepts; leave something out of .gpu/" >&2
        exit 1
    fi
    exit
fi

# The budget of gpu_bench.py (its --budget-s, default 400), so the timeout below follows it.
BUDGET=400
for ((i = 1; i <= $#; i++)); do
    if [[ "${!i}" == "--budget-s" ]]; then j=$((i + 1)); BUDGET="${!j%.*}"; fi
done

OUT_DIR="${OUT:-gpu-results}"
mkdir -p "$OUT_DIR"
export PYTHONPATH=src PYTHONUNBUFFERED=1 FLEXAE_DATA_DIR="$PWD/.gpu/data"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

echo "== GPU tests (tests/test_cuda_graphs.py)"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_cuda_graphs.py 2>&1 | tee "$OUT_DIR/pytest.log" | tail -20

echo "== benchmarks/gpu_bench.py"
timeout $((BUDGET + 30)) python3 benchmarks/gpu_bench.py --out "$OUT_DIR" --naive .gpu/naive_flexae_sr.py \
    --data-dir .gpu/data --long-run gpu-runs/long --weights .gpu/inception-fp16.safetensors "$@" 2>&1 \
    | tee "$OUT_DIR/gpu_bench.log"
rm -rf "$OUT_DIR/loop" "$OUT_DIR"/quality_*  # run folders stay behind (the file limit of the way back)
