#!/bin/bash
# The lent GPU's one command (weights/README.md, thirty-ninth section): build the training sets
# from the carried .gpukit (scripts/gpu_kit.py), fine-tune the shipped RecurrentSARN until
# TRAIN_END seconds after the start, export to $OUT/cand.pth (and cand_latest.pth), then, while
# time is left (until END, 590 s), check CUDA quality in fp32/fp16/bf16 and torch.compile
# speed. Every log lands in $OUT (8 files at most come back). Run here first with small
# settings (JOBS=2 BATCH=2 STEPS=30 TRAIN_END=200).
# Once the CUDA checks are measured: PRECISIONS=fp32 BENCH_END=0 with TRAIN_END raised gives
# training their time (weights/README's runs used TRAIN_END=505).
# A kit packed with --train-pairs: REAL_COPIES=K draws those real sequences K times as often.
#   run: command "bash scripts/gpu_run.sh", carry [".gpukit"], timeout_s 600
set -u
OUT=${OUT:-/tmp/gpuout}
mkdir -p "$OUT" && OUT=$(CDPATH='' cd -- "$OUT" && pwd) || exit 1  # a relative one: from where it was given
cd "$(dirname "$0")/.." || exit 1  # the repository: its paths are relative to it
export PYTHONUNBUFFERED=1
rm -f "$OUT/cand.pth" "$OUT/cand_latest.pth"  # a rehearsal's earlier ones, evaluated as these
PY=${PY:-python3}
T0=$(date +%s)
el() { echo $(($(date +%s) - T0)); }
log() { echo "$* at $(el) s" | tee -a "$OUT/env.txt"; }
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  nproc
  $PY -c "import torch, torchvision, cv2, numpy as np
print(torch.__version__, torchvision.__version__, cv2.__version__, np.__version__, torch.cuda.is_available())"
} >"$OUT/env.txt" 2>&1
# a kit packed without --val or --val-pairs: training would stop at the missing .gpukit/val
# after the whole build (no kit at all: the build below says so)
if [ -f .gpukit/recipe.json ] && [ ! -d .gpukit/val ] && [ ! -d .gpukit/val_pairs ]; then
  log "the kit has no validation set: pack it with --val or --val-pairs"
  exit 1
fi
# shellcheck disable=SC2086  # BLUR is a list
$PY scripts/gpu_kit.py build --kit .gpukit --out .gputs --jobs "${JOBS:-14}" --blur-px ${BLUR:-12 24} \
  --real-copies "${REAL_COPIES:-1}" >"$OUT/build.log" 2>&1
BUILT=$?
[ $BUILT -ne 0 ] && tail -30 "$OUT/build.log"
# a build with some failed jobs (3) trains on the sets that were built; refused (2: no kit,
# or .gputs holding other settings' sets), stopped, killed (137) or a traceback (1): no
# training on what is there (a killed build went on to train and exit 0)
case $BUILT in
  0 | 3) ;;
  *) log "build failed (exit code $BUILT, build.log)"; exit 1 ;;
esac
log "build done"
MIN=$($PY -c "print(round((${TRAIN_END:-450} - $(el)) / 60, 2))")
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader -l 20 >"$OUT/smi.log" 2>&1 &
SMI=$!
VAL=(--val-sharp .gpukit/val --val-blur-px 12)  # ranks on real blur where the kit has it:
[ -d .gpukit/val_pairs ] && VAL=(--val-pairs .gpukit/val_pairs)  # synthetic gains did not carry
TRAINED=0
# the build ran past TRAIN_END: no training, and no export of an earlier command's best.pth
$PY -c "import sys; sys.exit(not $MIN > 0)" && $PY -m sarn_ros.tools.cli train --arch recurrent --run-dir .gpurun --resume \
  --init weights/sarn_recurrent.pth --trainset .gputs "${VAL[@]}" --val-frames 41 \
  --val-scale 1 --crop 192 --clip-len 4 --max-stride 3 --batch "${BATCH:-24}" \
  --lr "${LR:-1.5e-4}" --warmup 100 --steps "${STEPS:-1800}" --ema 0.998 --ckpt-minutes 1.5 --val-minutes 1 \
  --max-minutes "$MIN" >"$OUT/train.log" 2>&1 && TRAINED=1
log "train done (max-minutes $MIN, trained $TRAINED)"
if [ "$TRAINED" = 1 ]; then
  # best.pth as validation ranks it, and the last weights: the ranking has chosen wrong before
  # each on its own: a run stopped before its first validation has no best.pth, only the latest
  $PY -m sarn_ros.tools.cli train --run-dir .gpurun --export "$OUT/cand.pth" >>"$OUT/train.log" \
    2>&1 || log "no export of best.pth (train.log)"
  $PY -m sarn_ros.tools.cli train --run-dir .gpurun --export "$OUT/cand_latest.pth" --from latest \
    >>"$OUT/train.log" 2>&1 || log "no export of the latest weights (train.log)"
  log "export done"
else
  log "no export: training did not run or failed (train.log)"
fi
[ -f "$OUT/train.log" ] && tail -25 "$OUT/train.log"
EVAL=(--synthetic .gpukit/val --scale 1 --blur-px 12)  # a kit with real pairs only: those
[ -d .gpukit/val ] || EVAL=(--pairs .gpukit/val_pairs)
CANDS=()  # both ends, as exported: the latest was never evaluated on CUDA
for c in "$OUT/cand.pth" "$OUT/cand_latest.pth"; do [ -f "$c" ] && CANDS+=("$c"); done
END=${END:-590}  # the evals end by then: the run's 600 s kill took their log's last lines
for p in ${PRECISIONS:-fp32 fp16 bf16}; do
  [ ${#CANDS[@]} -gt 0 ] || break
  LEFT=$((END - $(el)))
  [ "$LEFT" -gt 10 ] || { echo "== $p and after: not run (under 10 s left before END, $END s)"; break; }
  echo "== $p"
  timeout $((LEFT < 60 ? LEFT : 60)) $PY -m sarn_ros.tools.cli eval --weights \
    weights/sarn_recurrent.pth "${CANDS[@]}" "${EVAL[@]}" --max-frames 41 --device cuda --precision $p
done >"$OUT/eval_cuda.log" 2>&1
log "eval done"
LEFT=$((${BENCH_END:-$END} - $(el)))
[ "$LEFT" -gt 20 ] && timeout "$LEFT" $PY -m sarn_ros.tools.cli bench model --device cuda \
  --sizes 1280x720 --variants recurrent --precision bf16 --torch-compile both \
  --iters 30 --warmup 5 >"$OUT/bench.log" 2>&1
log "bench done"
kill "$SMI" 2>/dev/null  # no nvidia-smi (a CPU rehearsal): gone already
# the command's status says whether a candidate came back, not that the last kill ran
[ -f "$OUT/cand.pth" ] || [ -f "$OUT/cand_latest.pth" ]
