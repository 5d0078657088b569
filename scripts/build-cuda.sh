#!/usr/bin/env bash
# Compiles and links the addon against a CUDA LibTorch into build-cuda/ (the CUDA variant), so that a CUDA
# build error fails CI on machines without a GPU. Default LibTorch: torch==2.14.1 (CUDA 13) with
# --no-deps in .venv-cuda (headers and libraries are enough to compile and link), plus NVRTC, which
# torch's CMake config links. Needs nvcc; set LIBTORCH_CUDA to use another CUDA LibTorch root.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvcc >/dev/null; then
  echo "build-cuda: no nvcc on PATH; skipping the CUDA variant"
  exit 0
fi
root="${LIBTORCH_CUDA:-}"
if [ -z "$root" ]; then
  spec="${SEMISEG_CUDA_TORCH_SPEC:-torch==2.14.1}"
  mapfile -t indexes < <(python3 -m pip config list 2>/dev/null | grep -o "file:[^' ]*" || true)
  pip_opts=()
  if [ "${#indexes[@]}" -gt 0 ]; then
    pip_opts+=(--index-url "${indexes[0]}")
    for extra in "${indexes[@]:1}"; do pip_opts+=(--extra-index-url "$extra"); done
  fi
  if ! [ -f .venv-cuda/lib/python3*/site-packages/torch/lib/libc10_cuda.so ] 2>/dev/null; then
    echo "build-cuda: installing $spec (no deps) and NVRTC into .venv-cuda"
    python3 -m venv .venv-cuda
    .venv-cuda/bin/python3 -m pip install -q --no-deps "${pip_opts[@]}" "$spec" nvidia-cuda-nvrtc
  fi
  # nccl.h for the NCCL backend: the nvidia-nccl wheel at the version this torch requires
  nccl=$(.venv-cuda/bin/python3 -c "import importlib.metadata as m; print(next((r.split(';')[0].strip() for r in m.requires('torch') or [] if r.startswith('nvidia-nccl')), ''))")
  if [ -n "$nccl" ] && ! [ -f .venv-cuda/lib/python3*/site-packages/nvidia/nccl/include/nccl.h ] 2>/dev/null; then
    echo "build-cuda: installing $nccl (no deps; its nccl.h) into .venv-cuda"
    .venv-cuda/bin/python3 -m pip install -q --no-deps "${pip_opts[@]}" "$nccl" || echo "build-cuda: no $nccl: CUDA tensors will be all-reduced over Gloo"
  fi
  # ProcessGroupNCCL.hpp includes ATen/cuda/CUDAContext.h, which wants the cuSPARSE, cuBLAS and cuSOLVER
  # headers: only their include/ folders are taken from the wheels (headers are enough to compile).
  site=$(echo "$PWD"/.venv-cuda/lib/python3*/site-packages)
  if ! [ -f "$site/nvidia/cu13/include/cusparse.h" ] || ! [ -f "$site/nvidia/cu13/include/cublas_v2.h" ] || ! [ -f "$site/nvidia/cu13/include/cusolverDn.h" ]; then
    echo "build-cuda: extracting the cuSPARSE, cuBLAS and cuSOLVER headers into .venv-cuda"
    tmp=$(mktemp -d)
    if python3 -m pip download -q --no-deps "${pip_opts[@]}" -d "$tmp" nvidia-cusparse nvidia-cublas nvidia-cusolver; then
      for w in "$tmp"/*.whl; do unzip -q -o "$w" 'nvidia/*/include/*' -d "$site" || true; done
    else
      echo "build-cuda: no cuSPARSE / cuBLAS / cuSOLVER wheels: the NCCL backend will not be built"
    fi
    rm -rf "$tmp"
  fi
  root=$(echo "$PWD"/.venv-cuda/lib/python3*/site-packages/torch)
fi
jobs="${SEMISEG_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}"
TORCH_ROOT="$root" LIBTORCH="" npx --no-install cmake-js build --log-level warn --out build-cuda --parallel "$jobs"
if ! readelf -d build-cuda/Release/semiseg.node | grep -q "libtorch_cuda.so"; then
  echo "build-cuda: the CUDA variant does not link libtorch_cuda.so" >&2
  exit 1
fi
echo "build-cuda: build-cuda/Release/semiseg.node links libtorch_cuda.so ($root)"
