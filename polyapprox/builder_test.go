package polyapprox

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// legacyDerivative is the hand-written forward-mode derivative that
// model/nn carried before the Dual builder (kept to pin bit-identity).
func legacyNewtonDerivative(n NewtonInvSqrt) func(float64) float64 {
	dinit := ChebyshevDerivative(n.Init)
	return func(x float64) float64 {
		h, dh := 0.5*x, 0.5
		y, dy := n.Init.Evaluate(x), dinit.Evaluate(x)
		for i := 0; i < n.Iterations; i++ {
			a, da := y*y, 2*y*dy
			b, db := h*y, dh*y+h*dy
			dc := da*b + a*db
			c := a * b
			y, dy = 1.5*y-c, 1.5*dy-dc
		}
		return dy
	}
}

func legacyGoldschmidtDerivative(g GoldschmidtInv) func(float64) float64 {
	c := g.Normalizer()
	return func(x float64) float64 {
		xn := c * x
		a, b := 2-xn, 1-xn
		da, db := -c, -c
		for i := 0; i < g.Iterations; i++ {
			db = 2 * b * db
			b = b * b
			da = da*(1+b) + a*db
			a = a * (1 + b)
		}
		return c * da
	}
}

// legacyGoldschmidt is the float64 twin as plans.go wrote it before the
// builder (xn = c*x; a = 2 - xn; b = 1 - xn; ...).
func legacyGoldschmidt(g GoldschmidtInv, x float64) float64 {
	c := g.Normalizer()
	xn := c * x
	a := 2 - xn
	b := 1 - xn
	for i := 0; i < g.Iterations; i++ {
		b = b * b
		a = a * (1 + b)
	}
	return c * a
}

func TestDualMatchesFloatAndLegacyDerivatives(t *testing.T) {
	iv := Interval{A: 0.05, B: 6}
	init, err := Interpolate(invSqrt, iv, 7)
	require.NoError(t, err)
	exp, err := Interpolate(math.Exp, Interval{A: -4, B: 2}, 31)
	require.NoError(t, err)
	for _, k := range []int{0, 1, 3, 6} {
		n := NewtonInvSqrt{Init: init, Iterations: k}
		g := GoldschmidtInv{Interval: iv, Iterations: k}
		dn, dg := legacyNewtonDerivative(n), legacyGoldschmidtDerivative(g)
		newton, err := Spec{Method: PlanNewton, Interval: [2]float64{iv.A, iv.B}, Coeffs: init.Coeffs, Iterations: k}.Derivative()
		require.NoError(t, err)
		gold, err := Spec{Method: PlanGoldschmidt, Interval: [2]float64{iv.A, iv.B}, Iterations: k}.Derivative()
		require.NoError(t, err)
		d := NewDual(init)
		for i := 0; i <= 200; i++ {
			x := iv.A + (iv.B-iv.A)*float64(i)/200
			one := DualNumber{V: x, D: 1}
			require.Equal(t, n.Evaluate(x), EvalNewtonInvSqrt[DualNumber](d, n, one).V)
			require.Equal(t, legacyGoldschmidt(g, x), g.Evaluate(x), "twin unchanged")
			require.Equal(t, g.Evaluate(x), EvalGoldschmidtInv[DualNumber](d, g, one).V)
			require.Equal(t, dn(x), newton(x), "newton derivative at %g, %d iterations", x, k)
			require.Equal(t, dg(x), gold(x), "goldschmidt derivative at %g, %d iterations", x, k)
		}
	}
	dexp, err := Spec{Method: PlanChebyshev, Interval: [2]float64{-4, 2}, Coeffs: exp.Coeffs}.Derivative()
	require.NoError(t, err)
	for _, x := range []float64{-4, -1.5, 0, 0.7, 2} {
		require.Equal(t, ChebyshevDerivative(exp).Evaluate(x), dexp(x))
		require.InDelta(t, math.Exp(x), dexp(x), 1e-9)
	}
}

// The derivative of every plan matches central differences of its twin.
func TestDualDerivativeMatchesFiniteDifferences(t *testing.T) {
	iv := Interval{A: 0.2, B: 3}
	init, err := Interpolate(invSqrt, iv, 5)
	require.NoError(t, err)
	specs := []Spec{
		{Method: PlanNewton, Interval: [2]float64{iv.A, iv.B}, Coeffs: init.Coeffs, Iterations: 3},
		{Method: PlanGoldschmidt, Interval: [2]float64{iv.A, iv.B}, Iterations: 4},
		{Method: PlanChebyshev, Interval: [2]float64{iv.A, iv.B}, Coeffs: init.Coeffs},
	}
	for _, s := range specs {
		f, _, err := s.Twin()
		require.NoError(t, err)
		df, err := s.Derivative()
		require.NoError(t, err)
		for _, x := range []float64{0.3, 0.9, 1.7, 2.8} {
			const h = 1e-6
			require.InDelta(t, (f(x+h)-f(x-h))/(2*h), df(x), 1e-5*math.Max(1, math.Abs(df(x))), "%s at %g", s.Method, x)
		}
	}
}

func TestChebyshevDerivativeOfConstant(t *testing.T) {
	d := ChebyshevDerivative(Chebyshev{Interval: Interval{A: 0, B: 1}, Coeffs: []float64{3}})
	require.Equal(t, []float64{0}, d.Coeffs)
}

// A Dual builder without the polynomial kept computes its derivative at use.
func TestDualWithoutKeptPolynomial(t *testing.T) {
	p, err := Interpolate(math.Sin, Interval{A: -1, B: 2}, 9)
	require.NoError(t, err)
	y := NewDual().Poly(DualNumber{V: 0.5, D: 2}, p)
	require.Equal(t, p.Evaluate(0.5), y.V)
	require.Equal(t, ChebyshevDerivative(p).Evaluate(0.5)*2, y.D)
}
