package circuit

import (
	"fmt"
	"sort"

	"github.com/polyformer/polyformer/he"
)

// Bootstrap placement.
//
// A bootstrapped plan puts each bootstrap after the op whose output it
// refreshes. Three rules place them inside a stretch of the graph:
//
//   - on demand: an op whose input has fewer levels above the bootstrap
//     floor than the op consumes bootstraps that input;
//   - before a fan-out: a value rotated into several copies (K and V of
//     attention, Q's copies) is bootstrapped once, before the first
//     rotation, never on each copy;
//   - the narrow rule: a value with at least 3 consumers (a "narrow" point:
//     the residual stream, Q, K, V, the reciprocal) is bootstrapped as soon
//     as it is made if it has fewer levels than the deepest path to the
//     next narrow value, so that the wide regions in between (the T
//     attention diagonals) need no bootstraps of their own.
//
// The greedy placement (planGraph.greedy, the only one before issue 15
// item 5) applies the narrow rule everywhere. It bootstraps too early and
// too often on the residual stream: it refreshes a narrow value that has
// levels left for the next stretch, and leaves the residual sum after
// attention (2 consumers) to an on-demand bootstrap deep in the FFN.
//
// placeBootstraps plans the cheapest of several placements by the cost
// placementCost. The graph's cuts are the ops after which no op reads a
// value made before them (the residual stream between blocks and
// sub-blocks, in op order): the plan after a cut depends only on the level
// and scale of the cut's value, so a dynamic program over the cuts, with
// the states (level, scale) at each cut, decides exactly at which cuts to
// bootstrap (and the input level), the stretches between cuts planned by
// the rules above with the narrow rule on or off at the values that are
// not cuts. The result is the cheapest of the greedy plan and the dynamic
// programs' plans among those with no more bootstraps than the greedy
// plan (ties keep the greedy plan): never worse than the greedy plan, and
// deterministic.

// BootstrapKeySwitches is the cost of one bootstrap in key switches at the
// top level: about 20 s per bootstrap against about 0.25 s per top-level
// key switch at logN 16 on one core (benchmarks/ops).
const BootstrapKeySwitches = 80

// placementCost is the estimated cost of a bootstrapped plan in units of a
// key switch at level 0: a key switch at level l costs l+1 (it works on
// l+1 moduli), a bootstrap BootstrapKeySwitches key switches at the top
// level maxLevel. switchCost is the sum of l+1 over the plan's key
// switches.
func placementCost(maxLevel, bootstraps int, switchCost int64) int64 {
	return int64(bootstraps)*BootstrapKeySwitches*int64(maxLevel+1) + switchCost
}

// switchLevel is the level of the ciphertext whose key op switches, from
// its planned inputs ins (a product relinearizes at its lower input's
// level; a polynomial is counted at its input's level).
func switchLevel(op Op, ins []int, st []valState) int {
	l := st[ins[0]].level
	if op.Kind == KindMul {
		l = min(l, st[ins[1]].level)
	}
	return l
}

// placement is a planner's bootstrap policy beyond the on-demand and
// fan-out rules, which always apply.
type placement struct {
	// cuts marks the ops whose bootstrap the policy decides by after
	// alone (nil: none).
	cuts []bool
	// narrow applies the narrow rule at narrow values that are not cuts.
	narrow bool
	// after lists the ops whose output is bootstrapped as soon as it is made.
	after map[int]bool
	// dist[i] is the deepest path from op i's output to the next stop: a
	// narrow value or, with cuts, a cut (the fan-out and narrow rules
	// provide for that far).
	dist []int
}

// greedy is the greedy placement: the narrow rule at every narrow value.
func (g *planGraph) greedy() placement { return placement{narrow: true, dist: g.dist} }

// narrowRule reports whether the narrow rule applies to op id's output.
func (pp placement) narrowRule(g *planGraph, id int) bool {
	return pp.narrow && g.narrow(id) && (pp.cuts == nil || !pp.cuts[id])
}

// cost is the planner's placementCost so far.
func (pl *planner) cost() int64 {
	return placementCost(pl.g.hp.MaxLevel(), pl.bootstraps, pl.switchCost)
}

// cutPoints returns the ops, in order, after which no op reads the output
// of an op before them (the first op and the last included).
func (g *planGraph) cutPoints() []int {
	n := len(g.c.Ops)
	last := make([]int, n)
	for j, op := range g.c.Ops {
		last[j] = j
		for _, in := range op.In {
			last[in] = max(last[in], j)
		}
	}
	var cuts []int
	reach := -1 // the last reader of any op before d
	for d := 0; d < n; d++ {
		if reach <= d {
			cuts = append(cuts, d)
		}
		reach = max(reach, last[d])
	}
	return cuts
}

