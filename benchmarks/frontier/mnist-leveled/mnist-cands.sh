#!/bin/sh
PF=/work/tmp/pf
MN="--task mnist --steps 1500 --batch 64 --eval-every 0 --final-eval-limit 0 --no-progress"
for c in "fixed4-quad --attention power-fixed --p 4 --activation quad" "fixed2-quad --attention power-fixed --p 2 --activation quad"; do
  set -- $c; n=$1; shift
  /usr/bin/time -v nice -n 15 $PF train $MN "$@" --norm weightnorm --calib-batches 16 --out m1500-$n > m1500-$n.log 2>&1
done
