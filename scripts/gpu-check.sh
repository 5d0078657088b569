#!/usr/bin/env bash
# The GPU check of issue 20, in ONE device call of at most 10 minutes on a machine lent with a GPU (torch
# 2.11 + CUDA 13, nvcc, CMake and python3 there; no Node, no npm registry, no ../shared):
#   1. build the addon against the device's own torch (build-gpu/, CUDA kernels for sm_90),
#   2. the CUDA tests (every test file that runs CUDA cases, plus the precision tests),
#   3. the fused-op and whole-step benchmarks at the spec's full shapes against the PyTorch reference,
#      in float32 and bfloat16 (semiseg's mixed precision / torch.autocast),
#   4. a short BCP ACDC training (precision auto) with `semiseg evaluate` of its best checkpoint,
# writing everything to ONE results file, $OUT/gpu-check.json (and the log beside it).
#
# Here (no GPU needed):   bash scripts/gpu-check.sh --pack
#   puts what must travel under .carry/gpu-check/ (git-ignored): this machine's node binary (xz), the
#   node_modules the build, tests and benchmarks need (xz), the compiled dist/ (tsc first), and a small
#   ACDC subset from $SEMISEG_DATA (default ../shared/data): 3 labeled + 3 unlabeled patients' slices
#   and 4 validation volumes. Under 64 MiB together with the working tree.
# Then on the device (the run tool), as one call with timeout_s 600:
#   carry: [".carry/gpu-check"]   command: bash scripts/gpu-check.sh
# Without a GPU it stops at once, exit status 3, with the reason on stderr (test/gpu-check.test.ts).
# Budgets per stage (seconds, environment): GPU_CHECK_BUILD_S 270, GPU_CHECK_TEST_S 90,
# GPU_CHECK_BENCH_S 120, GPU_CHECK_TRAIN_S 75; a stage that runs out is recorded as timed out and the
# next one still runs.
set -uo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
pack="$root/.carry/gpu-check"

fail() {
  echo "gpu-check: $*" >&2
  exit 3
}

