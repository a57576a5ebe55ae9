#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: build kernforge with KF_CUDA=ON in place, run the GEMM tests (CUDA
# and CPU) and the GPU benchmark (tiled kernel vs cuBLAS). Usage: bash benchmarks/gpu_check.sh [outdir]
# Needs nvcc, CMake, ninja, a Python with numpy, pybind11 and pytest (PyTorch with CUDA for the
# cuBLAS rows). Eigen: set EIGEN_PREFIX to a prefix holding share/eigen3/cmake if no cmeel-eigen is installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUTDIR=${1:-results-gpu}
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv
extra=()
[ -n "${EIGEN_PREFIX:-}" ] && extra+=(-DCMAKE_PREFIX_PATH="$EIGEN_PREFIX")
cmake -S . -B build/gpu -G Ninja -DKF_BUILD_PYTHON=ON -DKF_INPLACE=ON -DKF_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" -DPython_EXECUTABLE="$(command -v "$PY")" "${extra[@]}" >/dev/null
cmake --build build/gpu -j"$(nproc)"
export PYTHONPATH=$PWD/python
"$PY" -c "import kernforge as kf; kf.show_config(); assert kf.gemm.cuda_available(), 'no GPU visible'"
"$PY" -m pytest -q -p no:cacheprovider -rs tests/test_gemm_cuda.py tests/test_gemm.py tests/test_foundation.py
"$PY" benchmarks/run.py --only gemm_cuda --out "$OUTDIR"
