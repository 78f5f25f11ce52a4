for g in 100 25 100 25; do
  GOGC=$g /usr/bin/time -v ./pf infer demo.circ --keys dkeys --mnist 16 > mem-$g.out 2> mem-$g.err
  echo "GOGC=$g $(grep -E 'Maximum resident' mem-$g.err | awk '{print $6}') KB $(grep Elapsed mem-$g.err | awk '{print $8}') $(grep 'evaluation' mem-$g.out)"
done
