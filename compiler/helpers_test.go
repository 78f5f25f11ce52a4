package compiler

import (
	"testing"

	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/internal/testcircuit"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/nn"
	"github.com/stretchr/testify/require"
)

// tinyMNIST returns a calibrated random image model: 8x8 images, 4x4
// patches (4 tokens), width 8, 2 heads, hidden 16, with mod applied to its
// config before building. Weights are random (untrained); calibration runs
// on synthetic images.
func tinyMNIST(t *testing.T, mod func(c *model.Config), fit nn.FitOptions) (*model.Model, model.Batch) {
	t.Helper()
	c, err := model.DefaultConfig(model.TaskMNIST)
	require.NoError(t, err)
	c.Width, c.Depth, c.Heads, c.Hidden = 8, 1, 2, 16
	c.ImageRows, c.ImageCols, c.Patch, c.Classes = 8, 8, 4, 3
	if mod != nil {
		mod(&c)
	}
	m, err := model.New(c)
	require.NoError(t, err)
	cal := []model.Batch{synthImages(c, 16, 1), synthImages(c, 16, 2)}
	require.NoError(t, m.Calibrate(cal, fit, nil))
	return m, synthImages(c, 4, 3)
}

// synthImages: the shared synthetic images (internal/testcircuit).
var synthImages = testcircuit.SynthImages

// polyLogits returns the model's poly-mode logits [B][classes].
func polyLogits(t *testing.T, m *model.Model, b model.Batch) [][]float64 {
	t.Helper()
	require.NoError(t, m.SetMode(nn.ModePoly))
	defer func() { require.NoError(t, m.SetMode(nn.ModeExact)) }()
	lg, err := m.Logits(b)
	require.NoError(t, err)
	k := lg.Cols()
	out := make([][]float64, b.B)
	for i := range out {
		out[i] = append([]float64(nil), lg.Data[i*k:(i+1)*k]...)
	}
	return out
}

// simLogits compiles m with the given batch and simulates the images of b.
func simLogits(t *testing.T, c *circuit.Circuit, b model.Batch, cfg model.Config) [][]float64 {
	t.Helper()
	ins, err := c.EncodeImages(b.Pixels, b.B, cfg.ImageRows, cfg.ImageCols)
	require.NoError(t, err)
	outs := make([][]float64, len(ins))
	for i, in := range ins {
		outs[i], _, err = c.Simulate(in, circuit.SimOptions{})
		require.NoError(t, err)
	}
	lg, err := c.DecodeLogits(outs, b.B)
	require.NoError(t, err)
	return lg
}

func maxAbsDiff(a, b [][]float64) float64 {
	m := 0.0
	for i := range a {
		for j := range a[i] {
			d := a[i][j] - b[i][j]
			if d < 0 {
				d = -d
			}
			if d > m {
				m = d
			}
		}
	}
	return m
}
