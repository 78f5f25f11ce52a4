#!/bin/sh
PF=/work/tmp/pf
MN="--task mnist --steps 1500 --batch 64 --eval-every 0 --final-eval-limit 0 --no-progress"
/usr/bin/time -v nice -n 15 $PF train $MN --attention softmax --norm layernorm --calib-batches 16 --out m1500-softmax-ln > m1500-softmax-ln.log 2>&1
/usr/bin/time -v nice -n 15 $PF train $MN --attention power-fixed --p 2 --activation quad --norm weightnorm --calib-batches 16 --teacher m1500-softmax-ln --distill-alpha 0.5 --distill-temp 2 --out m1500-fixed2-quad-kd > m1500-fixed2-quad-kd.log 2>&1
