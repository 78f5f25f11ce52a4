package polyapprox

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNewtonInvSqrtTwinWithinReportedError(t *testing.T) {
	iv := Interval{0.1, 10}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, k := range []int{0, 1, 2, 3} {
		n, err := NewNewtonInvSqrt(iv, 7, k)
		require.NoError(t, err)
		require.Equal(t, 7, n.Init.Degree())
		require.Equal(t, iv, n.Domain())
		require.Equal(t, "invsqrt", n.FunctionName())
		rep, err := n.MaxRelError()
		require.NoError(t, err)
		rep2, err := MaxRelError(n)
		require.NoError(t, err)
		require.Equal(t, rep, rep2)
		for i := 0; i < 5000; i++ {
			x := iv.A + (iv.B-iv.A)*rng.Float64()
			rel := math.Abs(n.Evaluate(x)*math.Sqrt(x) - 1)
			require.LessOrEqual(t, rel, rep*1.001+4e-16, "k=%d x=%g", k, x)
		}
	}
}

func TestNewtonInvSqrtQuadraticConvergence(t *testing.T) {
	iv := Interval{0.1, 10}
	var errs []float64
	for k := 0; k <= 6; k++ {
		n, err := NewNewtonInvSqrt(iv, 3, k)
		require.NoError(t, err)
		e, err := n.MaxRelError()
		require.NoError(t, err)
		errs = append(errs, e)
		t.Logf("k=%d rel err %.3e", k, e)
		// the exact-arithmetic prediction matches the float64 twin
		pred, err := n.PredictedRelError()
		require.NoError(t, err)
		if pred > 1e-13 {
			require.InDelta(t, 1, e/pred, 1e-6, "k=%d", k)
		} else {
			require.Less(t, e, 1e-14)
		}
	}
	require.Greater(t, errs[0], 0.05) // a poor start, so the test sees the convergence
	for k := 0; k+1 < len(errs); k++ {
		if errs[k+1] < 1e-13 {
			break
		}
		// e' = -e^2 (3+e)/2: the ratio e_{k+1}/e_k^2 stays within 1.5 -+ e_k/2
		ratio := errs[k+1] / (errs[k] * errs[k])
		require.InDelta(t, 1.5, ratio, errs[k]/2*(1+1e-3)+1e-6, "k=%d errs=%v", k, errs)
	}
	require.Less(t, errs[6], 1e-14)
}

func TestNewtonInvSqrtCosts(t *testing.T) {
	n, err := NewNewtonInvSqrt(Interval{0.1, 10}, 7, 2)
	require.NoError(t, err)
	// init: change of basis 1 + ceil(log2 8) = 4 levels; each iteration 2
	require.Equal(t, 4+2*2, n.Depth())
	// init degree 7: 5 products (T2, T3, T4 and 2 giant steps); 3 per iteration
	require.Equal(t, 5+3*2, n.CtMults())
	n, err = NewNewtonInvSqrt(Interval{0.5, 2}, 1, 3)
	require.NoError(t, err)
	require.Equal(t, 2+2*3, n.Depth()) // change of basis + 1 for the linear guess
	require.Equal(t, 9, n.CtMults())   // a linear guess costs no product
	n, err = NewNewtonInvSqrt(Interval{0.5, 2}, 63, 1)
	require.NoError(t, err)
	require.Equal(t, 7+2, n.Depth())
	require.Equal(t, 18+3, n.CtMults())
	// a hand-built constant guess: h = 0.5*x still takes its level
	c := NewtonInvSqrt{Init: Chebyshev{Interval: Interval{-1, 1}, Coeffs: []float64{1}}, Iterations: 2}
	require.Equal(t, 1+4, c.Depth())
	require.Equal(t, 6, c.CtMults())
}

func TestNewNewtonInvSqrtInvalid(t *testing.T) {
	for _, iv := range []Interval{{0, 1}, {-1, 1}, {-2, -1}, {math.NaN(), 1}, {1, math.Inf(1)}, {2, 1}} {
		_, err := NewNewtonInvSqrt(iv, 3, 2)
		require.Error(t, err, "%v", iv)
	}
	_, err := NewNewtonInvSqrt(Interval{0.1, 1}, -1, 2)
	require.Error(t, err)
	_, err = NewNewtonInvSqrt(Interval{0.1, 1}, 0, 2)
	require.Error(t, err)
	_, err = NewNewtonInvSqrt(Interval{0.1, 1}, 128, 2)
	require.Error(t, err)
	_, err = NewNewtonInvSqrt(Interval{0.1, 1}, 3, -1)
	require.Error(t, err)
	_, err = NewNewtonInvSqrt(Interval{0.1, 1}, 3, 65)
	require.Error(t, err)
	// a linear guess on [1e-6, 1] is off by far more than sqrt(3)-1
	_, err = NewNewtonInvSqrt(Interval{1e-6, 1}, 1, 3)
	require.ErrorContains(t, err, "would not converge")
	// invalid hand-built plans are reported, not evaluated
	_, err = MaxRelError(NewtonInvSqrt{Init: Chebyshev{Interval: Interval{-1, 1}, Coeffs: []float64{1}}})
	require.Error(t, err)
	_, err = MaxRelError(nil)
	require.Error(t, err)
	_, err = NewtonInvSqrt{Init: Chebyshev{Interval: Interval{0.1, 1}, Coeffs: []float64{1}}}.PredictedRelError()
	require.NoError(t, err)
}

