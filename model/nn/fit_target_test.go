package nn

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/polyapprox"
)

// targetOpts are fit options with a target and no widening, so the fitted
// interval is the range given.
func targetOpts(tol float64, degreeCap int) FitOptions {
	o := DefaultFitOptions()
	o.Margin, o.UpperFactor, o.Tol, o.Degree = 0, 1, tol, degreeCap
	return o
}

// measuredAbs is the maximum absolute error of the degree-d interpolant of
// kind on [a, b], measured directly with polyapprox.
func measuredAbs(t *testing.T, kind string, a, b float64, d int) float64 {
	f, err := Exact(kind)
	require.NoError(t, err)
	p, err := polyapprox.Interpolate(f, polyapprox.Interval{A: a, B: b}, d)
	require.NoError(t, err)
	st, err := polyapprox.MeasureChebyshev(f, p)
	require.NoError(t, err)
	return st.MaxAbs
}

func TestFitTargetChebyshevLeastDepth(t *testing.T) {
	cases := []struct {
		kind      string
		a, b, tol float64
		scale     float64 // the metric divides the absolute error by this
	}{
		{FnGELU, -8, 8, 1e-3, 1},
		{FnGELU, -4, 3, 1e-2, 1},
		{FnGELU, -4, 3, 1e-8, 1},
		{FnGELU, -20, 20, 1e-2, 1},
		{FnExp, -10, 0, 1e-6, 1},
		{FnExp, -30, 2, 1e-3, 1},
		{FnExp, -1, 1, 1e-2, 1},
		{FnReLU, -8, 8, 1e-2, 8},
		{FnReLU, -0.5, 2, 2e-2, 2},
	}
	for _, c := range cases {
		name := fmt.Sprintf("%s [%g, %g] tol %g", c.kind, c.a, c.b, c.tol)
		o := targetOpts(c.tol, 127)
		spec, err := FitSpec("s", c.kind, c.a, c.b, o)
		require.NoError(t, err, name)
		require.Equal(t, polyapprox.PlanChebyshev, spec.Method, name)
		require.Equal(t, [2]float64{c.a, c.b}, spec.Interval, name)
		d := spec.Degree
		require.Len(t, spec.Coeffs, d+1, name)
		require.Zero(t, d&(d+1), "%s: degree %d is not 2^k-1", name, d)
		require.Greater(t, d, 1, "%s: choose a case where a smaller degree exists", name)
		// the chosen degree meets the target, measured independently
		e := measuredAbs(t, c.kind, c.a, c.b, d) / c.scale
		require.LessOrEqual(t, e, c.tol, name)
		require.InDelta(t, e, spec.MaxErr, 1e-12*c.tol, name)
		// the next smaller depth-optimal degree does not
		require.Greater(t, measuredAbs(t, c.kind, c.a, c.b, (d-1)/2)/c.scale, c.tol, name)
		// the depth is the change of basis (none on [-1, 1]) plus log2(d+1)
		_, depth, err := spec.Evaluator()
		require.NoError(t, err, name)
		basis := 1
		if c.a == -1 && c.b == 1 {
			basis = 0
		}
		require.Equal(t, basis+polyapprox.DepthOfDegree(d), depth, name)
		// the installed polynomial is the interpolant of that degree
		f, _ := Exact(c.kind)
		p, err := polyapprox.Interpolate(f, polyapprox.Interval{A: c.a, B: c.b}, d)
		require.NoError(t, err)
		require.Equal(t, p.Coeffs, spec.Coeffs, name)
	}
}

func TestFitTargetChebyshevDegreeOne(t *testing.T) {
	// the search starts at the shallowest polynomial the evaluator accepts
	for _, c := range []struct {
		kind string
		a, b float64
	}{{FnReLU, 0.5, 2}, {FnExp, 0, 0.01}} {
		spec, err := FitSpec("s", c.kind, c.a, c.b, targetOpts(1e-4, 63))
		require.NoError(t, err, c.kind)
		require.Equal(t, 1, spec.Degree, c.kind)
		require.LessOrEqual(t, spec.MaxErr, 1e-4, c.kind)
	}
}

func TestFitTargetChebyshevNonOptimalCap(t *testing.T) {
	// a cap that is not 2^k-1 is tried after the depth-optimal degrees
	// below it (polyapprox.TargetDegrees)
	// GELU on [-8, 8] at 1e-9 needs more than 31: with cap 40 it gets 40
	require.Greater(t, measuredAbs(t, FnGELU, -8, 8, 31), 1e-9)
	spec, err := FitSpec("g", FnGELU, -8, 8, targetOpts(1e-9, 40))
	if measuredAbs(t, FnGELU, -8, 8, 40) <= 1e-9 {
		require.NoError(t, err)
		require.Equal(t, 40, spec.Degree)
	} else {
		require.ErrorContains(t, err, "degree <= 40")
	}
}

