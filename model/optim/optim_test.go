package optim

import (
	"math"
	"testing"

	"github.com/polyformer/polyformer/model/nn"
	"github.com/stretchr/testify/require"
)

func TestAdamWMinimizesQuadratic(t *testing.T) {
	p := nn.NewParam("w", 3)
	copy(p.Value.Data, []float64{3, -2, 1})
	o := NewAdamW([]*nn.Param{p}, 0.9, 0.999, 1e-8, 0)
	for i := 0; i < 2000; i++ {
		for j, w := range p.Value.Data {
			p.Grad.Data[j] = 2 * (w - float64(j))
		}
		require.NoError(t, o.Update([]*nn.Param{p}, 0.01))
	}
	for j, w := range p.Value.Data {
		require.InDelta(t, float64(j), w, 1e-3)
	}
}

func TestAdamWFirstStepAndDecay(t *testing.T) {
	p := nn.NewParam("w", 1)
	p.Value.Data[0] = 2
	p.Grad.Data[0] = 0.5
	o := NewAdamW([]*nn.Param{p}, 0.9, 0.999, 0, 0.1)
	require.NoError(t, o.Update([]*nn.Param{p}, 0.1))
	// bias-corrected first step moves by lr*sign(g), plus decay lr*wd*w
	require.InDelta(t, 2-0.1-0.1*0.1*2, p.Value.Data[0], 1e-12)
	f := nn.NewParam("f", 1)
	f.Frozen = true
	f.Grad.Data[0] = 1
	require.NoError(t, o.Update([]*nn.Param{f}, 0.1))
	require.Zero(t, f.Value.Data[0])
	require.Error(t, o.Update([]*nn.Param{nn.NewParam("unknown", 2)}, 0.1))
}

func TestClipAndSchedule(t *testing.T) {
	p := nn.NewParam("w", 2)
	copy(p.Grad.Data, []float64{3, 4})
	require.Equal(t, 5.0, ClipGradNorm([]*nn.Param{p}, 1))
	require.InDelta(t, 1, p.Grad.Norm2(), 1e-12)
	s := Schedule{Base: 1, Min: 0.1, Warmup: 10, Total: 110}
	require.InDelta(t, 0.1, s.LR(0), 1e-12)
	require.InDelta(t, 1, s.LR(9), 1e-12)
	require.InDelta(t, 1, s.LR(10), 1e-12)
	require.InDelta(t, 0.55, s.LR(60), 1e-12)
	require.InDelta(t, 0.1, s.LR(110), 1e-12)
	require.InDelta(t, 0.1, s.LR(500), 1e-12)
	require.False(t, math.IsNaN(Schedule{Base: 1}.LR(0)))
}
