#!/usr/bin/env bash
# Idempotent set-up of a fresh checkout, on a machine with Node 20, python3, cmake and g++:
#   1. .venv with torch (the LibTorch the addon builds against, and the PyTorch reference), numpy, scipy,
#      h5py and clang-format, unless LIBTORCH or TORCH_ROOT names a LibTorch already;
#   2. npm packages;  3. the native addon (incremental);  4. the TypeScript build.
# --quiet prints one line per step that had work to do.
set -euo pipefail
cd "$(dirname "$0")/.."
quiet=0
[ "${1:-}" = "--quiet" ] && quiet=1
say() { echo "semiseg setup: $*"; }

TORCH_SPEC="${SEMISEG_TORCH_SPEC:-torch==2.13.0+cpu}"
PY_PACKAGES=(numpy scipy h5py safetensors scikit-image nibabel clang-format pydicom imagecodecs)

# pip options: this machine image keeps wheels in local indexes; pointing --index-url at the first one
# skips retries of an unreachable default index. Elsewhere pip's own configuration is used.
pip_opts=()
local_index=$(python3 -m pip config list 2>/dev/null | sed -n "s/.*index-url='\(file:[^' ]*\).*/\1/p" | head -n 1)
[ -n "$local_index" ] && pip_opts+=(--index-url "$local_index")

if [ ! -x .venv/bin/python3 ] || ! .venv/bin/python3 -c "import torch, numpy, scipy, h5py, safetensors, skimage, nibabel, pydicom, imagecodecs" 2>/dev/null; then
  say "creating .venv with $TORCH_SPEC ${PY_PACKAGES[*]} (no network needed on this machine image)"
  python3 -m venv .venv
  .venv/bin/python3 -m pip install -q "${pip_opts[@]}" "$TORCH_SPEC" "${PY_PACKAGES[@]}"
fi

# Distributed training builds when gloo's headers are present (libgloo-dev; see CMakeLists.txt). As root
# with apt-get (CI, containers) they are installed here; otherwise the build says how and builds the rest.
if [ ! -f /usr/include/gloo/rendezvous/store.h ] && [ -z "${GLOO_INCLUDE_DIR:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing libgloo-dev (gloo's headers, for distributed training)"
    { apt-get install -y -q libgloo-dev >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q libgloo-dev >/dev/null; }; } ||
      say "could not install libgloo-dev: distributed training will be disabled"
  else
    say "no gloo headers: distributed training will be disabled (sudo apt-get install libgloo-dev, then npm run setup)"
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages"
  if [ "${CI:-}" = "true" ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
fi

if [ "$quiet" = 1 ]; then
  out=$(bash scripts/build-native.sh 2>&1) || { echo "$out"; exit 1; }
  echo "$out" | grep -q "Linking" && say "native addon rebuilt"
else
  say "building the native addon"
  bash scripts/build-native.sh
fi
npx --no-install tsc -p tsconfig.json
[ "$quiet" = 1 ] || say "done"
exit 0