func TestFitTargetChebyshevCapError(t *testing.T) {
	best := math.Inf(1)
	for _, d := range polyapprox.TargetDegrees(63) {
		best = math.Min(best, measuredAbs(t, FnGELU, -45, 45, d))
	}
	require.Greater(t, best, 1e-3)
	_, err := FitSpec("blk2.gelu", FnGELU, -45, 45, targetOpts(1e-3, 63))
	require.Error(t, err)
	for _, want := range []string{"blk2.gelu", "gelu", "[-45, 45]", "degree <= 63", "0.001", fmt.Sprintf("best %.3g", best)} {
		require.ErrorContains(t, err, want)
	}
	// a higher cap reaches a looser target on the same range
	spec, err := FitSpec("blk2.gelu", FnGELU, -45, 45, targetOpts(1e-2, 127))
	require.NoError(t, err)
	require.Equal(t, 127, spec.Degree)

	// ReLU: the scaled error at degree 63 is about 0.28/63 > 1e-3
	o := targetOpts(1e-3, 63)
	_, err = FitSpec("r", FnReLU, -8, 8, o)
	require.ErrorContains(t, err, "max(|a|, |b|)")
	// ReLUTol replaces Tol for ReLU sites only
	o.ReLUTol = 1e-2
	spec, err = FitSpec("r", FnReLU, -8, 8, o)
	require.NoError(t, err)
	require.LessOrEqual(t, spec.MaxErr, 1e-2)
	spec, err = FitSpec("g", FnGELU, -8, 8, o)
	require.NoError(t, err)
	require.LessOrEqual(t, spec.MaxErr, 1e-3)
}

func TestFitTargetReLUScaleInvariant(t *testing.T) {
	// max(x, 0) is homogeneous: the chosen degree does not depend on the scale
	o := targetOpts(2e-2, 127)
	s1, err := FitSpec("r", FnReLU, -1, 3, o)
	require.NoError(t, err)
	s2, err := FitSpec("r", FnReLU, -100, 300, o)
	require.NoError(t, err)
	require.Equal(t, s1.Degree, s2.Degree)
	require.InDelta(t, s1.MaxErr, s2.MaxErr, 1e-9)
}

// bruteNewton returns the (degree, iterations) pair of least depth, then
// fewest ciphertext products, then lowest degree, among all pairs with
// degree <= maxDeg and iterations <= maxIt whose NewtonFitError meets tol.
func bruteNewton(t *testing.T, iv polyapprox.Interval, tol float64, maxDeg, maxIt int) (polyapprox.NewtonInvSqrt, bool) {
	f, _ := Exact(FnInvSqrt)
	var best polyapprox.NewtonInvSqrt
	found := false
	for d := 1; d <= maxDeg; d++ {
		init, err := polyapprox.Interpolate(f, iv, d)
		require.NoError(t, err)
		for k := 0; k <= maxIt; k++ {
			n := polyapprox.NewtonInvSqrt{Init: init, Iterations: k}
			if polyapprox.NewtonFitError(n) > tol {
				continue
			}
			better := !found || n.Depth() < best.Depth() ||
				n.Depth() == best.Depth() && (n.CtMults() < best.CtMults() ||
					n.CtMults() == best.CtMults() && d < best.Init.Degree())
			if better {
				best, found = n, true
			}
			break // more iterations of this degree are deeper and dearer
		}
	}
	return best, found
}

