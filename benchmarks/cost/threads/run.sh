set -e
P=${PF:-./pf}
echo "== demo load $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/time -f "demo wall %e s user %U s sys %S s cpu %P maxrss %M kB" $P demo > demo.out 2> demo.time; tail -1 demo.time
grep -E "^encrypted =|time per stage|service overhead|demo finished" demo.out
$P compile cmd/polyformer/demodata --out demo.circuit --force > compile.txt
$P keygen demo.circuit --out keys --force > keygen.txt 2>&1
for i in 1 2 3; do
  for t in 1 2; do
    echo "== run $i threads $t load $(cut -d' ' -f1-3 /proc/loadavg)"
    /usr/bin/time -f "wall %e s user %U s sys %S s cpu %P maxrss %M kB" $P bench layers demo.circuit --keys keys --mnist 16 --threads $t --json > layers-$i-$t.json 2> time-$i-$t.txt
    tail -1 time-$i-$t.txt
    python3 -c "import json;r=json.load(open('layers-$i-$t.json'));print('eval wall', r.get('wall_ns',0)/1e9)"
  done
done
