package circuit

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"sort"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	lhe "github.com/tuneinsight/lattigo/v5/he"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"

	"github.com/polyformer/polyformer/he"
)

// PlanInfo is what Plan adds to a circuit: the parameter set it was planned
// for, the level of every op's output, and the keys it needs.
type PlanInfo struct {
	Preset      string `json:"preset"`
	Fingerprint string `json:"fingerprint"`
	// InputLevel is the level the client encrypts the input at.
	InputLevel int `json:"input_level"`
	// Levels[i] is the level of op i's output.
	Levels []int `json:"levels"`
	// Keys are the evaluation keys the circuit uses (exact rotation set).
	Keys KeyNeeds `json:"keys"`
	// Bootstraps is the number of bootstrap ops per ciphertext.
	Bootstraps int `json:"bootstraps"`
	// InsecureSKBootstrap marks plans for the secret-key test bootstrapper.
	InsecureSKBootstrap bool `json:"insecure_sk_bootstrap,omitempty"`
}

// KeyNeeds is the serializable key spec of a planned circuit.
type KeyNeeds struct {
	Relinearization bool  `json:"relinearization"`
	Rotations       []int `json:"rotations"`
	Bootstrapping   bool  `json:"bootstrapping"`
	// Levels are the levels the keys are generated at: the highest level
	// at which the circuit uses each (nil in circuit files of earlier
	// builds: every key at the top level).
	Levels *KeyLevels `json:"levels,omitempty"`
}

// KeySpec returns the he.KeySpec to generate exactly these keys.
func (k KeyNeeds) KeySpec() he.KeySpec {
	s := he.KeySpec{Relinearization: k.Relinearization, Rotations: append([]int(nil), k.Rotations...), Bootstrapping: k.Bootstrapping}
	if k.Levels != nil {
		s.Levels = &he.KeyLevels{Relinearization: k.Levels.Relinearization, Rotations: append([]int(nil), k.Levels.Rotations...)}
	}
	return s
}

func (p *PlanInfo) validate(n int) error {
	if len(p.Levels) != n {
		return fmt.Errorf("plan: %d levels for %d ops", len(p.Levels), n)
	}
	for i, l := range p.Levels {
		if l < 0 || l > 64 {
			return fmt.Errorf("plan: op %d at level %d", i, l)
		}
	}
	if p.InputLevel < 0 || p.InputLevel > 64 {
		return fmt.Errorf("plan: input level %d", p.InputLevel)
	}
	if _, err := he.ParseFingerprint(p.Fingerprint); err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	if err := tooMany("plan.keys.rotations", "rotation keys", len(p.Keys.Rotations), MaxRotationKeys); err != nil {
		return err
	}
	if len(p.Preset) > MaxLabel {
		return fmt.Errorf("plan: preset name of %d bytes exceeds the limit %d", len(p.Preset), MaxLabel)
	}
	for _, r := range p.Keys.Rotations {
		if r <= 0 || r >= maxRot {
			return fmt.Errorf("plan: rotation %d out of range", r)
		}
	}
	if kl := p.Keys.Levels; kl != nil { // their number and values: VerifyCircuit (ErrKeySpec)
		if err := tooMany("plan.keys.levels.rotations", "rotation key levels", len(kl.Rotations), MaxRotationKeys); err != nil {
			return err
		}
		for _, l := range append([]int{kl.Relinearization}, kl.Rotations...) {
			if l < 0 || l > 64 {
				return fmt.Errorf("plan.keys.levels: level %d", l)
			}
		}
	}
	if p.Bootstraps < 0 || p.Bootstraps > n {
		return fmt.Errorf("plan: %d bootstraps", p.Bootstraps)
	}
	return nil
}

// PlanOptions control Plan.
type PlanOptions struct {
	// AllowBootstrap lets Plan insert bootstraps when the circuit is deeper
	// than the parameters' levels (the parameters must support bootstrapping).
	AllowBootstrap bool
	// InsecureSecretKeyBootstrap plans for he.NewSecretKeyBootstrapper
	// (tests only: it decrypts), which accepts level-0 inputs; a real
	// bootstrapper needs its minimum input level kept free.
	InsecureSecretKeyBootstrap bool
	// BootstrapPreScale is the factor s = 2^-k every bootstrapped value is
	// multiplied by before the bootstrap and divided by after it (stored in
	// the bootstrap op's Const; free: a scale relabeling and an integer
	// multiplication). Lattigo's modular reduction has a cubic error in the
	// plaintext coefficients (see BootstrapModel): a smaller message loses
	// less to it but more to the random floor. 0 picks the parameters'
	// BootstrapModel.UnitPreScale for real bootstrapping (none for the
	// secret-key test bootstrapper); 1 disables pre-scaling.
	BootstrapPreScale float64
	// GreedyPlacement places bootstraps with the greedy rules alone (the
	// placement before issue 15 item 5; for comparisons): the narrow rule
	// at every narrow value, never a search over the cuts.
	GreedyPlacement bool
}

