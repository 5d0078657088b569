#!/usr/bin/env bash
# Builds the native addon (build/Release/semiseg.node) with cmake-js, offline, incrementally.
# LibTorch comes from LIBTORCH, TORCH_ROOT or the python3 on PATH (this project's .venv first when it exists).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${LIBTORCH:-}" ] && [ -z "${TORCH_ROOT:-}" ] && [ -x .venv/bin/python3 ]; then
  export PATH="$PWD/.venv/bin:$PATH"
fi
jobs="${SEMISEG_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}"
exec npx --no-install cmake-js build --log-level warn --parallel "$jobs" "$@"