func TestFitTargetNewtonDepthMinimal(t *testing.T) {
	const maxDeg, maxIt = 15, 10
	for _, c := range []struct{ a, b, tol float64 }{
		{0.5, 4, 1e-3},
		{0.1, 10, 1e-3},
		{0.05, 3, 1e-5},
		{0.01, 8, 1e-3},
		{1, 1.05, 1e-3}, // a line, no iteration
		{0.02, 50, 1e-4},
	} {
		name := fmt.Sprintf("[%g, %g] rel tol %g", c.a, c.b, c.tol)
		iv := polyapprox.Interval{A: c.a, B: c.b}
		want, ok := bruteNewton(t, iv, c.tol, maxDeg, maxIt)
		require.True(t, ok, name)
		// pairs with more iterations than the brute force tried are deeper
		require.Less(t, want.Depth(), 2+2*(maxIt+1), name)
		o := targetOpts(1, maxDeg)
		o.RelTol = c.tol
		spec, err := FitSpec("n", FnInvSqrt, c.a, c.b, o)
		require.NoError(t, err, name)
		require.Equal(t, polyapprox.PlanNewton, spec.Method, name)
		require.Equal(t, want.Init.Degree(), spec.Degree, name)
		require.Equal(t, want.Iterations, spec.Iterations, name)
		require.Equal(t, want.Init.Coeffs, spec.Coeffs, name)
		_, depth, err := spec.Evaluator()
		require.NoError(t, err)
		require.Equal(t, want.Depth(), depth, name)
		require.Equal(t, polyapprox.NewtonFitError(want), spec.MaxErr, name)
		// independent check on polyapprox's own dense grid
		e, err := polyapprox.MaxRelError(want)
		require.NoError(t, err)
		require.LessOrEqual(t, e, c.tol, name)
	}
}

func TestFitTargetNewtonBeatsFixedPlan(t *testing.T) {
	// on a wide range the searched plan is shallower than the fixed
	// InitDegree 7 plan at the same relative tolerance
	fixed, err := FitSpec("n", FnInvSqrt, 0.01, 8, DefaultFitOptions())
	require.NoError(t, err)
	o := DefaultFitOptions()
	o.Tol = 1e-3
	searched, err := FitSpec("n", FnInvSqrt, 0.01, 8, o)
	require.NoError(t, err)
	_, dFixed, err := fixed.Evaluator()
	require.NoError(t, err)
	_, dSearched, err := searched.Evaluator()
	require.NoError(t, err)
	require.Less(t, dSearched, dFixed)
	require.LessOrEqual(t, searched.MaxErr, o.RelTol)
	// it installs and evaluates in poly mode
	s := NewSite("n", FnInvSqrt)
	require.NoError(t, s.Install(searched))
	require.NoError(t, s.SetMode(ModePoly))
	require.InEpsilon(t, 1/math.Sqrt(0.3), s.Eval1(0.3), 1e-3)
}

func TestFitTargetNewtonFails(t *testing.T) {
	o := targetOpts(1e-3, 3)
	o.RelTol = 1e-3
	_, err := FitSpec("norm", FnInvSqrt, 1e-12, 1e12, o)
	require.ErrorContains(t, err, "norm")
	require.ErrorContains(t, err, "too wide")
	o.RelTol = 0
	_, err = FitSpec("norm", FnInvSqrt, 0.5, 2, o)
	require.ErrorContains(t, err, "rel_tol")
}

func TestFitTargetGoldschmidtRecordsError(t *testing.T) {
	o := DefaultFitOptions()
	want, err := FitSpec("r", FnRecip, 0.5, 20, o)
	require.NoError(t, err)
	require.Zero(t, want.MaxErr)
	o.Tol = 1e-3
	got, err := FitSpec("r", FnRecip, 0.5, 20, o)
	require.NoError(t, err)
	require.Equal(t, want.Iterations, got.Iterations)
	f, _ := Exact(FnRecip)
	g := polyapprox.GoldschmidtInv{Interval: polyapprox.Interval{A: got.Interval[0], B: got.Interval[1]}, Iterations: got.Iterations}
	require.Equal(t, polyapprox.GridRelError(g.Evaluate, f, g.Interval), got.MaxErr)
	require.LessOrEqual(t, got.MaxErr, o.RelTol)
	require.Greater(t, got.MaxErr, 0.0)
}

func TestFitTargetOptionErrors(t *testing.T) {
	for _, c := range []struct {
		mod  func(*FitOptions)
		want string
	}{
		{func(o *FitOptions) { o.Tol = -1 }, "tol"},
		{func(o *FitOptions) { o.Tol = math.NaN() }, "tol"},
		{func(o *FitOptions) { o.Tol = math.Inf(1) }, "tol"},
		{func(o *FitOptions) { o.ReLUTol = 1e-2 }, "needs tol"},
		{func(o *FitOptions) { o.Tol, o.ReLUTol = 1e-3, -1 }, "relu_tol"},
		{func(o *FitOptions) { o.Tol, o.Degree = 1e-3, 0 }, "degree cap"},
	} {
		o := DefaultFitOptions()
		c.mod(&o)
		_, err := FitSpec("site7", FnGELU, -1, 1, o)
		require.ErrorContains(t, err, c.want)
		require.ErrorContains(t, err, "site7")
	}
}

