#!/bin/sh
# The training runs of the attention frontier (benchmarks/frontier/README.md),
# one after the other, then the frontier itself. Run from the repository root;
# RUNS is where checkpoints go. The recorded runs passed the power-shifted
# options through --config files with exactly these fields
# ({"attention": {"kind": "power-shifted", "p": P, "eps": 0.01,
# "length_norm": false, "delta": 0.01[, "shift_mode": "calibrated",
# "shift_margin": 1]}}); the flags below are the same settings.
set -e
RUNS=${RUNS:-runs/frontier}
PF="go run ./cmd/polyformer"
LM="--task text --width 128 --heads 4 --hidden 512 --depth 2 --context 64 --batch 32 --eval-every 0 --final-eval-limit 2048 --no-progress"
MN="--task mnist --steps 1500 --batch 64 --eval-every 0 --final-eval-limit 0 --no-progress"
SHIFT="--attention power-shifted --eps 0.01"
ODD="--shift-mode calibrated --shift-margin 1 --range-weight 100 --range-shift-hi 30"

# byte LM: teacher / baseline at ~15 minutes of a quiet 2-core machine, then the 400-step sweep
$PF train $LM --steps 1300 --attention softmax --norm layernorm --calib-batches 0 --out $RUNS/lm-softmax-ln-1300
$PF train $LM --steps 400 --attention softmax --norm layernorm --calib-batches 0 --out $RUNS/s400-softmax-ln
$PF train $LM --steps 400 --attention softmax --norm weightnorm --calib-batches 16 --out $RUNS/s400-softmax-wn
$PF train $LM --steps 400 --attention power-softmax --p 4 --length-norm --norm weightnorm --calib-batches 16 --out $RUNS/s400-power4-wn
for p in 2 4 6 8; do
  $PF train $LM --steps 400 $SHIFT --p $p --norm weightnorm --calib-batches 16 --out $RUNS/s400-shift$p-wn
done
for p in 3 5; do
  $PF train $LM --steps 400 $SHIFT --p $p $ODD --norm weightnorm --calib-batches 16 --out $RUNS/s400-shift$p-wn
done
$PF train $LM --steps 400 $SHIFT --p 4 --norm weightnorm --calib-batches 16 --range-weight 10 --range-recip-lo 1 --range-recip-hi 1000 --out $RUNS/s400-shift4-wn-range
$PF train $LM --steps 400 $SHIFT --p 4 --norm weightnorm --calib-batches 16 --temperature --temperature-scope head --out $RUNS/s400-shift4-wn-temphead
$PF train $LM --steps 400 $SHIFT --p 4 --norm weightnorm --calib-batches 16 --teacher $RUNS/lm-softmax-ln-1300 --distill-alpha 0.5 --distill-temp 2 --out $RUNS/s400-shift4-wn-kd
$PF train $LM --steps 400 $SHIFT --p 4 --norm weightnorm --calib-batches 16 --teacher $RUNS/lm-softmax-ln-1300 --distill-alpha 0.5 --distill-temp 2 --init-from-teacher --out $RUNS/s400-shift4-wn-kdinit
$PF train $LM --steps 400 $SHIFT --p 4 --norm weightnorm --calib-batches 16 --range-weight 10 --range-recip-lo 1 --range-recip-hi 1000 --teacher $RUNS/lm-softmax-ln-1300 --distill-alpha 0.5 --distill-temp 2 --out $RUNS/s400-shift4-wn-range-kd
$PF train $LM --steps 1300 $SHIFT --p 4 --norm weightnorm --calib-batches 16 --teacher $RUNS/lm-softmax-ln-1300 --distill-alpha 0.5 --distill-temp 2 --out $RUNS/lm-shift4-wn-kd-1300

# MNIST ViT (default shape), 1500 steps each
$PF train $MN --attention softmax --norm layernorm --calib-batches 16 --out $RUNS/m1500-softmax-ln
$PF train $MN --attention power-softmax --p 4 --length-norm --norm weightnorm --calib-batches 16 --out $RUNS/m1500-power4-wn
for p in 2 4 6; do
  $PF train $MN $SHIFT --p $p --norm weightnorm --calib-batches 16 --out $RUNS/m1500-shift$p-wn
done
$PF train $MN $SHIFT --p 3 --range-weight 100 --range-shift-hi 30 --norm weightnorm --calib-batches 16 --out $RUNS/m1500-shift3-wn

# the frontiers (exact and poly mode against the compiled circuits' cost)
go run ./benchmarks/frontier -out benchmarks/frontier/text -recalibrate 64 \
  softmax-ln=$RUNS/s400-softmax-ln softmax-wn=$RUNS/s400-softmax-wn power4-wn=$RUNS/s400-power4-wn \
  shift2-wn=$RUNS/s400-shift2-wn shift3-wn=$RUNS/s400-shift3-wn shift4-wn=$RUNS/s400-shift4-wn \
  shift5-wn=$RUNS/s400-shift5-wn shift6-wn=$RUNS/s400-shift6-wn shift8-wn=$RUNS/s400-shift8-wn \
  shift4-wn-range=$RUNS/s400-shift4-wn-range shift4-wn-temphead=$RUNS/s400-shift4-wn-temphead \
  shift4-wn-kd=$RUNS/s400-shift4-wn-kd shift4-wn-kdinit=$RUNS/s400-shift4-wn-kdinit \
  shift4-wn-range-kd=$RUNS/s400-shift4-wn-range-kd
go run ./benchmarks/frontier -out benchmarks/frontier/text1300 \
  softmax-ln-1300=$RUNS/lm-softmax-ln-1300 shift4-wn-kd-1300=$RUNS/lm-shift4-wn-kd-1300
go run ./benchmarks/frontier -out benchmarks/frontier/mnist -eval 10000 \
  softmax-ln=$RUNS/m1500-softmax-ln power4-wn=$RUNS/m1500-power4-wn shift2-wn=$RUNS/m1500-shift2-wn \
  shift3-wn=$RUNS/m1500-shift3-wn shift4-wn=$RUNS/m1500-shift4-wn shift6-wn=$RUNS/m1500-shift6-wn

# the seconds column (issue 16 item 5): the recorded frontiers re-rendered without their
# checkpoints (estimate from the recorded counts), and the leveled MNIST frontier from its checkpoints
for d in text text1300 mnist; do
  go run ./benchmarks/frontier -out benchmarks/frontier/$d -from benchmarks/frontier/$d/frontier.json
done
go run ./benchmarks/frontier -out benchmarks/frontier/mnist-leveled -eval 10000 -preset= \
  softmax-ln=$RUNS/m1500-softmax-ln fixed4-quad=$RUNS/m1500-fixed4-quad fixed2-quad=$RUNS/m1500-fixed2-quad \
  fixed2-quad-kd=$RUNS/m1500-fixed2-quad-kd fixed2-quad-kd9=$RUNS/m1500-fixed2-quad-kd9
