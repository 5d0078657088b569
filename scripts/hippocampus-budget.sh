#!/usr/bin/env bash
# The README's hippocampus comparison at a CPU budget: supervised, Mean Teacher and BCP with 20 labeled
# volumes (10 %), the rest's images unlabeled, 40 volumes held out for validation; supervised on all 160
# training volumes as the ceiling. Same plan (the 2-D U-Net on axial slices: --set plan.network=UNet2D)
# and budget for each; every best checkpoint is then scored by `semiseg evaluate --split val` (mm).
#   [VAL=40] [EVERY=250] bash scripts/hippocampus-budget.sh <Hippocampus folder> <out folder> [iterations] [threads]
set -euo pipefail
data="${1:?the Decathlon Hippocampus folder}"
out="${2:?an output folder}"
iters="${3:-1500}"
threads="${4:-1}"
cli="node $(dirname "$0")/../dist/lib/cli.js --threads $threads"
common=(--data "$data" --val "${VAL:-40}" --set plan.network=UNet2D --validate-every "${EVERY:-250}" --seed 1337)
pre=$((iters / 3))
run() {
  local name="$1"; shift
  if [ ! -f "$out/$name/best.ckpt" ]; then
    # an interrupted run resumes; one that never saved starts again (train refuses a used folder otherwise)
    local resume=()
    if [ -f "$out/$name/last.ckpt" ]; then resume=(--resume); else rm -rf "$out/$name"; fi
    $cli train "$@" "${common[@]}" --out "$out/$name" ${resume[@]+"${resume[@]}"} > "$out/$name.log" 2>&1
  fi
  $cli evaluate --checkpoint "$out/$name/best.ckpt" --data "$data" --split val --out "$out/$name.val" > "$out/$name.eval.txt" 2>/dev/null
  echo "== $name"; cat "$out/$name.eval.txt"
}
mkdir -p "$out"
run supervised-20 --method supervised --labeled 20 --iterations "$iters"
run mt-20 --method mt --labeled 20 --iterations "$iters"
run bcp-20 --method bcp --labeled 20 --pretrain-iterations "$pre" --iterations "$((iters - pre))"
run supervised-all --method supervised --iterations "$iters"
