package circuit

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/he"
)

// residualCircuit is a transformer-shaped test graph: blocks of an
// "attention" (the stream scaled, then rotated into 3 copies, each copy
// squared attnDepth times, the copies summed) and an "FFN" (2 squarings),
// each added back to the stream.
func residualCircuit(blocks, attnDepth int) *Circuit {
	L := Layout{Tokens: 2, Batch: 1, Block: 8, InputWidth: 8, Outputs: 8, OutputTokens: 2}
	ops := []Op{{Kind: KindInput, Label: "input", Ref: -1}}
	add := func(op Op) int {
		op.Ref = -1
		ops = append(ops, op)
		return len(ops) - 1
	}
	x := add(Op{Kind: KindMulConst, In: []int{0}, Const: 0.5, Label: "embed"})
	for b := 0; b < blocks; b++ {
		q := add(Op{Kind: KindMulConst, In: []int{x}, Const: 0.25, Label: "attn.q"})
		sum := -1
		for r := 1; r <= 3; r++ {
			y := add(Op{Kind: KindRotate, In: []int{q}, Rot: []int{r}, Label: "attn.rot"})
			for d := 0; d < attnDepth; d++ {
				y = add(Op{Kind: KindMul, In: []int{y, y}, Label: "attn.mix"})
			}
			if sum < 0 {
				sum = y
			} else {
				sum = add(Op{Kind: KindAdd, In: []int{sum, y}, Label: "attn.mix"})
			}
		}
		x = add(Op{Kind: KindAdd, In: []int{x, sum}, Label: "residual1"})
		h := add(Op{Kind: KindMul, In: []int{x, x}, Label: "ffn"})
		h = add(Op{Kind: KindMulConst, In: []int{h}, Const: 0.125, Label: "ffn"})
		h = add(Op{Kind: KindMul, In: []int{h, h}, Label: "ffn"})
		x = add(Op{Kind: KindAdd, In: []int{x, h}, Label: "residual2"})
	}
	add(Op{Kind: KindOutput, In: []int{x}, Label: "output"})
	return &Circuit{Version: FormatVersion, Task: "text", Layout: L, Ops: ops}
}

func TestCutPoints(t *testing.T) {
	c := residualCircuit(1, 2)
	g, err := newPlanGraph(c, mustParams(t, he.PresetTestN12), false, false, nil)
	require.NoError(t, err)
	var kinds []string
	for _, d := range g.cutPoints() {
		kinds = append(kinds, string(c.Ops[d].Kind)+" "+c.Ops[d].Label)
	}
	// the stream between the sub-blocks, and the first and last ops; nothing
	// inside the attention (the stream is read again by residual1) or the FFN
	require.Equal(t, []string{"input input", "mul_const embed", "add residual1", "add residual2", "output output"}, kinds)
}

func mustParams(t *testing.T, preset string) *he.Parameters {
	t.Helper()
	p, err := he.ParametersFromPreset(preset)
	require.NoError(t, err)
	return p
}

// planPlacements plans c with bootstraps on p and returns the chosen plan
// and the candidates (the greedy one first).
func planPlacements(t *testing.T, c *Circuit, p *he.Parameters, skBoot bool) (*Circuit, []placedPlan) {
	t.Helper()
	pc, err := Plan(c, p, PlanOptions{AllowBootstrap: true, InsecureSecretKeyBootstrap: skBoot, BootstrapPreScale: 1})
	require.NoError(t, err)
	lts, err := c.transforms(p)
	require.NoError(t, err)
	g, err := newPlanGraph(c, p, true, skBoot, lts)
	require.NoError(t, err)
	plans, err := g.placements(0)
	require.NoError(t, err)
	for _, pp := range plans[1:] {
		// the dynamic program's cost is the cost of planning the whole graph with its decisions
		again, ok := g.evaluate(0, pp)
		require.True(t, ok)
		require.Equal(t, pp.cost, again.cost)
		require.Equal(t, pp.bootstraps, again.bootstraps)
	}
	return pc, plans
}

// The placement at the cuts bootstraps the stream once before each
// sub-block that needs it: fewer bootstraps and a lower cost than the
// greedy placement, none on a rotated copy, the levels valid, the same
// function, the same plan every time.
func TestPlacementAtCuts(t *testing.T) {
	p := mustParams(t, he.PresetN16Boot) // planning only: no keys
	c := residualCircuit(3, 4)
	pc, plans := planPlacements(t, c, p, false)
	greedy := plans[0]
	t.Logf("greedy: %d bootstraps, cost %d; chosen: %d bootstraps, cost %d", greedy.bootstraps, greedy.cost, pc.Planned.Bootstraps, pickPlacement(plans).cost)
	require.LessOrEqual(t, pc.Planned.Bootstraps, greedy.bootstraps)
	// each attention needs 1 + 4 levels and each FFN 2 of the 8 a bootstrap
	// leaves: one bootstrap per block, of the stream before its attention
	// from the second block on, and before the last FFN
	require.Equal(t, 3, pc.Planned.Bootstraps)
	require.Greater(t, greedy.bootstraps, pc.Planned.Bootstraps)
	for i, op := range pc.Ops {
		if op.Kind == KindBootstrap {
			require.NotEqual(t, KindRotate, pc.Ops[op.In[0]].Kind, "bootstrap %d follows a rotation", i)
		}
	}
	_, err := VerifyCircuit(pc, p, ClientPolicy{AllowInsecure: true, MaxKeyBytes: 1 << 40})
	require.NoError(t, err)
	in := make([]float64, c.Layout.Slots())
	r := rand.New(rand.NewPCG(1, 2))
	for i := range in {
		in[i] = r.Float64()*2 - 1
	}
	want, _, err := c.Simulate(in, SimOptions{})
	require.NoError(t, err)
	got, _, err := pc.Simulate(in, SimOptions{})
	require.NoError(t, err)
	require.Equal(t, want, got)
	again, err := Plan(c, p, PlanOptions{AllowBootstrap: true, BootstrapPreScale: 1})
	require.NoError(t, err)
	var a, b bytes.Buffer
	require.NoError(t, WriteCircuit(&a, pc))
	require.NoError(t, WriteCircuit(&b, again))
	require.Equal(t, a.Bytes(), b.Bytes(), "deterministic")
}

// On graphs of every depth the placement never has more bootstraps or a
// higher cost than the greedy one, for real and secret-key bootstrapping.
func TestPlacementNeverWorseThanGreedy(t *testing.T) {
	for _, preset := range []string{he.PresetN16Boot, he.PresetTestBootN13} {
		p := mustParams(t, preset)
		for _, sk := range []bool{false, true} {
			for blocks := 1; blocks <= 3; blocks++ {
				for depth := 1; depth <= 6; depth++ {
					c := residualCircuit(blocks, depth)
					if c.Depth() <= p.MaxLevel() {
						continue // planned leveled
					}
					pc, plans := planPlacements(t, c, p, sk)
					chosen := pickPlacement(plans)
					require.LessOrEqual(t, pc.Planned.Bootstraps, plans[0].bootstraps, "%s sk %v blocks %d depth %d", preset, sk, blocks, depth)
					require.LessOrEqual(t, chosen.cost, plans[0].cost)
					require.Equal(t, chosen.bootstraps, pc.Planned.Bootstraps)
				}
			}
		}
	}
}