func TestGoldschmidtInvErrorMatchesBound(t *testing.T) {
	iv := Interval{0.1, 1.9}
	rng := rand.New(rand.NewPCG(3, 4))
	for k := 0; k <= 6; k++ {
		g, err := NewGoldschmidtInv(iv, k)
		require.NoError(t, err)
		require.Equal(t, "recip", g.FunctionName())
		require.Equal(t, iv, g.Domain())
		bound := g.RelErrorBound()
		require.InDelta(t, math.Pow(0.9, math.Pow(2, float64(k+1))), bound, 1e-15)
		e, err := g.MaxRelError()
		require.NoError(t, err)
		// attained at the ends, up to float64 rounding of the twin
		require.LessOrEqual(t, e, bound+1e-15*float64(k+3))
		if bound > 1e-12 {
			require.InDelta(t, 1, e/bound, 1e-9, "k=%d", k)
		}
		for i := 0; i < 2000; i++ {
			x := iv.A + (iv.B-iv.A)*rng.Float64()
			require.LessOrEqual(t, math.Abs(g.Evaluate(x)*x-1), e*(1+1e-9)+1e-15)
		}
	}
}

func TestGoldschmidtCosts(t *testing.T) {
	for k, want := range map[int][2]int{0: {2, 0}, 1: {4, 2}, 3: {6, 6}, 5: {8, 10}} {
		g, err := NewGoldschmidtInv(Interval{0.5, 1.5}, k)
		require.NoError(t, err)
		require.Equal(t, want[0], g.Depth(), "k=%d", k)
		require.Equal(t, want[1], g.CtMults(), "k=%d", k)
	}
}

func TestGoldschmidtIterationsFor(t *testing.T) {
	for _, c := range []struct {
		iv     Interval
		target float64
	}{
		{Interval{0.1, 1.9}, 1e-3}, {Interval{0.1, 1.9}, 1e-8}, {Interval{1e-3, 1}, 1e-6}, {Interval{0.9, 1.1}, 0.5},
	} {
		k, err := GoldschmidtIterationsFor(c.iv, c.target)
		require.NoError(t, err)
		g, err := NewGoldschmidtInv(c.iv, k)
		require.NoError(t, err)
		require.LessOrEqual(t, g.RelErrorBound(), c.target)
		e, err := MaxRelError(g)
		require.NoError(t, err)
		require.LessOrEqual(t, e, c.target*(1+1e-9)+1e-15)
		if k > 0 {
			g.Iterations--
			require.Greater(t, g.RelErrorBound(), c.target)
		}
	}
	// [0.1, 1.9]: r = 0.9, bound 0.9^(2^(k+1)); k = 5 gives 0.9^64 = 1.18e-3
	k, err := GoldschmidtIterationsFor(Interval{0.1, 1.9}, 1e-3)
	require.NoError(t, err)
	require.Equal(t, 6, k) // 0.9^64 = 1.18e-3 > 1e-3, 0.9^128 = 1.4e-6
}

func TestGoldschmidtInvalid(t *testing.T) {
	for _, iv := range []Interval{{0, 1}, {-1, 1}, {-2, -1}, {math.NaN(), 1}, {2, 1}} {
		_, err := NewGoldschmidtInv(iv, 3)
		require.Error(t, err, "%v", iv)
		_, err = GoldschmidtIterationsFor(iv, 1e-3)
		require.Error(t, err, "%v", iv)
	}
	_, err := NewGoldschmidtInv(Interval{0.1, 1}, -1)
	require.Error(t, err)
	_, err = NewGoldschmidtInv(Interval{0.1, 1}, 65)
	require.Error(t, err)
	for _, target := range []float64{0, -1, 1, 2, math.NaN(), math.Inf(1)} {
		_, err = GoldschmidtIterationsFor(Interval{0.1, 1}, target)
		require.Error(t, err, "%g", target)
	}
	// r = (1 - 1e-300)/(1 + 1e-300) rounds to 1: no iteration count helps
	_, err = GoldschmidtIterationsFor(Interval{1e-300, 1}, 1e-6)
	require.ErrorContains(t, err, fmt.Sprintf("more than %d", MaxIterations))
	_, err = MaxRelError(GoldschmidtInv{Interval: Interval{-1, 1}, Iterations: 2})
	require.Error(t, err)
}
