#!/usr/bin/env bash
# The gloo ABI check of the distributed build (CMakeLists.txt).
#   check-gloo-abi.sh --exports LIBTORCH_CPU   exit 0 when the library exports ProcessGroupGloo and TCPStore
#   check-gloo-abi.sh OBJECT LIBTORCH_CPU      fail unless OBJECT (cpp/dist/gloo_backend.cpp's object)
#     - defines no symbol of gloo's namespace (no inline gloo code from the build machine's headers is
#       compiled in, where it could disagree with the gloo inside LibTorch), and
#     - references only gloo and ProcessGroupGloo symbols that LIBTORCH_CPU exports.
set -euo pipefail
exports() { nm -D --defined-only "$1" | awk '{print $NF}'; }
if [ "${1:-}" = "--exports" ]; then
  syms=$(exports "$2")
  grep -q '^_ZN4c10d16ProcessGroupGlooC[12]E' <<<"$syms" && grep -q '^_ZN4c10d8TCPStoreC[12]E' <<<"$syms"
  exit $?
fi
obj=$1
lib=$2
# gloo's namespace appears in mangled names as "4gloo" (as a namespace or in a type of the signature).
defined=$(nm --defined-only "$obj" | awk '$2 ~ /^[TtWwVvDdBbRr]$/ {print $3}' | grep '4gloo' || true)
if [ -n "$defined" ]; then
  echo "check-gloo-abi: $obj defines gloo symbols (inline code from the gloo headers of this machine):" >&2
  c++filt <<<"$defined" >&2
  exit 1
fi
wanted=$(nm --undefined-only "$obj" | awk '{print $NF}' | grep -E '4gloo|ProcessGroupGloo' || true)
if [ -z "$wanted" ]; then
  echo "check-gloo-abi: $obj references no ProcessGroupGloo symbol; is it the gloo door?" >&2
  exit 1
fi
missing=$(comm -23 <(sort -u <<<"$wanted") <(exports "$lib" | sort -u))
if [ -n "$missing" ]; then
  echo "check-gloo-abi: $obj needs symbols that $lib does not export (gloo headers of another version?):" >&2
  c++filt <<<"$missing" >&2
  exit 1
fi
echo "check-gloo-abi: ok ($(wc -l <<<"$wanted") gloo / ProcessGroupGloo symbols, all from $(basename "$lib"); none defined here)"
