package polyapprox

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTargetDegrees(t *testing.T) {
	// a cap that is not 2^k-1 is tried after the depth-optimal degrees below it
	require.Equal(t, []int{1, 3, 7, 15, 31, 40}, TargetDegrees(40))
	require.Equal(t, []int{1, 3, 7, 15, 31, 63}, TargetDegrees(63))
	require.Equal(t, []int{1}, TargetDegrees(1))
	require.Empty(t, TargetDegrees(0))
}

func TestLeastDepthChebyshev(t *testing.T) {
	iv := Interval{A: -2, B: 1}
	metric := func(p Chebyshev) (float64, error) {
		st, err := MeasureChebyshev(math.Exp, p)
		return st.MaxAbs, err
	}
	p, e, err := LeastDepthChebyshev(math.Exp, iv, 63, 1e-6, metric)
	require.NoError(t, err)
	require.LessOrEqual(t, e, 1e-6)
	// the next smaller candidate degree misses the target
	prev, err := Interpolate(math.Exp, iv, (p.Degree()-1)/2)
	require.NoError(t, err)
	pe, err := metric(prev)
	require.NoError(t, err)
	require.Greater(t, pe, 1e-6)

	_, _, err = LeastDepthChebyshev(math.Exp, iv, 3, 1e-12, metric)
	require.ErrorContains(t, err, "no Chebyshev interpolant of degree <= 3 meets the target 1e-12")
}

func TestFewestIterations(t *testing.T) {
	iv := Interval{A: 0.5, B: 8}
	plan := func(k int) func(float64) float64 { return GoldschmidtInv{Interval: iv, Iterations: k}.Evaluate }
	k, e, ok := FewestIterations(plan, recip, iv, 1e-6)
	require.True(t, ok)
	require.LessOrEqual(t, e, 1e-6)
	require.Greater(t, GridRelError(plan(k-1), recip, iv), 1e-6)
	_, e, ok = FewestIterations(plan, recip, Interval{A: 0.5, B: 1e30}, 1e-6)
	require.False(t, ok)
	require.Greater(t, e, 1e-6)
}

func TestLeastDepthNewton(t *testing.T) {
	iv := Interval{A: 0.01, B: 20}
	n, e, err := LeastDepthNewton(iv, 15, 1e-4)
	require.NoError(t, err)
	require.LessOrEqual(t, e, 1e-4)
	require.Equal(t, NewtonFitError(n), e)
	// no plan of smaller depth (any degree <= 15, any iteration count) meets the target
	for d := 1; d <= 15; d++ {
		init, err := Interpolate(invSqrt, iv, d)
		require.NoError(t, err)
		for k := 0; k <= MaxIterations; k++ {
			c := NewtonInvSqrt{Init: init, Iterations: k}
			if c.Depth() >= n.Depth() {
				break
			}
			require.Greater(t, NewtonFitError(c), 1e-4, "degree %d, %d iterations", d, k)
		}
	}
	_, _, err = LeastDepthNewton(iv, 15, 0)
	require.ErrorContains(t, err, "must be positive and finite")
	_, _, err = LeastDepthNewton(Interval{A: 1e-12, B: 1e12}, 3, 1e-12)
	require.ErrorContains(t, err, "no Newton plan")
}
