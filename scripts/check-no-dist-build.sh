#!/usr/bin/env bash
# Proves that semiseg builds and works against a LibTorch without c10d: the torch root of this checkout
# is mirrored (symlinks) with include/torch/csrc/distributed left out, the addon is built against it
# into build-nodist/, and the script checks that configuring said why distributed training is disabled,
# that the addon loads, and that the distributed API reports the reason instead of failing to load.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${LIBTORCH:-}" ] && [ -z "${TORCH_ROOT:-}" ] && [ -x .venv/bin/python3 ]; then export PATH="$PWD/.venv/bin:$PATH"; fi
real="${TORCH_ROOT:-$(python3 -c "import os, torch; print(os.path.dirname(torch.__file__))")}"
fake="$PWD/build-nodist/torch"
rm -rf "$fake"
mkdir -p "$fake/include/torch/csrc"
mirror() { # mirror SRC DST SKIP: symlinks to SRC's entries in DST, except SKIP
  for e in "$1"/*; do [ "$(basename "$e")" = "$3" ] || ln -s "$e" "$2/"; done
}
mirror "$real" "$fake" include
mirror "$real/include" "$fake/include" torch
mirror "$real/include/torch" "$fake/include/torch" csrc
mirror "$real/include/torch/csrc" "$fake/include/torch/csrc" distributed
jobs="${SEMISEG_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}"
log=$(TORCH_ROOT="$fake" LIBTORCH="" npx --no-install cmake-js configure --out build-nodist/build 2>&1) || {
  echo "$log"
  exit 1
}
TORCH_ROOT="$fake" LIBTORCH="" npx --no-install cmake-js build --log-level warn --out build-nodist/build --parallel "$jobs"
expected="distributed training is disabled: the LibTorch at $fake has no c10d headers"
if ! tr '\n' ' ' <<<"$log" | tr -s ' ' | grep -qF "$expected"; then # CMake wraps its warnings
  echo "check-no-dist-build: configuring did not say '$expected'" >&2
  exit 1
fi
node -e '
  const m = require(process.argv[1]);
  const info = m.distInfo();
  if (info.available || !/has no c10d headers/.test(info.reason)) throw new Error("distInfo: " + JSON.stringify(info));
  m.distConnect({ host: "127.0.0.1", port: 29500, rank: 0, worldSize: 1, timeoutMs: 1000 }).then(
    () => { throw new Error("distConnect resolved without a distributed engine"); },
    (e) => {
      if (!/distributed training is not available: the LibTorch at .* has no c10d headers/.test(e.message)) throw e;
      const t = m.fromData(new Float32Array([1, 2, 3]), [3], "float32", "float32", "cpu");
      console.log("check-no-dist-build: ok: the addon builds and loads without c10d; " + info.reason + "; tensor ops work (" + t.shape() + ")");
    });
' "$PWD/build-nodist/build/Release/semiseg.node"
