package compiler

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/nn"
)

// The token-block split at every block size of a classifier and an LM:
// the simulated circuit reproduces poly mode (the unsplit circuit's
// function) and the layout records the split.
func TestTokenSplitSimulatorMatchesPolyMode(t *testing.T) {
	fit := nn.DefaultFitOptions()
	fit.Degree = 15
	t.Run("mnist", func(t *testing.T) {
		m, b := tinyMNIST(t, splitShape, fit)
		want := polyLogits(t, m, b)
		for _, tb := range []int{1, 2, 4, 8, 16} {
			c, err := Compile(m, CompileOptions{Batch: 2, TokenBlock: tb})
			require.NoError(t, err)
			require.Equal(t, 16/tb, c.Layout.NumTokenBlocks())
			got := simLogits(t, c, b, m.Cfg)
			require.Less(t, maxAbsDiff(want, got), 1e-9, "token block %d: want %v got %v", tb, want, got)
		}
	})
	t.Run("lm", func(t *testing.T) {
		m, b := tinyText(t, nil, fit)
		require.NoError(t, m.SetMode(nn.ModePoly))
		lg, err := m.Logits(b)
		require.NoError(t, err)
		require.NoError(t, m.SetMode(nn.ModeExact))
		for _, tb := range []int{1, 2, 4, 8} {
			c, err := Compile(m, CompileOptions{Batch: 2, TokenBlock: tb})
			require.NoError(t, err)
			got := textSimLogits(t, c, b)
			worst := 0.0
			for i := range got {
				for j, v := range got[i] {
					worst = math.Max(worst, math.Abs(v-lg.Data[i*len(got[i])+j]))
				}
			}
			require.Less(t, worst, 1e-9, "token block %d", tb)
		}
	})
}

var _ = model.TaskText