if [ "${1:-}" = "--pack" ]; then
  set -e
  data="${SEMISEG_DATA:-$root/../shared/data}"
  [ -f "$data/ACDC/train_slices.list" ] || fail "--pack: no ACDC data at $data/ACDC (set SEMISEG_DATA)"
  node_bin="${SEMISEG_NODE_BIN:-$(command -v node)}"
  [ -x "$node_bin" ] || fail "--pack: no node binary (set SEMISEG_NODE_BIN)"
  rm -rf "$pack" && mkdir -p "$pack/data/ACDC/data/slices"
  echo "gpu-check --pack: node $("$node_bin" --version) from $node_bin"
  xz -T0 -6 -c "$node_bin" >"$pack/node.xz"
  npx --no-install tsc -p tsconfig.json >/dev/null || true # emits dist/ even when another file has a type error
  [ -f dist/lib/index.js ] || fail "--pack: no dist/ (tsc failed)"
  tar -C "$root" -cf - dist | xz -T0 -6 >"$pack/dist.tar.xz"
  # everything but the linters, the documentation and the browser
  tar -C "$root" --exclude='node_modules/typescript' --exclude='node_modules/typedoc' --exclude='node_modules/@shikijs' \
    --exclude='node_modules/playwright-core' --exclude='node_modules/eslint' --exclude='node_modules/@eslint' \
    --exclude='node_modules/@typescript-eslint' --exclude='node_modules/typescript-eslint' --exclude='node_modules/.cache' \
    -cf - node_modules | xz -T0 -6 >"$pack/node_modules.tar.xz"
  # ACDC subset: the first 6 patients of train_slices.list (3 labeled, 3 unlabeled), 4 validation volumes
  patients=$(sed 's/_frame.*//' "$data/ACDC/train_slices.list" | awk '!seen[$0]++' | head -6)
  grep -F -f <(echo "$patients" | sed 's/$/_frame/') "$data/ACDC/train_slices.list" >"$pack/data/ACDC/train_slices.list"
  while read -r s; do cp "$data/ACDC/data/slices/$s.h5" "$pack/data/ACDC/data/slices/"; done <"$pack/data/ACDC/train_slices.list"
  head -4 "$data/ACDC/val.list" >"$pack/data/ACDC/val.list"
  while read -r v; do cp "$data/ACDC/data/$v.h5" "$pack/data/ACDC/data/"; done <"$pack/data/ACDC/val.list"
  for f in train.list test.list; do [ -f "$data/ACDC/$f" ] && cp "$data/ACDC/$f" "$pack/data/ACDC/"; done
  tar -C "$pack" -cf - data | xz -T0 -6 >"$pack/data.tar.xz" && rm -rf "$pack/data"
  du -sh "$pack"/* && echo "gpu-check --pack: $(du -sh "$pack" | cut -f1) in $pack (carry it: .carry/gpu-check)"
  exit 0
fi

# ---- preflight: fail fast where this cannot run ------------------------------------------------
command -v nvidia-smi >/dev/null 2>&1 || fail "no NVIDIA GPU here (nvidia-smi is not installed): run this on a machine lent with a GPU, see benchmarks/NOTES.md"
gpus=$(nvidia-smi -L 2>/dev/null) || fail "no NVIDIA GPU here (nvidia-smi -L failed): run this on a machine lent with a GPU"
[ -n "$gpus" ] || fail "no NVIDIA GPU here (nvidia-smi lists none)"
python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null ||
  fail "python3's torch sees no CUDA device (the build and the reference use it)"
command -v nvcc >/dev/null 2>&1 || fail "no nvcc on PATH (the CUDA kernels need it)"
[ -f "$pack/node.xz" ] && [ -f "$pack/node_modules.tar.xz" ] && [ -f "$pack/dist.tar.xz" ] ||
  fail "nothing carried in .carry/gpu-check: run 'bash scripts/gpu-check.sh --pack' first and carry .carry/gpu-check"

out="${OUT:-$root/gpu-check-out}"
mkdir -p "$out"
log="$out/gpu-check.log"
: >"$log"
work=/tmp/gpu-check
mkdir -p "$work/bin"
stages="$out/stages.tsv"
: >"$stages"
stage() { # stage NAME BUDGET_S COMMAND...: runs COMMAND under timeout, records its status and time
  local name=$1 budget=$2 status
  shift 2
  local t0=$SECONDS
  echo "=== $name (budget ${budget} s)" | tee -a "$log"
  timeout --kill-after=10 "$budget" "$@" >>"$log" 2>&1
  local rc=$?
  case $rc in
    0) status=ok ;;
    124 | 137) status="timed out after ${budget} s" ;;
    *) status="failed (exit $rc)" ;;
  esac
  printf '%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - t0))" >>"$stages"
  echo "=== $name: $status in $((SECONDS - t0)) s" | tee -a "$log"
}

# ---- unpack what travelled ----------------------------------------------------------------------
xz -dc "$pack/node.xz" >"$work/bin/node" && chmod +x "$work/bin/node"
export PATH="$work/bin:$PATH"
node --version >/dev/null 2>&1 || fail "the carried node binary does not run here"
[ -d node_modules/cmake-js ] || xz -dc "$pack/node_modules.tar.xz" | tar -C "$root" -xf -
[ -f dist/lib/index.js ] || xz -dc "$pack/dist.tar.xz" | tar -C "$root" -xf -
[ -f "$pack/data.tar.xz" ] && xz -dc "$pack/data.tar.xz" | tar -C "$work" -xf -
torch_root=$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))')
threads=$(nproc)

# ---- 1. build against the device's torch ----------------------------------------------------------
export TORCH_ROOT="$torch_root" SEMISEG_BUILD_JOBS="$threads" TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
stage build "${GPU_CHECK_BUILD_S:-270}" bash scripts/build-native.sh --CDCMAKE_CUDA_ARCHITECTURES=90
[ -f build/Release/semiseg.node ] || echo "gpu-check: the build made no addon; the next stages fail" | tee -a "$log"

# ---- 2. CUDA tests --------------------------------------------------------------------------------
cuda_tests=$(grep -l "cuda.isAvailable\|'cuda'" dist/test/*.test.js | tr '\n' ' ')
stage tests "${GPU_CHECK_TEST_S:-90}" node scripts/run-tests.mjs $cuda_tests dist/test/precision.test.js

# ---- 3. benchmarks at full shapes, float32 and bfloat16 -------------------------------------------
export SEMISEG_PYTHON=python3
stage bench-ops "$(((${GPU_CHECK_BENCH_S:-120}) / 3))" node dist/benchmarks/bench.js --device cuda --full --threads "$threads" \
  --iterations 10 --cases copy-paste-acdc,copy-paste-la,ce-dice-acdc,ce-dice-la,marginal-align,over-expectation-ce
stage bench-steps "$(((${GPU_CHECK_BENCH_S:-120}) * 2 / 3))" node dist/benchmarks/bench.js --device cuda --full --threads "$threads" \
  --iterations 10 --precisions float32,bfloat16 --cases bcp-acdc-step,bcp-la-step,coda-acdc-step
cp bench-results/bench-cuda-*.md bench-results/bench-cuda-*.json "$out/" 2>/dev/null

# ---- 4. short BCP ACDC training with evaluation -----------------------------------------------------
run="$work/run-bcp-acdc"
rm -rf "$run" # train refuses a folder holding a run (without --resume)
stage train "${GPU_CHECK_TRAIN_S:-75}" node dist/lib/cli.js train --recipe bcp-acdc --data "$work/data/ACDC" --labeled 3 \
  --pretrain-iterations 200 --iterations 300 --validate-every 100 --device cuda --precision auto --out "$run" --json
best=$(ls "$run"/best.ckpt "$run"/final.ckpt 2>/dev/null | head -1)
if [ -n "$best" ]; then
  stage evaluate 60 node dist/lib/cli.js evaluate --checkpoint "$best" --data "$work/data/ACDC" --split val \
    --precision auto --out "$out/evaluate" --json
fi

# ---- the one results file ---------------------------------------------------------------------------
python3 - "$out" "$log" "$run" "$stages" <<'EOF'
import glob, json, os, subprocess, sys
out, log, run, stages = sys.argv[1:5]
def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None
def sh(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
text = read(log) or ""
tests = [l for l in text.splitlines() if l.endswith("skipped") and "passed" in l]
events = [json.loads(l) for l in (read(os.path.join(run, "log.jsonl")) or "").splitlines() if l.startswith("{")]
result = {
    "gpu": sh("nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"),
    "torch": sh("python3", "-c", "import torch; print(torch.__version__, torch.version.cuda)"),
    "node": sh("node", "--version"),
    "stages": [dict(zip(("stage", "status", "seconds"), l.split("\t"))) for l in (read(stages) or "").splitlines()],
    "tests": tests[-1] if tests else None,
    "bench": [json.loads(read(p)) for p in sorted(glob.glob(os.path.join(out, "bench-cuda-*.json")))],
    "training": {
        "validations": [e for e in events if e.get("type") == "validation"],
        "done": next((e for e in events if e.get("type") == "done"), None),
    },
    "evaluate": json.loads(read(os.path.join(out, "evaluate.json")) or "null"),
    "log_tail": "\n".join(text.splitlines()[-60:]),
}
with open(os.path.join(out, "gpu-check.json"), "w") as f:
    json.dump(result, f, indent=2)
print(json.dumps({k: result[k] for k in ("gpu", "torch", "stages", "tests")}, indent=2))
EOF
echo "gpu-check: results in $out/gpu-check.json"
