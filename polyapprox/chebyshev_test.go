package polyapprox

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestIntervalMaps(t *testing.T) {
	iv := Interval{0.1, 10}
	require.NoError(t, iv.Validate())
	require.InDelta(t, -1, iv.ToUnit(0.1), 1e-15)
	require.InDelta(t, 1, iv.ToUnit(10), 1e-15)
	for _, x := range []float64{0.1, 0.5, 3, 10} {
		require.InDelta(t, x, iv.FromUnit(iv.ToUnit(x)), 1e-14)
		s, c := iv.ChangeOfBasis()
		require.InDelta(t, iv.ToUnit(x), s*x+c, 1e-14)
	}
	require.Error(t, Interval{-1e308, 1e308}.Validate())
	require.True(t, Interval{-1, 1}.IsUnit())
	require.False(t, iv.IsUnit())
	require.True(t, iv.Contains(10))
	require.False(t, iv.Contains(10.01))
}

func TestClenshawMatchesCosineDefinition(t *testing.T) {
	c := []float64{0.3, -1.2, 0.7, 0.05, -0.4, 0.25}
	p := Chebyshev{Interval: Interval{-1, 1}, Coeffs: c}
	for _, u := range []float64{-1, -0.7, -0.1, 0, 0.33, 0.9, 1} {
		want := 0.0
		for k, ck := range c {
			want += ck * math.Cos(float64(k)*math.Acos(u))
		}
		require.InDelta(t, want, p.EvaluateUnit(u), 1e-14)
		require.InDelta(t, want, p.Evaluate(u), 1e-14)
	}
	require.Zero(t, Chebyshev{}.EvaluateUnit(0.5))
	require.Equal(t, 2.5, Chebyshev{Coeffs: []float64{2.5}}.EvaluateUnit(0.5))
}

func TestInterpolateReproducesPolynomials(t *testing.T) {
	f := func(x float64) float64 { return 2*x*x*x - x + 0.5 }
	for _, d := range []int{3, 4, 10} {
		p, err := Interpolate(f, Interval{-3, 2}, d)
		require.NoError(t, err)
		require.Equal(t, d, p.Degree())
		for _, x := range []float64{-3, -1.1, 0, 0.7, 2} {
			require.InDelta(t, f(x), p.Evaluate(x), 1e-12)
		}
		for k := 4; k <= d; k++ {
			require.InDelta(t, 0, p.Coeffs[k], 1e-13)
		}
	}
	// T_k themselves on [-1, 1]
	p, err := Interpolate(func(u float64) float64 { return 4*u*u*u - 3*u }, Interval{-1, 1}, 5)
	require.NoError(t, err)
	require.InDeltaSlice(t, []float64{0, 0, 0, 1, 0, 0}, p.Coeffs, 1e-14)
}

func TestInterpolateInvalid(t *testing.T) {
	_, err := Interpolate(nil, Interval{0, 1}, 3)
	require.Error(t, err)
	_, err = Interpolate(math.Exp, Interval{1, 0}, 3)
	require.Error(t, err)
	_, err = Interpolate(math.Exp, Interval{0, 1}, -1)
	require.Error(t, err)
	_, err = Interpolate(math.Log, Interval{-1, 1}, 3)
	require.Error(t, err)
}

func TestDepths(t *testing.T) {
	for d, want := range map[int]int{-1: 0, 0: 0, 1: 1, 2: 2, 3: 2, 4: 3, 7: 3, 8: 4, 15: 4, 31: 5, 63: 6, 64: 7, 127: 7, 128: 8} {
		require.Equal(t, want, DepthOfDegree(d), "degree %d", d)
	}
	p := Chebyshev{Interval: Interval{0, 1}, Coeffs: make([]float64, 64)}
	require.Equal(t, 6, p.PolyDepth())
	require.Equal(t, 1, p.ChangeOfBasisDepth())
	require.Equal(t, 7, p.Depth())
	p.Interval = Interval{-1, 1}
	require.Equal(t, 6, p.Depth())
}

func TestChebyshevValidate(t *testing.T) {
	require.Error(t, Chebyshev{Interval: Interval{0, 1}}.Validate())
	require.Error(t, Chebyshev{Interval: Interval{0, 1}, Coeffs: []float64{1, math.NaN()}}.Validate())
	require.Error(t, Chebyshev{Interval: Interval{1, 0}, Coeffs: []float64{1}}.Validate())
	require.NoError(t, Chebyshev{Interval: Interval{0, 1}, Coeffs: []float64{1}}.Validate())
}