// cutState is a state of the dynamic program at a cut: the level and scale
// of the cut's value before the decision to bootstrap it, the cheapest
// cost of reaching it, and how.
type cutState struct {
	s     valState
	cost  int64
	boots int
	prev  int  // index of the state at the previous cut (-1 at the first)
	boot  bool // whether the previous cut was bootstrapped
	start int  // the input level
}

func (s cutState) key() string {
	return fmt.Sprintf("%d/%s", s.s.level, s.s.scale.Value.Text('p', 0))
}

// better orders states by cost, then by bootstraps.
func (s cutState) better(t cutState) bool {
	return s.cost < t.cost || (s.cost == t.cost && s.boots < t.boots)
}

// placedPlan is a placement with its input level and cost.
type placedPlan struct {
	policy     placement
	start      int
	cost       int64
	bootstraps int
}

// placeAtCuts runs the dynamic program over the cuts with the narrow rule
// on or off at the other narrow values and bootstraps after the ops sites
// lists (none of them a cut); ok is false when no state reaches the output.
func (g *planGraph) placeAtCuts(pre float64, narrow bool, sites map[int]bool) (placedPlan, bool) {
	cuts := g.cutPoints()
	mask := make([]bool, len(g.c.Ops))
	for _, d := range cuts {
		mask[d] = true
	}
	policy := g.withStops(placement{cuts: mask, narrow: narrow, after: sites})
	var layers [][]cutState
	var first []cutState
	for start := g.btpOut; start > g.floor; start-- {
		pl := newPlanner(g, false, pre, policy)
		if err := pl.prefix(start, cuts[0]); err != nil {
			continue
		}
		first = append(first, cutState{s: pl.st[pl.cur[cuts[0]]], cost: pl.cost(), boots: pl.bootstraps, prev: -1, start: start})
	}
	layers = append(layers, first)
	refreshed := valState{level: g.btpOut, scale: g.hp.DefaultScale()}
	for k := 0; k+1 < len(cuts); k++ {
		d := cuts[k]
		var next []cutState
		idx := map[string]int{}
		for j, s := range layers[k] {
			for _, boot := range []bool{false, true} {
				if boot && !g.bootable(d) {
					continue
				}
				pl := newPlanner(g, false, pre, policy)
				seed := s.s
				if boot {
					seed = refreshed
					pl.bootstraps++
				}
				pl.cur[d] = pl.emit(Op{Kind: KindInput, Ref: d}, seed) // stands for the cut's value
				if err := pl.run(d+1, cuts[k+1], s.start); err != nil {
					continue
				}
				ns := cutState{s: pl.st[pl.cur[cuts[k+1]]], cost: s.cost + pl.cost(), boots: s.boots + pl.bootstraps,
					prev: j, boot: boot, start: s.start}
				key := ns.key()
				if i, ok := idx[key]; ok {
					if ns.better(next[i]) {
						next[i] = ns
					}
					continue
				}
				idx[key] = len(next)
				next = append(next, ns)
			}
		}
		if len(next) == 0 {
			return placedPlan{}, false
		}
		layers = append(layers, next)
	}
	last := layers[len(layers)-1]
	if len(last) == 0 {
		return placedPlan{}, false
	}
	bi := 0
	for i, s := range last {
		if s.better(last[bi]) {
			bi = i
		}
	}
	best := last[bi]
	policy.after = map[int]bool{}
	for v := range sites {
		policy.after[v] = true
	}
	for k, i := len(layers)-1, bi; k > 0; k-- {
		s := layers[k][i]
		if s.boot {
			policy.after[cuts[k-1]] = true
		}
		i = s.prev
	}
	return placedPlan{policy: g.withStops(policy), start: best.start, cost: best.cost, bootstraps: best.boots}, true
}

// withStops returns pp with its distances to the next stop: a cut, a
// narrow value or a value bootstrapped as soon as it is made.
func (g *planGraph) withStops(pp placement) placement {
	pp.dist = g.distances(func(i int) bool { return pp.cuts[i] || g.narrow(i) || pp.after[i] })
	return pp
}

// bootable reports whether a placement may bootstrap op i's output as soon
// as it is made: not the input or the output, and not a rotation (a value
// rotated into several copies is bootstrapped before the fan-out).
func (g *planGraph) bootable(i int) bool {
	switch g.c.Ops[i].Kind {
	case KindInput, KindOutput, KindRotate:
		return false
	}
	return true
}

// evaluate plans the whole circuit with pp's policy and input level and
// returns its cost and bootstraps (ok false when it does not plan).
func (g *planGraph) evaluate(pre float64, pp placedPlan) (placedPlan, bool) {
	pl := newPlanner(g, false, pre, pp.policy)
	if err := pl.prefix(pp.start, len(g.c.Ops)-1); err != nil {
		return pp, false
	}
	pp.cost, pp.bootstraps = pl.cost(), pl.bootstraps
	return pp, true
}