// LevelError says a circuit needs more levels than a parameter set has.
type LevelError struct {
	Preset    string
	Needed    int // levels of the deepest path (without bootstrapping)
	Available int // levels of the parameter set
	Reason    string
}

// Error implements error.
func (e *LevelError) Error() string {
	return fmt.Sprintf("circuit needs %d levels, preset %s has %d%s", e.Needed, e.Preset, e.Available, e.Reason)
}

// Depth returns the number of levels of the circuit's deepest path (without
// bootstrapping or scale fixes).
func (c *Circuit) Depth() int {
	depth := make([]int, len(c.Ops))
	best := 0
	for i, op := range c.Ops {
		d := 0
		for _, in := range op.In {
			d = max(d, depth[in])
		}
		depth[i] = d + op.Levels()
		best = max(best, depth[i])
	}
	return best
}

type valState struct {
	level int
	scale rlwe.Scale
}

// Plan assigns levels to a circuit for the parameters p: the input level
// (the lowest that suffices, for smaller and faster ciphertexts), exact
// scale tracking (inserting a one-level match_scale op where two operands
// of an addition meet at the same level with different scales), bootstraps
// where a value has too few levels left (only with opt.AllowBootstrap and
// bootstrapping parameters), and the exact set of rotations. It returns a
// new circuit; c is not modified. The error is a *LevelError when the
// levels do not suffice.
func Plan(c *Circuit, p *he.Parameters, opt PlanOptions) (*Circuit, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	if p == nil {
		return nil, errors.New("plan: nil parameters")
	}
	if c.Planned != nil {
		return nil, errors.New("plan: circuit is already planned")
	}
	if c.Layout.Slots() > p.Slots() {
		return nil, fmt.Errorf("plan: the layout needs %d slots per ciphertext (%d tokens × batch %d × %d channels), preset %s has %d",
			c.Layout.Slots(), c.Layout.BlockTokens(), c.Layout.Batch, c.Layout.Block, p.Name(), p.Slots())
	}
	need := c.Depth()
	maxL := p.MaxLevel()
	if opt.AllowBootstrap && !p.HasBootstrapping() {
		return nil, fmt.Errorf("plan: bootstrapping allowed but preset %s has no bootstrapping parameters", p.Name())
	}
	if !opt.AllowBootstrap || need <= maxL {
		// leveled: try the lowest input level first
		var lastErr error
		for _, drop := range []bool{true, false} { // level drops can, rarely, force a scale fix that needs a level
			for start := min(need, maxL); start <= maxL; start++ {
				out, err := plan(c, p, start, false, false, drop, 0)
				if err == nil {
					return out, nil
				}
				lastErr = err
			}
		}
		var le *LevelError
		if errors.As(lastErr, &le) || need > maxL {
			reason := "; use a larger preset"
			if p.HasBootstrapping() {
				reason += " or allow bootstrapping"
			}
			return nil, &LevelError{Preset: p.Name(), Needed: max(need, maxL+1), Available: maxL, Reason: reason}
		}
		return nil, lastErr
	}
	pre := opt.BootstrapPreScale
	if pre != 0 {
		if _, err := bootstrapPreScale(pre); err != nil {
			return nil, fmt.Errorf("plan: %w", err)
		}
	} else if !opt.InsecureSecretKeyBootstrap {
		m, err := NewBootstrapModel(p)
		if err != nil {
			return nil, fmt.Errorf("plan: %w", err)
		}
		pre = m.UnitPreScale()
	}
	if pre == 1 {
		pre = 0
	}
	if opt.GreedyPlacement {
		return plan(c, p, maxL, true, opt.InsecureSecretKeyBootstrap, false, pre)
	}
	return placeBootstraps(c, p, opt.InsecureSecretKeyBootstrap, pre)
}

