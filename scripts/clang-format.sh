#!/usr/bin/env bash
# clang-format over cpp/ and binding/ (C++ and CUDA): --check fails on any difference, --fix rewrites.
set -euo pipefail
cd "$(dirname "$0")/.."
cf="${CLANG_FORMAT:-}"
if [ -z "$cf" ]; then
  if [ -x .venv/bin/clang-format ]; then cf=.venv/bin/clang-format; else cf=$(command -v clang-format || true); fi
fi
if [ -z "$cf" ]; then
  echo "clang-format not found: run 'npm run setup' (installs it into .venv) or set CLANG_FORMAT" >&2
  exit 1
fi
mapfile -t files < <(git ls-files -co --exclude-standard 'cpp/*.h' 'cpp/*.cpp' 'cpp/*.cu' 'cpp/*.cuh' 'binding/*.h' 'binding/*.cpp')
[ "${#files[@]}" -gt 0 ] || exit 0
case "${1:---check}" in
  --fix) "$cf" -i "${files[@]}" ;;
  --check) "$cf" --dry-run --Werror "${files[@]}" && echo "clang-format: ${#files[@]} files clean" ;;
  *) echo "usage: $0 [--check|--fix]" >&2; exit 2 ;;
esac
