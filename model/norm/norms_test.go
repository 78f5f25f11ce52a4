package norm

import (
	"math/rand/v2"
	"testing"

	"github.com/polyformer/polyformer/model/nn"
	"github.com/polyformer/polyformer/polyapprox"
	"github.com/stretchr/testify/require"
)

func randInput(seed uint64, shape ...int) *nn.Tensor {
	x := nn.New(shape...)
	x.FillNormal(rand.New(rand.NewPCG(seed, 1)), 1)
	return x
}

func TestNormsGradCheck(t *testing.T) {
	for _, method := range []string{MethodLayerNorm, MethodRMSNorm, MethodNone} {
		t.Run(method, func(t *testing.T) {
			n, err := New(method, "n", 6)
			require.NoError(t, err)
			require.Equal(t, method, n.Method())
			// perturb gain/bias away from their initial values
			for _, p := range n.Params() {
				p.Value.FillNormal(rand.New(rand.NewPCG(3, 3)), 1)
			}
			res := nn.CheckModule(n, randInput(1, 2, 3, 6), false, nil, nil, 1e-5, 0, 7)
			require.NotEmpty(t, res)
			for _, r := range res {
				require.Less(t, r.AggRelErr, 1e-6, r.String())
			}
		})
	}
}

func TestLayerNormNormalizes(t *testing.T) {
	l := NewLayerNorm("ln", 8, 0)
	y := l.Forward(randInput(2, 4, 8))
	for i := 0; i < 4; i++ {
		var m, v float64
		for _, x := range y.Data[i*8 : (i+1)*8] {
			m += x
		}
		m /= 8
		for _, x := range y.Data[i*8 : (i+1)*8] {
			v += (x - m) * (x - m)
		}
		require.InDelta(t, 0, m, 1e-12)
		require.InDelta(t, 1, v/8, 1e-9)
	}
}

func TestNormPolyMode(t *testing.T) {
	l := NewLayerNorm("ln", 8, 1e-5)
	x := randInput(4, 16, 8)
	exact := l.Forward(x)
	s := l.Sites()[0]
	require.Error(t, s.SetMode(nn.ModePoly))
	require.NoError(t, s.SetMode(nn.ModeCalibrate))
	l.Forward(x)
	spec, err := s.Fit(nn.DefaultFitOptions())
	require.NoError(t, err)
	require.Equal(t, polyapprox.PlanNewton, spec.Method)
	require.NoError(t, s.SetMode(nn.ModePoly))
	poly := l.Forward(x)
	for i := range exact.Data {
		require.InDelta(t, exact.Data[i], poly.Data[i], 1e-2)
	}
	out, total, _ := s.Outside()
	require.Zero(t, out)
	require.Equal(t, int64(16), total)
	// an input far outside the calibrated range is counted
	big := x.Clone()
	for i := range big.Data[:8] {
		big.Data[i] *= 100
	}
	l.Forward(big)
	out, _, _ = s.Outside()
	require.Equal(t, int64(1), out)
}

func TestUnknownNorm(t *testing.T) {
	_, err := New("batchnorm9", "x", 4)
	require.ErrorContains(t, err, "unknown normalization")
}

func TestNormsPolyModeGrad(t *testing.T) {
	for _, method := range []string{MethodLayerNorm, MethodRMSNorm} {
		n, err := New(method, "n", 6)
		require.NoError(t, err)
		for _, p := range n.Params() {
			p.Value.FillNormal(rand.New(rand.NewPCG(3, 3)), 1)
		}
		x := randInput(1, 2, 3, 6)
		s := n.Sites()[0]
		require.NoError(t, s.SetMode(nn.ModeCalibrate))
		n.Forward(x)
		fit := nn.DefaultFitOptions()
		fit.RelTol = 0.05 // a coarse plan, so poly and exact gradients differ
		_, err = s.Fit(fit)
		require.NoError(t, err)
		require.NoError(t, s.SetMode(nn.ModePoly))
		for _, r := range nn.CheckModule(n, x, false, nil, nil, 1e-6, 0, 7) {
			require.Less(t, r.AggRelErr, 1e-6, r.String())
		}
	}
}