// plan places levels for input level start with today's greedy bootstrap
// placement (planGraph.greedy); boot enables bootstraps (skBoot: for the
// secret-key bootstrapper), drop inserts level drops before key switches,
// pre is the bootstraps' pre-scale (Op.Const, 0: none).
func plan(c *Circuit, p *he.Parameters, start int, boot, skBoot, drop bool, pre float64) (*Circuit, error) {
	g, err := newPlanGraph(c, p, boot, skBoot, nil)
	if err != nil {
		return nil, err
	}
	pl := newPlanner(g, drop, pre, g.greedy())
	if err := pl.prefix(start, len(c.Ops)-1); err != nil {
		return nil, err
	}
	return pl.finish(start)
}

// planGraph is what planning derives once from the unplanned graph and the
// parameters; planners share it read-only.
type planGraph struct {
	c     *Circuit
	p     *he.Parameters
	hp    hefloat.Parameters
	q     []uint64
	depth int
	// boot enables bootstraps; skBoot plans for the secret-key bootstrapper.
	boot, skBoot bool
	// floor is the level a bootstrap's input must keep; btpOut the level a
	// bootstrap gives.
	floor, btpOut int
	// need[i]: levels op i's output must keep for everything downstream.
	need []int
	// consumers[i]: the ops that read op i's output.
	consumers []map[int]bool
	// rotFanout[i]: the rotations of op i's output.
	rotFanout []int
	// dist[i]: the deepest path from op i's output to the next narrow value.
	dist []int
	// switches[i]: the key switches op i performs (nil: not costed).
	switches []int
}

// narrow reports whether op i's output is a "narrow" point of the graph
// (the residual stream, Q, K, V, the reciprocal): a value with at least 3
// consumers, or the output.
func (g *planGraph) narrow(i int) bool {
	return len(g.consumers[i]) >= 3 || g.c.Ops[i].Kind == KindOutput
}

// distances returns, for every op, the deepest path from its output to the
// next value stop reports (the output's consumers included).
func (g *planGraph) distances(stop func(int) bool) []int {
	c := g.c
	dist := make([]int, len(c.Ops))
	for i := len(c.Ops) - 1; i >= 0; i-- {
		for j := range g.consumers[i] {
			d := c.Ops[j].Levels()
			if !stop(j) {
				d += dist[j]
			}
			dist[i] = max(dist[i], d)
		}
	}
	return dist
}

// newPlanGraph analyses c for p; lts (the transforms of c's matrices, or
// nil) enables the key-switch count of every op.
func newPlanGraph(c *Circuit, p *he.Parameters, boot, skBoot bool, lts []*he.LinearTransform) (*planGraph, error) {
	hp := p.HE()
	g := &planGraph{c: c, p: p, hp: hp, q: hp.Q(), depth: c.Depth(), boot: boot, skBoot: skBoot}
	if boot {
		bp := p.BootstrappingParameters()
		g.floor = bp.BootstrappingParameters.LevelsConsumedPerRescaling()
		if skBoot {
			g.floor = 0
		}
		g.btpOut = hp.MaxLevel()
		if g.btpOut-g.floor < 1 {
			return nil, fmt.Errorf("plan: preset %s leaves %d levels after bootstrapping", p.Name(), g.btpOut-g.floor)
		}
	}
	n := len(c.Ops)
	g.need = make([]int, n)
	for i := n - 1; i >= 0; i-- {
		for _, in := range c.Ops[i].In {
			g.need[in] = max(g.need[in], g.need[i]+c.Ops[i].Levels())
		}
	}
	g.consumers = make([]map[int]bool, n)
	g.rotFanout = make([]int, n)
	for j, op := range c.Ops {
		for _, in := range op.In {
			if g.consumers[in] == nil {
				g.consumers[in] = map[int]bool{}
			}
			g.consumers[in][j] = true
		}
		if op.Kind == KindRotate {
			g.rotFanout[op.In[0]]++
		}
	}
	g.dist = g.distances(g.narrow)
	if lts != nil {
		g.switches = make([]int, n)
		for i, op := range c.Ops {
			rots, relins := op.KeySwitches(lts)
			g.switches[i] = rots + relins
		}
	}
	return g, nil
}

// planner assigns levels op by op (in op order) and inserts the planned
// ops; its placement policy decides where bootstraps go.
type planner struct {
	g      *planGraph
	drop   bool
	pre    float64
	policy placement
	out    []Op
	st     []valState
	// cur[i] is the planned value that currently holds op i's output.
	cur        []int
	bootstraps int
	// switchCost is the planned key switches weighted by level (see
	// placementCost), counted when g.switches is set.
	switchCost int64
}

