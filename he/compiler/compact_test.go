package compiler

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/he"
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

// The compact attention layout computes what the packed one does: the
// simulator equals poly mode for every kernel (power-softmax, power-fixed,
// power-shifted with odd and even p), causal (text) and not (mnist), with
// one and several diagonal groups (maxCopies), and the packed layout
// (NoCompactAttention) still does too.
func TestCompactAttentionMatchesPolyMode(t *testing.T) {
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
					{Batch: 2, forceCompact: true},
					{Batch: 2, forceCompact: true, maxCopies: 2},
					{Batch: 2, NoCompactAttention: true, maxCopies: 2},
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

// The compact layout is chosen by default where it is cheaper, and it is:
// fewer key switches than the packed layout, no more rotation keys, and the
// same depth for power-softmax (the reciprocal multiplies the mixed values).
func TestCompactAttentionCheaper(t *testing.T) {
	if testing.Short() {
		t.Skip("dry run at n16")
	}
	m, _ := tinyText(t, func(c *model.Config) {
		compactKernels["power-softmax"](c)
	}, shallowFit())
	p, err := he.ParametersFromPreset(he.PresetN16) // dry run only
	require.NoError(t, err)
	type cost struct{ ks, keys, depth int }
	costs := map[bool]cost{}
	for _, no := range []bool{false, true} {
		c, err := Compile(m, CompileOptions{Batch: 1, NoCompactAttention: no, maxCopies: 2})
		require.NoError(t, err)
		compact := false
		for _, op := range c.Ops {
			compact = compact || op.Label == "blocks.0.attn.weights" && op.Kind == KindMulPlain
		}
		require.Equal(t, !no, compact, "the default uses the compact layout")
		pc, err := Plan(c, p, PlanOptions{})
		require.NoError(t, err)
		rep, err := NewReport(pc, p)
		require.NoError(t, err)
		costs[no] = cost{rep.KeySwitches, rep.RotationKeys, rep.Depth}
	}
	t.Logf("compact %+v, packed %+v", costs[false], costs[true])
	require.Less(t, costs[false].ks, costs[true].ks)
	require.LessOrEqual(t, costs[false].keys, costs[true].keys)
	require.LessOrEqual(t, costs[false].depth, costs[true].depth)
}

// Encrypted = simulator for the compact layout of a causal LM with several
// diagonal groups (power-shifted, p = 4).
func TestEncryptedCompactCausal(t *testing.T) {
	if testing.Short() {
		t.Skip("encrypted LM")
	}
	sc := shiftedCase{p: 4, mode: nn.ShiftLearned, scope: nn.TempHead, eps: 0.5, ctx: 8, noAct: true}
	m, b := shiftedModel(t, model.TaskText, sc, shallowFit())
	c, err := Compile(m, CompileOptions{Batch: 1, forceCompact: true, maxCopies: 2})
	require.NoError(t, err)
	p13, err := he.ParametersFromPreset(he.PresetTestN13)
	require.NoError(t, err)
	pc, err := Plan(c, p13, PlanOptions{})
	require.NoError(t, err)
	sk, evk, err := he.GenerateKeys(p13, he.KeySpec{Relinearization: true, Rotations: pc.Planned.Keys.Rotations})
	require.NoError(t, err)
	client, err := he.NewClient(p13, sk)
	require.NoError(t, err)
	b.B = 1
	b.Inputs, b.Targets = b.Inputs[:b.T], b.Targets[:b.T]
	vecs, err := pc.EncodeBytes(b.Inputs, b.B, b.T)
	require.NoError(t, err)
	rep, dec, err := Bench(pc, p13, evk, client, vecs, ExecOptions{})
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