// descend improves pp by local moves over the bootstraps after made values
// (the cuts' and the others'), in op order: a bootstrap is removed, or one
// is added after a bootable value with several consumers and then the
// bootstraps it makes unnecessary within the stretch from the cut before
// it to the second cut after it are removed one by one. A move is kept
// when it lowers the cost without exceeding maxBoots bootstraps. It
// returns the improved plan and its sites (the bootstraps after values
// that are not cuts).
func (g *planGraph) descend(pre float64, pp placedPlan, maxBoots int) (placedPlan, map[int]bool) {
	cuts := g.cutPoints()
	with := func(base placedPlan, v int, on bool) placedPlan {
		t := base
		t.policy.after = map[int]bool{}
		for w, o := range base.policy.after {
			if o && w != v {
				t.policy.after[w] = true
			}
		}
		if on {
			t.policy.after[v] = true
		}
		t.policy = g.withStops(t.policy)
		return t
	}
	accept := func(t placedPlan, cur placedPlan) (placedPlan, bool) {
		if t, ok := g.evaluate(pre, t); ok && t.bootstraps <= maxBoots && t.cost < cur.cost {
			return t, true
		}
		return cur, false
	}
	for i := range g.c.Ops {
		if !g.bootable(i) || (!pp.policy.cuts[i] && len(g.consumers[i]) < 2) {
			continue
		}
		if pp.policy.after[i] {
			pp, _ = accept(with(pp, i, false), pp)
			continue
		}
		t, ok := g.evaluate(pre, with(pp, i, true))
		if !ok {
			continue
		}
		// the stretch whose bootstraps the new one can replace
		k := sort.SearchInts(cuts, i+1) // first cut after i
		lo, hi := cuts[max(k-1, 0)], cuts[min(k+1, len(cuts)-1)]
		for w := lo; w <= hi; w++ {
			if w != i && t.policy.after[w] {
				t, _ = accept(with(t, w, false), t)
			}
		}
		if t.bootstraps <= maxBoots && t.cost < pp.cost {
			pp = t
		}
	}
	sites := map[int]bool{}
	for v, on := range pp.policy.after {
		if on && !pp.policy.cuts[v] {
			sites[v] = true
		}
	}
	return pp, sites
}

// placementRounds bounds the alternations of the dynamic program over the
// cuts and the descent over the other values.
const placementRounds = 3

// placeBootstraps plans c with bootstraps on p (skBoot: for the secret-key
// bootstrapper; pre: the bootstraps' pre-scale) at the cheapest of the
// greedy placement and the placements at the cuts (see Bootstrap
// placement above).
func placeBootstraps(c *Circuit, p *he.Parameters, skBoot bool, pre float64) (*Circuit, error) {
	lts, err := c.transforms(p)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	g, err := newPlanGraph(c, p, true, skBoot, lts)
	if err != nil {
		return nil, err
	}
	plans, err := g.placements(pre)
	if err != nil {
		return nil, err
	}
	best := pickPlacement(plans)
	pl := newPlanner(g, false, pre, best.policy)
	if err := pl.prefix(best.start, len(c.Ops)-1); err != nil {
		return nil, err
	}
	return pl.finish(best.start)
}

// pickPlacement returns the cheapest of plans (the greedy one first) with
// no more bootstraps than the greedy one; ties keep the earlier.
func pickPlacement(plans []placedPlan) placedPlan {
	best := plans[0]
	for _, pp := range plans[1:] {
		if pp.bootstraps <= plans[0].bootstraps && pp.cost < best.cost {
			best = pp
		}
	}
	return best
}

// placements returns the candidate placements with their costs, the
// greedy one first (its error is the planning error).
func (g *planGraph) placements(pre float64) ([]placedPlan, error) {
	greedy := newPlanner(g, false, pre, g.greedy())
	if err := greedy.prefix(g.btpOut, len(g.c.Ops)-1); err != nil {
		return nil, err
	}
	plans := []placedPlan{{policy: g.greedy(), start: g.btpOut, cost: greedy.cost(), bootstraps: greedy.bootstraps}}
	for _, narrow := range []bool{true, false} {
		pp, ok := g.placeAtCuts(pre, narrow, nil)
		for round := 0; ok && round < placementRounds; round++ {
			better, sites := g.descend(pre, pp, greedy.bootstraps)
			if better.cost == pp.cost {
				break
			}
			pp = better
			if again, ok := g.placeAtCuts(pre, narrow, sites); ok && again.cost < pp.cost {
				pp = again
			}
		}
		if ok {
			plans = append(plans, pp)
		}
	}
	return plans, nil
}