func newPlanner(g *planGraph, drop bool, pre float64, policy placement) *planner {
	return &planner{g: g, drop: drop, pre: pre, policy: policy, cur: make([]int, len(g.c.Ops))}
}

func (pl *planner) emit(op Op, s valState) int {
	pl.out = append(pl.out, op)
	pl.st = append(pl.st, s)
	return len(pl.out) - 1
}

func (pl *planner) fail(id int, op Op, need, have int) error {
	return &LevelError{Preset: pl.g.p.Name(), Needed: pl.g.depth, Available: pl.g.hp.MaxLevel(),
		Reason: fmt.Sprintf(" (op %d %s in %s needs %d levels, its input has %d left)", id, op.Kind, op.Label, need, have)}
}

// bootstrap appends a bootstrap of the value that holds op orig's output
// and makes it that value.
func (pl *planner) bootstrap(orig int) int {
	nb := pl.emit(Op{Kind: KindBootstrap, In: []int{pl.cur[orig]}, Label: pl.g.c.Ops[orig].Label, Ref: orig, Const: pl.pre},
		valState{level: pl.g.btpOut, scale: pl.g.hp.DefaultScale()})
	pl.bootstraps++
	pl.cur[orig] = nb
	return nb
}

// ensure returns the (possibly bootstrapped) value of original value orig
// with at least need levels above the floor (op id needs it).
func (pl *planner) ensure(id int, op Op, orig, need int) (int, error) {
	g := pl.g
	v := pl.cur[orig]
	if pl.st[v].level-g.floor >= need {
		return v, nil
	}
	if !g.boot || g.btpOut-g.floor < need {
		return 0, pl.fail(id, op, need, pl.st[v].level-g.floor)
	}
	return pl.bootstrap(orig), nil
}

// prefix plans ops 0..to with input level start.
func (pl *planner) prefix(start, to int) error {
	return pl.run(0, to, start)
}

// run plans ops from..to (the input op at level start).
func (pl *planner) run(from, to, start int) error {
	for id := from; id <= to; id++ {
		if err := pl.step(id, start); err != nil {
			return err
		}
	}
	return nil
}

// step plans op id.
func (pl *planner) step(id, start int) error {
	g := pl.g
	c := g.c
	op := c.Ops[id]
	if op.Kind == KindInput {
		op.Ref = id
		pl.cur[id] = pl.emit(op, valState{level: start, scale: g.hp.DefaultScale()})
		return nil
	}
	need0 := op.Levels()
	if g.boot && op.Kind == KindRotate && g.rotFanout[op.In[0]] >= 2 {
		// a value rotated into several copies (K and V of attention, Q's
		// copies) is bootstrapped once before the fan-out, never on each
		// copy: give it what a copy needs up to the next narrow value
		// (or all a bootstrap gives when that is more)
		want := min(pl.policy.dist[id], g.btpOut-g.floor)
		for j := range g.consumers[id] {
			want = max(want, c.Ops[j].Levels())
		}
		if _, err := pl.ensure(id, op, op.In[0], want); err != nil {
			return err
		}
	}
	if pl.drop && (op.Kind == KindRotate || op.Kind == KindRotSum || op.Kind == KindLinear) {
		// key switches cost in proportion to the level: drop what no consumer needs
		orig := op.In[0]
		if v := pl.cur[orig]; pl.st[v].level > g.need[orig] {
			pl.cur[orig] = pl.emit(Op{Kind: KindDropLevel, In: []int{v}, Label: op.Label, Ref: orig},
				valState{level: g.need[orig], scale: pl.st[v].scale})
		}
	}
	need := need0
	ins := make([]int, len(op.In))
	for i, orig := range op.In {
		v, err := pl.ensure(id, op, orig, need)
		if err != nil {
			return err
		}
		ins[i] = v
	}
	if op.Kind == KindMul && ins[0] != ins[1] {
		// both operands must survive: re-check after a possible bootstrap of the first
		for i, orig := range op.In {
			v, err := pl.ensure(id, op, orig, need)
			if err != nil {
				return err
			}
			ins[i] = v
		}
	}
	a := pl.st[ins[0]]
	var s valState
	switch op.Kind {
	case KindLinear, KindMulPlain, KindMulConst:
		s = valState{level: a.level - 1, scale: a.scale}
	case KindPoly:
		s = valState{level: a.level - op.Poly.Depth(), scale: a.scale}
	case KindMul:
		b := pl.st[ins[1]]
		l := min(a.level, b.level)
		s = valState{level: l - 1, scale: a.scale.Mul(b.scale).Div(rlwe.NewScale(g.q[l]))}
	case KindAdd, KindSub:
		b := pl.st[ins[1]]
		if a.level == b.level && relDiff(a.scale, b.scale) > he.DefaultScaleTolerance {
			// same level, different scales: rescale the first operand onto the second's scale (1 level)
			v, err := pl.ensure(id, op, op.In[0], 1)
			if err != nil {
				return err
			}
			ms := pl.emit(Op{Kind: KindMatchScale, In: []int{v, ins[1]}, Label: op.Label, Ref: op.In[0]},
				valState{level: pl.st[v].level - 1, scale: b.scale})
			ins[0] = ms
			a = pl.st[ms]
		}
		if a.level < b.level {
			s = a
		} else {
			s = b
		}
	default: // add_plain, add_const, rotate, rotsum, output: unchanged
		s = a
	}
	if g.switches != nil && g.switches[id] > 0 {
		pl.switchCost += int64(g.switches[id]) * int64(switchLevel(op, ins, pl.st)+1)
	}
	op.In = ins
	op.Ref = id
	pl.cur[id] = pl.emit(op, s)
	if g.boot && op.Kind != KindOutput && pl.policy.narrowRule(g, id) && s.level-g.floor < pl.policy.dist[id] && g.btpOut-g.floor >= pl.policy.dist[id] {
		pl.bootstrap(id)
	} else if g.boot && pl.policy.after[id] {
		pl.bootstrap(id)
	}
	return nil
}