// legacyRefit is RefitSpec as it was before error targets existed (commit
// 215d064), kept verbatim for its successful paths: Tol = 0 must reproduce
// it bit for bit.
func legacyRefit(spec PolySpec, o FitOptions) PolySpec {
	kind := spec.Kind
	a, b := spec.Interval[0], spec.Interval[1]
	exact, _ := Exact(kind)
	iv := polyapprox.Interval{A: a, B: b}
	spec.Method, spec.Degree, spec.Iterations, spec.Coeffs = "", 0, 0, nil
	switch kind {
	case FnExp, FnGELU, FnReLU:
		p, _ := polyapprox.Interpolate(exact, iv, o.Degree)
		spec.Method, spec.Degree, spec.Coeffs = "chebyshev", o.Degree, p.Coeffs
	case FnRecip:
		spec.Method = "goldschmidt"
		k, _, _ := polyapprox.FewestIterations(func(k int) func(float64) float64 {
			return polyapprox.GoldschmidtInv{Interval: iv, Iterations: k}.Evaluate
		}, exact, iv, o.RelTol)
		spec.Iterations = k
	case FnInvSqrt:
		init, _ := polyapprox.Interpolate(exact, iv, o.InitDegree)
		spec.Method, spec.Degree, spec.Coeffs = "newton", o.InitDegree, init.Coeffs
		k, _, _ := polyapprox.FewestIterations(func(k int) func(float64) float64 {
			return polyapprox.NewtonInvSqrt{Init: init, Iterations: k}.Evaluate
		}, exact, iv, o.RelTol)
		spec.Iterations = k
	}
	return spec
}

func TestFitTargetZeroTolIsLegacy(t *testing.T) {
	small := DefaultFitOptions()
	small.Degree, small.InitDegree, small.RelTol = 15, 3, 1e-4
	for _, o := range []FitOptions{DefaultFitOptions(), small} {
		require.Zero(t, o.Tol)
		for _, c := range []struct {
			kind   string
			lo, hi float64
		}{
			{FnGELU, -8, 8}, {FnGELU, -45, 45}, {FnExp, -12, 0.5}, {FnReLU, -3, 5},
			{FnRecip, 0.5, 20}, {FnRecip, 3, 3}, {FnInvSqrt, 0.01, 4}, {FnInvSqrt, 0.2, 0.9},
		} {
			got, err := FitSpec("s", c.kind, c.lo, c.hi, o)
			require.NoError(t, err, c.kind)
			want := legacyRefit(PolySpec{Site: "s", Kind: c.kind, Spec: polyapprox.Spec{Interval: got.Interval}, Observed: [2]float64{c.lo, c.hi}}, o)
			require.Equal(t, want, got, c.kind)
			jg, err := json.Marshal(got)
			require.NoError(t, err)
			jw, err := json.Marshal(want)
			require.NoError(t, err)
			require.Equal(t, string(jw), string(jg))
			require.NotContains(t, string(jg), "max_err")
		}
	}
	// the options themselves serialize as before
	j, err := json.Marshal(DefaultFitOptions())
	require.NoError(t, err)
	require.JSONEq(t, `{"margin":0.1,"degree":63,"init_degree":7,"upper_factor":2,"rel_tol":0.001}`, string(j))
}

func TestFitTargetJSONRoundTrip(t *testing.T) {
	spec, err := FitSpec("g", FnGELU, -8, 8, targetOpts(1e-3, 63))
	require.NoError(t, err)
	require.Greater(t, spec.MaxErr, 0.0)
	j, err := json.Marshal(spec)
	require.NoError(t, err)
	require.Contains(t, string(j), `"max_err":`)
	var back PolySpec
	require.NoError(t, json.Unmarshal(j, &back))
	require.Equal(t, spec, back)

	o := targetOpts(1e-3, 63)
	o.ReLUTol = 2e-2
	j, err = json.Marshal(o)
	require.NoError(t, err)
	require.Contains(t, string(j), `"tol":0.001`)
	require.Contains(t, string(j), `"relu_tol":0.02`)
	var ob FitOptions
	require.NoError(t, json.Unmarshal(j, &ob))
	require.Equal(t, o, ob)
	// an old config without the fields decodes to no target
	var old FitOptions
	require.NoError(t, json.Unmarshal([]byte(`{"margin":0.1,"degree":63,"init_degree":7,"upper_factor":2,"rel_tol":0.001}`), &old))
	require.Equal(t, DefaultFitOptions(), old)
}
