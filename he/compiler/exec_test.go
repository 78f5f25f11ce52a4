package compiler

import (
	"testing"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/nn"
	"github.com/stretchr/testify/require"
)

// shallowFit keeps tiny circuits within the insecure test presets' levels.
func shallowFit() nn.FitOptions {
	fit := nn.DefaultFitOptions()
	fit.Degree = 7
	fit.InitDegree = 3
	fit.RelTol = 2e-2
	fit.UpperFactor = 1
	return fit
}

func TestEncryptedMatchesSimulator(t *testing.T) {
	m, b := tinyMNIST(t, func(c *model.Config) {
		c.Attention.P = 2
		c.Attention.Eps = 0.5
		c.Activation = nn.ActQuad
	}, shallowFit())
	c, err := Compile(m, CompileOptions{Batch: 2})
	require.NoError(t, err)
	p, err := he.ParametersFromPreset(he.PresetTestN13)
	require.NoError(t, err)
	t.Logf("depth %d", c.Depth())
	pc, err := Plan(c, p, PlanOptions{})
	require.NoError(t, err)
	sk, evk, err := he.GenerateKeys(p, pc.Planned.Keys.KeySpec())
	require.NoError(t, err)
	client, err := he.NewClient(p, sk)
	require.NoError(t, err)
	tr := he.NewTrace()
	x, err := NewExecutor(pc, p, evk, ExecOptions{Trace: tr})
	require.NoError(t, err)
	vecs, err := pc.EncodeImages(b.Pixels, b.B, m.Cfg.ImageRows, m.Cfg.ImageCols)
	require.NoError(t, err)
	cts, err := EncryptInputs(client, pc, vecs)
	require.NoError(t, err)
	outs, err := x.Run(cts)
	require.NoError(t, err)
	dec, err := DecryptOutputs(client, pc, outs)
	require.NoError(t, err)
	got, err := pc.DecodeLogits(dec, b.B)
	require.NoError(t, err)
	want := polyLogits(t, m, b)
	sim := simLogits(t, pc, b, m.Cfg)
	require.Less(t, maxAbsDiff(want, sim), 1e-9)
	e := maxAbsDiff(sim, got)
	t.Logf("max |encrypted - simulated| logit error %.3g; key switches %d", e, tr.Total().KeySwitches)
	require.Less(t, e, 1e-4)
}