// finish returns the planned circuit (input level start).
func (pl *planner) finish(start int) (*Circuit, error) {
	g := pl.g
	c := g.c
	out := &Circuit{Version: c.Version, Task: c.Task, Layout: c.Layout, Mats: c.Mats, Vecs: c.Vecs, Ops: pl.out}
	levels := make([]int, len(pl.st))
	for i, s := range pl.st {
		levels[i] = s.level
	}
	out.Planned = &PlanInfo{Preset: g.p.Name(), Fingerprint: g.p.Fingerprint().String(), InputLevel: start,
		Levels: levels, Bootstraps: pl.bootstraps, InsecureSKBootstrap: g.boot && g.skBoot}
	keys, err := out.KeyNeeds(g.p) // the key levels follow from the plan's levels
	if err != nil {
		return nil, err
	}
	out.Planned.Keys = keys
	return out, nil
}

func relDiff(a, b rlwe.Scale) float64 {
	r, _ := new(big.Float).Quo(&a.Value, &b.Value).Float64()
	return math.Abs(r - 1)
}

// transforms builds the he linear transforms of the circuit's matrices for
// the parameters' slot count (the layout pattern repeated over all slots).
func (c *Circuit) transforms(p *he.Parameters) ([]*he.LinearTransform, error) {
	L := c.Layout
	nb := p.Slots() / L.Block
	used := make([]bool, len(c.Mats))
	for _, op := range c.Ops {
		if op.Kind == KindLinear {
			used[op.Mat] = true
		}
	}
	out := make([]*he.LinearTransform, len(c.Mats))
	for i, m := range c.Mats {
		if !used[i] {
			continue
		}
		blocks := make([][][]float64, nb)
		mats := make([][][]float64, len(m.Blocks))
		for k, b := range m.Blocks {
			mats[k] = make([][]float64, L.Block)
			for r := range mats[k] {
				mats[k][r] = b[r*L.Block : (r+1)*L.Block]
			}
		}
		for k := range blocks {
			blocks[k] = mats[0]
			if len(mats) > 1 {
				blocks[k] = mats[(k/L.Batch)%L.BlockTokens()]
			}
		}
		var lt *he.LinearTransform
		var err error
		if len(mats) == 1 { // one matrix for every token: stored once, not once per block
			lt, err = he.NewRepeatedBlockTransform(p, mats[0], nb)
		} else {
			lt, err = he.NewBlockDiagonalTransform(p, blocks)
		}
		if err != nil {
			return nil, fmt.Errorf("matrix %s: %w", m.Name, err)
		}
		if lt.BlockSize() != L.Block {
			return nil, fmt.Errorf("matrix %s: block size %d, layout %d", m.Name, lt.BlockSize(), L.Block)
		}
		out[i] = lt
	}
	if err := c.chooseBSGS(out, p.Slots()); err != nil {
		return nil, err
	}
	return out, nil
}

