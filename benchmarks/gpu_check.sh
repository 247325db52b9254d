#!/usr/bin/env bash
# The GPU check (issue 14): one script a machine with one CUDA GPU runs in about 8 minutes
# (5 of them lego training; the parts' hard limits add up to 13).
# NOT YET RUN ON A GPU: no GPU has been lent to this project so far; only --dry-run has run
# (on the 2-core CPU machine). Results of a real run belong in BENCHMARKS.md.
#
#   benchmarks/gpu_check.sh [--dry-run] [--parts suite,lego,speed,torchrun,lookups]
#                           [--data LEGO_DIR] [--out DIR]
#
# Parts, each under a hard time limit (a part that fails or runs out of time is reported and
# the next one runs; the exit code is the number of failed parts):
#   1. suite     the test suite with CUDA visible: every test whose device is "auto" trains on
#                the GPU and the CUDA-only tests run instead of skipping; on time-out pytest
#                still reports what ran                                           (<= 120 s)
#   2. lego      lego quality at 1, 2 and 5 minutes of `grid` training: one 5-minute schedule
#                evaluated at 1, 2 and 5 minutes (benchmarks/quality_vs_time.py; the first 5
#                test views at 800 x 800; three separate runs would alone take 8 minutes) (~6 min)
#   3. speed     the paper NeRF's seconds per step (benchmarks/train_speed.py: lego at
#                400 x 400, 1024 rays, 64 + 128 samples, 8 x 256 MLPs)                (~30 s)
#   4. torchrun  a one-rank `torchrun --nproc-per-node 1 -m nerfkit train` on lego (300 steps)
#                and `nerfkit eval` of it (test views at 200 x 200)                   (~40 s)
#   5. lookups   the grid lookup's three paths, forward + backward, on the GPU
#                (benchmarks/grid_lookup_paths.py: decides whether grid_sample stays the
#                CUDA `auto` path)                                                      (~20 s)
# --dry-run: the same five parts at toy size on the CPU (the procedural scene at 16 pixels,
# a few steps each, seconds in all) to check the script itself; it runs anywhere.
# Logs and a summary go to --out (default /tmp/nerfkit_gpu_check); the repository is not touched.
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0
PARTS=suite,lego,speed,torchrun,lookups
DATA=../shared/data/nerf_synthetic/lego
OUT=/tmp/nerfkit_gpu_check
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --parts) PARTS=$2; shift ;;
    --data) DATA=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -f .venv/bin/activate ] && [ -z "${VIRTUAL_ENV:-}" ] && . .venv/bin/activate
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SUMMARY=$OUT/summary.txt
: > "$SUMMARY"
FAILED=0

note() { echo "$*" | tee -a "$SUMMARY"; }

# run NAME LIMIT_S CMD...: run CMD with a time limit, log to $OUT/NAME.log, record the outcome
# (parts not in --parts are skipped; torchrun_eval belongs to torchrun)
run() {
  local name=$1 limit=$2
  shift 2
  case ",$PARTS," in *",${name%_eval},"*) ;; *) return 0 ;; esac
  local t0=$SECONDS
  echo "== $name (limit ${limit} s): $*" | tee -a "$SUMMARY"
  timeout --signal=INT --kill-after=20 "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  local took=$((SECONDS - t0))
  if [ $rc -eq 0 ]; then
    note "   ok in ${took} s"
  else
    FAILED=$((FAILED + 1))
    [ $rc -eq 124 ] && note "   TIMED OUT after ${took} s" || note "   FAILED (exit $rc) after ${took} s"
    tail -n 5 "$OUT/$name.log" | sed 's/^/   | /' | tee -a "$SUMMARY"
  fi
}

PY=python
note "gpu_check $(date -u '+%Y-%m-%d %H:%M UTC') commit $(git rev-parse --short HEAD 2>/dev/null)$(
  git diff --quiet 2>/dev/null || echo +dirty) dry-run=$DRY"
