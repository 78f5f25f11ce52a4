package polyapprox

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDepthOptimalDegrees(t *testing.T) {
	require.Equal(t, []int{1, 3, 7}, DepthOptimalDegrees(3))
	require.Nil(t, DepthOptimalDegrees(0))
	require.Nil(t, DepthOptimalDegrees(-2))
	require.Equal(t, []int{1, 3, 7, 15, 31, 63, 127}, DepthOptimalDegrees(20))
	for k, d := range DepthOptimalDegrees(7) {
		require.Equal(t, k+1, DepthOfDegree(d))
		require.Equal(t, k+2, DepthOfDegree(d+1)) // 2^k needs one level more
	}
}

// measured returns the error SmallestDegree compares with the target.
func measured(t *testing.T, f func(float64) float64, iv Interval, d int, relative bool, method string) float64 {
	t.Helper()
	if method == MethodRemez && relative {
		method = MethodRemezRelative
	}
	p, extra, err := build(f, iv, d, method)
	require.NoError(t, err)
	st, err := MeasureChebyshev(f, p, extra...)
	require.NoError(t, err)
	if relative {
		return st.MaxRel
	}
	return st.MaxAbs
}

func TestSmallestDegree(t *testing.T) {
	cases := []struct {
		f        func(float64) float64
		iv       Interval
		target   float64
		relative bool
		method   string
	}{
		{math.Exp, Interval{-1, 1}, 1e-6, false, MethodChebyshev},
		{math.Exp, Interval{-1, 1}, 1e-6, false, MethodRemez},
		{invSqrt, Interval{0.1, 10}, 1e-3, true, MethodRemez},
		{invSqrt, Interval{0.1, 10}, 1e-3, true, MethodChebyshev},
		{GELU, Interval{-6, 6}, 1e-2, false, MethodRemez},
	}
	for _, c := range cases {
		d, err := SmallestDegree(c.f, c.iv, c.target, c.relative, c.method, 60)
		require.NoError(t, err)
		require.LessOrEqual(t, measured(t, c.f, c.iv, d, c.relative, c.method), c.target)
		for e := 0; e < d; e++ {
			require.Greater(t, measured(t, c.f, c.iv, e, c.relative, c.method), c.target, "degree %d < %d also meets the target", e, d)
		}
	}
	// minimax never needs a higher degree than interpolation
	dr, err := SmallestDegree(invSqrt, Interval{0.1, 10}, 1e-4, true, MethodRemez, 100)
	require.NoError(t, err)
	dc, err := SmallestDegree(invSqrt, Interval{0.1, 10}, 1e-4, true, MethodChebyshev, 100)
	require.NoError(t, err)
	require.LessOrEqual(t, dr, dc)
}

func TestSmallestDepthOptimalDegree(t *testing.T) {
	d, err := SmallestDepthOptimalDegree(GELU, Interval{-6, 6}, 1e-3, false, MethodRemez, 7)
	require.NoError(t, err)
	require.Equal(t, 0, d&(d+1), "degree %d is not 2^k-1", d)
	require.LessOrEqual(t, measured(t, GELU, Interval{-6, 6}, d, false, MethodRemez), 1e-3)
	require.Greater(t, measured(t, GELU, Interval{-6, 6}, (d-1)/2, false, MethodRemez), 1e-3)
	_, err = SmallestDepthOptimalDegree(GELU, Interval{-6, 6}, 1e-3, false, MethodRemez, 0)
	require.Error(t, err)
	_, err = SmallestDepthOptimalDegree(GELU, Interval{-6, 6}, 1e-12, false, MethodRemez, 3)
	require.ErrorContains(t, err, "no degree <= 7")
}

func TestSmallestDegreeInvalid(t *testing.T) {
	iv := Interval{-1, 1}
	_, err := SmallestDegree(nil, iv, 1e-3, false, MethodRemez, 10)
	require.Error(t, err)
	_, err = SmallestDegree(math.Exp, Interval{1, -1}, 1e-3, false, MethodRemez, 10)
	require.Error(t, err)
	for _, target := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		_, err = SmallestDegree(math.Exp, iv, target, false, MethodRemez, 10)
		require.Error(t, err, "%g", target)
	}
	_, err = SmallestDegree(math.Exp, iv, 1e-3, false, "pade", 10)
	require.Error(t, err)
	_, err = SmallestDegree(math.Exp, iv, 1e-3, false, MethodRemez, 128)
	require.Error(t, err)
	_, err = SmallestDegree(math.Exp, iv, 1e-3, false, MethodRemez, -1)
	require.Error(t, err)
	_, err = SmallestDegree(math.Exp, iv, 1e-30, false, MethodChebyshev, 20)
	require.ErrorContains(t, err, "no degree <= 20")
	_, err = SmallestDegree(math.Tanh, iv, 1e-3, true, MethodRemez, 10)
	require.ErrorContains(t, err, "relative error undefined")
}