// maxLogBSGSRatio bounds the baby/giant ratios chooseBSGS tries.
const maxLogBSGSRatio = 6

// chooseBSGS picks, for every linear op (or group of linear ops sharing one
// hoisted input, which reuse each other's baby steps), the baby/giant split
// that minimizes its key switches plus the rotation keys it adds to those
// of the transforms before it (ties: fewer key switches, then the smaller
// ratio). Deterministic in op order, so Plan, NewReport and the executor
// agree.
func (c *Circuit) chooseBSGS(lts []*he.LinearTransform, slots int) error {
	type grp struct{ mats []int }
	var order []*grp
	byKey := map[[2]int]*grp{}
	done := map[int]bool{}
	for _, op := range c.Ops {
		if op.Kind != KindLinear || lts[op.Mat] == nil || done[op.Mat] {
			continue
		}
		done[op.Mat] = true
		if op.Group > 0 {
			k := [2]int{op.Group, op.In[0]}
			if g := byKey[k]; g != nil {
				g.mats = append(g.mats, op.Mat)
				continue
			}
			byKey[k] = &grp{}
			order = append(order, byKey[k])
			byKey[k].mats = []int{op.Mat}
			continue
		}
		order = append(order, &grp{mats: []int{op.Mat}})
	}
	have := map[int]bool{}
	for _, op := range c.Ops { // rotation keys of explicit rotations are needed anyway
		if op.Kind == KindRotate || op.Kind == KindRotSum {
			for _, r := range op.Rot {
				if r = ((r % slots) + slots) % slots; r != 0 {
					have[r] = true
				}
			}
		}
	}
	for _, g := range order {
		bestR, bestCost, bestKS := 0, -1, 0
		var bestRots []int
		for r := 0; r <= maxLogBSGSRatio; r++ {
			ks := 0
			var prev map[int]bool
			rots := map[int]bool{}
			for _, mi := range g.mats {
				diags := lts[mi].Diagonals()
				n1 := lhe.FindBestBSGSRatio(diags, slots, r)
				index, _, rotN2 := lhe.BSGSIndex(diags, slots, n1)
				cur := map[int]bool{}
				for _, b := range rotN2 {
					if b != 0 {
						cur[b] = true
						rots[b] = true
						if !prev[b] {
							ks++
						}
					}
				}
				for j := range index {
					if j != 0 {
						ks++
						rots[j] = true
					}
				}
				prev = cur
			}
			var list []int
			newKeys := 0
			for k := range rots {
				list = append(list, k)
				if !have[k] {
					newKeys++
				}
			}
			if cost := ks + newKeys; bestCost < 0 || cost < bestCost || (cost == bestCost && ks < bestKS) {
				bestR, bestCost, bestKS, bestRots = r, cost, ks, list
			}
		}
		for _, mi := range g.mats {
			if lts[mi].LogBSGSRatio() != bestR {
				lt, err := lts[mi].WithLogBSGSRatio(bestR)
				if err != nil {
					return fmt.Errorf("matrix %s: %w", c.Mats[mi].Name, err)
				}
				lts[mi] = lt
			}
		}
		for _, k := range bestRots {
			have[k] = true
		}
	}
	return nil
}

// KeyNeeds returns the evaluation keys c uses on p: the relinearization
// key, the bootstrapping keys, the sorted normalized rotation amounts and,
// for a planned circuit, the keys' levels.
func (c *Circuit) KeyNeeds(p *he.Parameters) (KeyNeeds, error) {
	rots := map[int]bool{}
	var k KeyNeeds
	lts, err := c.transforms(p)
	if err != nil {
		return k, err
	}
	for _, op := range c.Ops {
		k.Relinearization = k.Relinearization || op.Relinearizes()
		k.Bootstrapping = k.Bootstrapping || opTable[op.Kind].Keys == KeysBootstrap
		for _, r := range op.Rotations(lts, p.Slots()) {
			rots[r] = true
		}
	}
	for r := range rots {
		k.Rotations = append(k.Rotations, r)
	}
	sort.Ints(k.Rotations)
	if c.Planned != nil && len(c.Planned.Levels) == len(c.Ops) {
		k.Levels = c.keyLevels(p, c.Planned.Levels, lts, k)
	}
	return k, nil
}
