package compiler

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/nn"
)

// compactKernels are the attention kernels the compact layout lowers.
var compactKernels = map[string]func(c *model.Config){
	"power-softmax": func(c *model.Config) {
		c.Attention = model.AttentionConfig{Kind: model.AttnPowerSoftmax, P: 2, Eps: 0.05, LengthNorm: true}
	},
	"power-fixed-temp": func(c *model.Config) {
		c.Attention = model.AttentionConfig{Kind: model.AttnPowerFixed, P: 2, Temperature: true}
	},
	"shifted-p3": func(c *model.Config) { shiftedCase{p: 3, mode: nn.ShiftLearned, scope: nn.TempHead}.apply(c) },
	"shifted-p4": func(c *model.Config) { shiftedCase{p: 4, mode: nn.ShiftCalibrated, scope: nn.TempPosition}.apply(c) },
}

// The attention layouts (packed, the default; compact; legacy packed)
// compute the model: the simulator equals poly mode for every kernel
// (power-softmax, power-fixed, power-shifted with odd and even p), causal
// (text) and not (mnist), with one and several diagonal groups (maxCopies).
func TestAttentionLayoutsMatchPolyMode(t *testing.T) {
	fit := nn.DefaultFitOptions()
	fit.Degree = 15
	for _, task := range []string{model.TaskMNIST, model.TaskText} {
		for kname, mod := range compactKernels {
			t.Run(task+"-"+kname, func(t *testing.T) {
				var m *model.Model
				var b model.Batch
				var want [][]float64
				if task == model.TaskMNIST {
					m, b = tinyMNIST(t, mod, fit)
					want = polyLogits(t, m, b)
				} else {
					m, b = tinyText(t, mod, fit)
				}
				for _, opt := range []CompileOptions{
					{Batch: 2, CompactAttention: true},
					{Batch: 2, CompactAttention: true, maxCopies: 2},
					{Batch: 2, maxCopies: 2},
					{Batch: 2, LegacyPackedAttention: true, maxCopies: 2},
					{Batch: 2},
				} {
					c, err := Compile(m, opt)
					require.NoError(t, err)
					var got [][]float64
					if task == model.TaskMNIST {
						got = simLogits(t, c, b, m.Cfg)
					} else {
						got = textSimLogits(t, c, b)
						want = textPolyLogits(t, m, b, len(got), len(got[0]))
					}
					require.Less(t, maxAbsDiff(want, got), 1e-9, "%+v", opt)
				}
			})
		}
	}
}

// The packed layout (default) needs fewer key switches than the legacy one
// and one level less for a normalized kernel (the reciprocal multiplies the
// mixed values); the compact layout needs no more key switches, and no more
// rotation keys than the legacy one.
func TestAttentionLayoutsCost(t *testing.T) {
	if testing.Short() {
		t.Skip("dry runs at n16")
	}
	m, _ := tinyText(t, compactKernels["power-softmax"], shallowFit())
	p, err := he.ParametersFromPreset(he.PresetN16) // dry run only
	require.NoError(t, err)
	type cost struct{ ks, keys, depth int }
	costs := map[string]cost{}
	for name, opt := range map[string]CompileOptions{
		"packed":  {Batch: 1, maxCopies: 2},
		"legacy":  {Batch: 1, maxCopies: 2, LegacyPackedAttention: true},
		"compact": {Batch: 1, maxCopies: 2, CompactAttention: true},
	} {
		c, err := Compile(m, opt)
		require.NoError(t, err)
		masked := false
		for _, op := range c.Ops {
			masked = masked || op.Label == "blocks.0.attn.weights" && op.Kind == circuit.KindMulPlain
		}
		require.Equal(t, name == "compact", masked, "%s: the compact layout's expansion masks", name)
		pc, err := circuit.Plan(c, p, circuit.PlanOptions{})
		require.NoError(t, err)
		rep, err := circuit.NewReport(pc, p)
		require.NoError(t, err)
		costs[name] = cost{rep.KeySwitches, rep.RotationKeys, rep.Depth}
	}
	t.Logf("%+v", costs)
	require.Less(t, costs["packed"].ks, costs["legacy"].ks)
	require.Equal(t, costs["legacy"].depth-1, costs["packed"].depth)
	require.LessOrEqual(t, costs["compact"].ks, costs["packed"].ks) // equal at this size; 200 vs 192 for the demo
	require.LessOrEqual(t, costs["compact"].keys, costs["legacy"].keys)
}

// Encrypted = simulator for the compact layout of a causal LM with several
// diagonal groups (power-shifted, p = 4).
func TestEncryptedCompactCausal(t *testing.T) {
	if testing.Short() {
		t.Skip("encrypted LM")
	}
	sc := shiftedCase{p: 4, mode: nn.ShiftLearned, scope: nn.TempHead, eps: 0.5, ctx: 8, noAct: true}
	m, b := shiftedModel(t, model.TaskText, sc, shallowFit())
	c, err := Compile(m, CompileOptions{Batch: 1, CompactAttention: true, maxCopies: 2})
	require.NoError(t, err)
	p13, err := he.ParametersFromPreset(he.PresetTestN13)
	require.NoError(t, err)
	pc, err := circuit.Plan(c, p13, circuit.PlanOptions{})
	require.NoError(t, err)
	sk, evk, err := he.GenerateKeys(p13, he.KeySpec{Relinearization: true, Rotations: pc.Planned.Keys.Rotations})
	require.NoError(t, err)
	client, err := he.NewClient(p13, sk)
	require.NoError(t, err)
	b.B = 1
	b.Inputs, b.Targets = b.Inputs[:b.T], b.Targets[:b.T]
	vecs, err := pc.EncodeBytes(b.Inputs, b.B, b.T)
	require.NoError(t, err)
	rep, dec, err := circuit.Bench(pc, p13, evk, client, vecs, circuit.ExecOptions{})
	require.NoError(t, err)
	got, err := pc.DecodeLogits(dec, b.B)
	require.NoError(t, err)
	sim := textSimLogits(t, pc, b)
	want := textPolyLogits(t, m, b, len(sim), len(sim[0]))
	require.Less(t, maxAbsDiff(want, sim), 1e-8, "simulator vs poly mode")
	e := maxAbsDiff(sim, got)
	t.Logf("%s: max |encrypted - simulated| %.3g (predicted 2^%.1f), key switches %d", fmt.Sprint(sc), e, rep.PredictedLog2Err, rep.KeySwitches)
	require.Less(t, e, 1e-5)
}
