package nn

import (
	"math"

	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/polyapprox"
)

func TestRangePenaltyValue(t *testing.T) {
	p, err := NewRangePenalty("s", -1, 2, 3)
	require.NoError(t, err)
	m := PenalizeModule(&Elementwise{deriv: func(float64) float64 { return 1 }}, p)
	x, err := FromData([]float64{-3, 0, 5}, 3)
	require.NoError(t, err)
	y := m.Forward(x)
	require.Equal(t, x.Data, y.Data)
	// e = 2/1, 0, 3/2; 3 * mean e^2 = 3 * (4 + 2.25) / 3
	require.InDelta(t, 6.25, p.Value(), 1e-12)
	st := p.Stats()
	require.Equal(t, RangeStats{Site: "s", Target: [2]float64{-1, 2}, Min: -3, Max: 5, Outside: 2, Total: 3, Value: p.Value()}, st)
	// dValue/dx = 3 * 2 e de / n
	dx := m.Backward(New(3))
	require.InDeltaSlice(t, []float64{3 * 2 * 2 * -1 / 3.0, 0, 3 * 2 * 1.5 * 0.5 / 3}, dx.Data, 1e-12)
	// a bound at 0 is relative to the width
	p0, err := NewRangePenalty("z", 0, 4, 1)
	require.NoError(t, err)
	p0.begin(1)
	p0.observe([]float64{-2})
	require.InDelta(t, 0.25, p0.Value(), 1e-12)

	for _, c := range [][3]float64{{1, 1, 1}, {2, 1, 1}, {0, 1, -1}, {math.Inf(-1), 1, 1}} {
		_, err := NewRangePenalty("bad", c[0], c[1], c[2])
		require.Error(t, err, "%v", c)
	}
}

func TestRangePenaltyModuleGrad(t *testing.T) {
	for _, mode := range []Mode{ModeExact, ModePoly} {
		a, err := NewActivation(ActGELU, "g", 0, 0)
		require.NoError(t, err)
		p, err := NewRangePenalty("g.gelu", -1, 1.5, 0.7)
		require.NoError(t, err)
		x := randT(3, 1.5, 2, 3, 4)
		m := PenalizeModule(a, p)
		require.Equal(t, a.(SiteHolder).Sites(), m.Sites())
		if mode == ModePoly {
			fit := DefaultFitOptions()
			fit.Degree = 15
			toPoly(t, m, m.Sites(), x, fit)
		}
		m.Forward(x)
		require.Greater(t, p.Value(), 0.01, "the test input must reach outside the target")
		requireGrads(t, CheckModule(m, x, false, p.Value, nil, 1e-6, 0, 1))
	}
}

func TestRangePenaltyKernelGrad(t *testing.T) {
	for _, causal := range []bool{false, true} {
		for _, mode := range []Mode{ModeExact, ModePoly} {
			ps, err := NewPowerSoftmax("a", 4, 1e-2, 0, false, false, true)
			require.NoError(t, err)
			p, err := NewRangePenalty("a.powersoftmax.recip", 0.05, 0.4, 2)
			require.NoError(t, err)
			k, err := PenalizeKernel(ps, p)
			require.NoError(t, err)
			m, err := NewMultiHeadAttention("attn", 6, 2, 5, causal, k, false, rng(1))
			require.NoError(t, err)
			require.Equal(t, ps.Sites(), m.Sites())
			x := randT(2, 1, 2, 4, 6)
			if mode == ModePoly {
				fit := DefaultFitOptions()
				toPoly(t, m, m.Sites(), x, fit)
			}
			m.Forward(x)
			st := p.Stats()
			require.Equal(t, 2*2*4, st.Total)
			require.Less(t, st.Min, 0.05, "rows below the target")
			require.Greater(t, st.Max, 0.4, "rows above the target")
			require.Greater(t, p.Value(), 0.0)
			res := CheckModule(m, x, false, p.Value, nil, 1e-6, 0, 3)
			for _, r := range res {
				require.Less(t, r.AggRelErr, gradTol, "causal=%v mode=%v: %s", causal, mode, r)
			}
		}
	}
}

func TestPenalizeKernelRejects(t *testing.T) {
	p, err := NewRangePenalty("r", 0.01, 1, 1)
	require.NoError(t, err)
	_, err = PenalizeKernel(NewSoftmax("a"), p)
	require.ErrorContains(t, err, "not power-softmax")
	sc, err := NewPowerSoftmax("a", 4, 0, 0.1, true, false, false)
	require.NoError(t, err)
	_, err = PenalizeKernel(sc, p)
	require.ErrorContains(t, err, "scaled")
}

func TestRefitSpecMatchesFitSpecWithoutMargin(t *testing.T) {
	o := DefaultFitOptions()
	o.Margin, o.UpperFactor, o.Degree = 0, 1, 15
	for _, kind := range []string{FnGELU, FnRecip, FnInvSqrt, FnExp} {
		lo, hi := 0.05, 3.0
		want, err := FitSpec("s", kind, lo, hi, o)
		require.NoError(t, err)
		got, err := RefitSpec(PolySpec{Site: "s", Kind: kind, Spec: polyapprox.Spec{Interval: [2]float64{lo, hi}}, Observed: [2]float64{lo, hi}}, o)
		require.NoError(t, err)
		require.Equal(t, want, got, kind)
	}
	_, err := RefitSpec(PolySpec{Site: "s", Kind: FnRecip, Spec: polyapprox.Spec{Interval: [2]float64{0, 1}}}, o)
	require.ErrorContains(t, err, "not positive")
	_, err = RefitSpec(PolySpec{Site: "s", Kind: FnGELU, Spec: polyapprox.Spec{Interval: [2]float64{1, 1}}}, o)
	require.ErrorContains(t, err, "empty")
}