note "$($PY -c 'import torch; c = torch.cuda.is_available(); print("torch", torch.__version__,
  "cuda", torch.version.cuda, torch.cuda.get_device_name(0) if c else "NO CUDA DEVICE")')"
if [ $DRY -eq 0 ]; then
  if ! $PY -c 'import torch, sys; sys.exit(not torch.cuda.is_available())'; then
    note "no CUDA device: use --dry-run to check the script on a CPU"; exit 2
  fi
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
    --format=csv,noheader | sed 's/^/gpu /' | tee -a "$SUMMARY"
  [ -d "$DATA" ] || { note "lego not found at $DATA (--data DIR)"; exit 2; }
  DATA=$(cd "$DATA" && pwd)
else
  DATA=$OUT/scene
  $PY -c "from nerfkit.data.synthetic import generate_scene as g; g('$DATA', resolution=16, \
n_train=8, n_val=1, n_test=2, supersample=1)" || exit 2
fi

# the benchmarks write results beside themselves: run copies in $OUT
mkdir -p "$OUT/benchmarks"
cp benchmarks/quality_vs_time.py benchmarks/train_speed.py "$OUT/benchmarks/"

if [ $DRY -eq 0 ]; then
  run suite 120 $PY -m pytest -q -p no:cacheprovider tests
  run lego 400 $PY "$OUT/benchmarks/quality_vs_time.py" --data "$DATA" --checkpoints-min 1 2 5 \
    --test-views 5 --no-write --output "$OUT/lego_run" --note "gpu_check"
  run speed 60 $PY "$OUT/benchmarks/train_speed.py" --data "$DATA" --downscale 2 --steps 20 \
    --warmup 5
  run torchrun 90 $PY -m torch.distributed.run --standalone --nproc-per-node 1 -m nerfkit train \
    --data "$DATA" --downscale 2 --max-steps 300 --output "$OUT/torchrun_run" --no-progress
  run torchrun_eval 45 $PY -m nerfkit eval "$OUT/torchrun_run" --downscale 4
  run lookups 60 $PY benchmarks/grid_lookup_paths.py --device cuda
else
  run suite 120 $PY -m pytest -q -x -p no:cacheprovider tests/test_distributed.py \
    -k "shards or draws or environment"
  run lego 120 $PY "$OUT/benchmarks/quality_vs_time.py" --data "$DATA" \
    --checkpoints-min 0.005 0.01 --test-views 1 --no-write --output "$OUT/lego_run"
  run speed 120 $PY "$OUT/benchmarks/train_speed.py" --data "$DATA" --downscale 1 --steps 1 \
    --warmup 1 --batch-rays 16
  run torchrun 120 $PY -m torch.distributed.run --standalone --nproc-per-node 1 -m nerfkit train \
    --data "$DATA" --max-steps 5 --batch-rays 64 --output "$OUT/torchrun_run" --no-progress \
    --grid.num-voxels-final 4096
  run torchrun_eval 60 $PY -m nerfkit eval "$OUT/torchrun_run"
  run lookups 60 $PY benchmarks/grid_lookup_paths.py --device cpu --size 16 --points 1000 \
    --repeat 1
fi

note "-- results"
grep -h '^{"minutes"' "$OUT/lego.log" 2> /dev/null | sed 's/^/lego /' | tee -a "$SUMMARY"
grep -h 's/step' "$OUT/speed.log" 2> /dev/null | sed 's/^/nerf /' | tee -a "$SUMMARY"
grep -h 'trained to step' "$OUT/torchrun.log" 2> /dev/null | sed 's/^/torchrun /' | tee -a "$SUMMARY"
grep -h 'PSNR' "$OUT/torchrun_eval.log" 2> /dev/null | sed 's/^/torchrun eval /' | tee -a "$SUMMARY"
grep -h 'median' "$OUT/lookups.log" 2> /dev/null | sed 's/^/lookups /' | tee -a "$SUMMARY"
tail -n 1 "$OUT/suite.log" 2> /dev/null | sed 's/^/suite /' | tee -a "$SUMMARY"
note "failed parts: $FAILED; logs in $OUT"
exit $FAILED
