package he

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/polyapprox"
)

// Precision metric used below: bits = -log2(max_i |HE_i - twin_i| / max_i |twin_i|),
// where twin is the float64 plaintext twin (polyapprox Evaluate) of the very
// same polynomial or plan, evaluated on the same inputs. Required: >= 20 bits.
const evalTestMinBits = 20

func TestPolynomialMatchesTwinAndDepth(t *testing.T) {
	c := newEvalTestCtx(t, 12, 9)
	tr := NewTrace()
	ev := NewEvaluator(c.p, c.evalTestKeys(), tr)
	slots := c.params.MaxSlots()
	gelu := func(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }
	cases := []struct {
		name string
		f    func(float64) float64
		iv   polyapprox.Interval
		deg  int
	}{
		{"recip", func(x float64) float64 { return 1 / x }, polyapprox.Interval{A: 0.5, B: 4}, 63},
		{"invsqrt", func(x float64) float64 { return 1 / math.Sqrt(x) }, polyapprox.Interval{A: 0.1, B: 10}, 63},
		{"exp", math.Exp, polyapprox.Interval{A: -4, B: 2}, 31},
		{"gelu", gelu, polyapprox.Interval{A: -6, B: 6}, 63},
		{"tanh", math.Tanh, polyapprox.Interval{A: -1, B: 1}, 31}, // unit interval: no change of basis
		{"sigmoid", func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }, polyapprox.Interval{A: -8, B: 8}, 15},
		{"x^4", func(x float64) float64 { return x * x * x * x }, polyapprox.Interval{A: -2, B: 2}, 4}, // degree 2^k: one level more
		{"x^2 deg8", func(x float64) float64 { return x * x }, polyapprox.Interval{A: -1, B: 1}, 8},
		{"affine deg1", func(x float64) float64 { return 3*x - 1 }, polyapprox.Interval{A: -1, B: 2}, 1},
		{"square deg2", func(x float64) float64 { return x * x }, polyapprox.Interval{A: 0, B: 1}, 2},
		{"cubic deg3", func(x float64) float64 { return x * x * x }, polyapprox.Interval{A: -1, B: 1}, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := polyapprox.Interpolate(tc.f, tc.iv, tc.deg)
			require.NoError(t, err)
			x := evalTestUniform(11, slots, tc.iv.A, tc.iv.B)
			in := c.evalTestEncrypt(t, x, c.params.MaxLevel())
			out, err := ev.WithLabel(tc.name).Polynomial(in, p)
			require.NoError(t, err)
			require.Equal(t, in.Level()-p.Depth(), out.Level(), "levels consumed must equal Depth()=%d", p.Depth())
			require.Equal(t, 0, out.Scale.Cmp(in.Scale), "output scale must equal input scale")
			want := make([]float64, slots)
			for i := range want {
				want[i] = p.Evaluate(x[i])
			}
			bits := evalTestRelPrecBits(c.evalTestDecrypt(t, out), want)
			t.Logf("%s degree %d on [%g,%g]: depth %d, %.1f bits relative to max |p|", tc.name, tc.deg, tc.iv.A, tc.iv.B, p.Depth(), bits)
			require.GreaterOrEqual(t, bits, float64(evalTestMinBits))
		})
	}
	for _, r := range tr.Records() {
		require.Equal(t, OpPolynomial, r.Kind)
		if r.Label == "affine deg1" {
			require.Equal(t, 0, r.KeySwitches, "a linear polynomial needs no relinearization")
		} else {
			require.Greater(t, r.KeySwitches, 0, "%s: relinearizations must be counted", r.Label)
		}
	}
}

func TestPolynomialLevelCheckUpFront(t *testing.T) {
	c := newEvalTestCtx(t, 12, 7)
	ev := NewEvaluator(c.p, c.evalTestKeys(), nil)
	p, err := polyapprox.Interpolate(math.Exp, polyapprox.Interval{A: -1, B: 3}, 63) // depth 7
	require.NoError(t, err)
	x := evalTestUniform(12, 8, -1, 3)
	ct := c.evalTestEncrypt(t, x, 6)
	_, err = ev.Polynomial(ct, p)
	var le *LevelError
	require.True(t, errors.As(err, &le), "got %v", err)
	require.Equal(t, 7, le.Needed)
	require.Equal(t, 6, le.Left)

	// degree 2^k: polyapprox counts one level more than Lattigo's pre-check; we must refuse up front.
	p64, err := polyapprox.Interpolate(math.Exp, polyapprox.Interval{A: -1, B: 1}, 64) // depth 7 (not 6)
	require.NoError(t, err)
	_, err = ev.Polynomial(ct, p64)
	require.True(t, errors.As(err, &le), "got %v", err)
	require.Equal(t, 7, le.Needed)
}

func TestPowerBinaryMethod(t *testing.T) {
	c := newEvalTestCtx(t, 12, 4)
	tr := NewTrace()
	ev := NewEvaluator(c.p, c.evalTestKeys(), tr)
	slots := c.params.MaxSlots()
	x := evalTestUniform(13, slots, -1.5, 1.5)
	in := c.evalTestEncrypt(t, x, c.params.MaxLevel())
	for _, pw := range []int{1, 2, 3, 4, 5, 7, 8, 12} {
		t.Run(fmt.Sprint(pw), func(t *testing.T) {
			out, err := ev.Power(in, pw)
			require.NoError(t, err)
			wantDepth := int(math.Ceil(math.Log2(float64(pw))))
			require.Equal(t, in.Level()-wantDepth, out.Level())
			want := make([]float64, slots)
			for i := range want {
				want[i] = math.Pow(x[i], float64(pw))
			}
			bits := evalTestRelPrecBits(c.evalTestDecrypt(t, out), want)
			t.Logf("x^%d: %.1f bits", pw, bits)
			require.GreaterOrEqual(t, bits, float64(evalTestMinBits))
		})
	}
	_, err := ev.Power(in, 17) // needs 5 levels
	var le *LevelError
	require.True(t, errors.As(err, &le))
	require.Equal(t, 5, le.Needed)
	for _, r := range tr.Records() {
		if r.Note == "x^12" {
			require.Equal(t, 3+2-1, r.KeySwitches) // 3 squarings + (popcount 2 - 1) products
		}
	}
}

func TestNewtonInvSqrtPlan(t *testing.T) {
	c := newEvalTestCtx(t, 12, 9)
	tr := NewTrace()
	ev := NewEvaluator(c.p, c.evalTestKeys(), tr)
	iv := polyapprox.Interval{A: 0.1, B: 4}
	init, err := polyapprox.Interpolate(func(x float64) float64 { return 1 / math.Sqrt(x) }, iv, 7)
	require.NoError(t, err)
	plan := polyapprox.NewtonInvSqrt{Init: init, Iterations: 2}
	require.NoError(t, plan.Validate())
	slots := c.params.MaxSlots()
	x := evalTestUniform(14, slots, iv.A, iv.B)
	in := c.evalTestEncrypt(t, x, c.params.MaxLevel())
	out, err := ev.EvaluateNewtonInvSqrt(in, plan)
	require.NoError(t, err)
	require.Equal(t, in.Level()-plan.Depth(), out.Level(), "levels consumed must equal plan.Depth()=%d", plan.Depth())
	want := make([]float64, slots)
	truth := make([]float64, slots)
	for i := range want {
		want[i] = plan.Evaluate(x[i])
		truth[i] = 1 / math.Sqrt(x[i])
	}
	got := c.evalTestDecrypt(t, out)
	bits := evalTestRelPrecBits(got, want)
	t.Logf("newton inv sqrt (init deg 7, 2 iterations): %.1f bits vs twin, %.1f bits vs 1/sqrt", bits, evalTestRelPrecBits(got, truth))
	require.GreaterOrEqual(t, bits, float64(evalTestMinBits))
	recs := tr.Records()
	require.Len(t, recs, 1)
	require.Equal(t, OpInvSqrt, recs[0].Kind)
	require.GreaterOrEqual(t, recs[0].KeySwitches, 3*plan.Iterations)

	// up-front level check
	low := c.evalTestEncrypt(t, x[:8], plan.Depth()-1)
	_, err = ev.EvaluateNewtonInvSqrt(low, plan)
	require.ErrorContains(t, err, fmt.Sprintf("needs %d levels, ciphertext has %d left", plan.Depth(), plan.Depth()-1))
}

func TestGoldschmidtInvPlan(t *testing.T) {
	c := newEvalTestCtx(t, 12, 8)
	ev := NewEvaluator(c.p, c.evalTestKeys(), NewTrace())
	slots := c.params.MaxSlots()
	for _, iters := range []int{0, 2, 5} {
		t.Run(fmt.Sprint(iters), func(t *testing.T) {
			plan := polyapprox.GoldschmidtInv{Interval: polyapprox.Interval{A: 0.2, B: 3}, Iterations: iters}
			x := evalTestUniform(15, slots, plan.Interval.A, plan.Interval.B)
			in := c.evalTestEncrypt(t, x, c.params.MaxLevel())
			out, err := ev.EvaluateGoldschmidtInv(in, plan)
			require.NoError(t, err)
			require.Equal(t, in.Level()-plan.Depth(), out.Level(), "levels consumed must equal plan.Depth()=%d", plan.Depth())
			want := make([]float64, slots)
			for i := range want {
				want[i] = plan.Evaluate(x[i])
			}
			bits := evalTestRelPrecBits(c.evalTestDecrypt(t, out), want)
			t.Logf("goldschmidt %d iterations: %.1f bits vs twin", iters, bits)
			require.GreaterOrEqual(t, bits, float64(evalTestMinBits))
		})
	}
	plan := polyapprox.GoldschmidtInv{Interval: polyapprox.Interval{A: 0.2, B: 3}, Iterations: 6} // depth 9 > 8
	ct := c.evalTestEncrypt(t, []float64{1}, c.params.MaxLevel())
	_, err := ev.EvaluateGoldschmidtInv(ct, plan)
	var le *LevelError
	require.True(t, errors.As(err, &le))
	require.Equal(t, 9, le.Needed)
	require.Equal(t, 8, le.Left)
}

// A drifted input scale (after a ciphertext product) must not cost precision:
// constants are added at the ciphertext's own scale.
func TestPolynomialOnDriftedScale(t *testing.T) {
	c := newEvalTestCtx(t, 12, 9)
	ev := NewEvaluator(c.p, c.evalTestKeys(), nil)
	slots := c.params.MaxSlots()
	x := evalTestUniform(16, slots, -1.2, 1.2)
	in := c.evalTestEncrypt(t, x, c.params.MaxLevel())
	sq, err := ev.Power(in, 2)
	require.NoError(t, err)
	require.Greater(t, relScaleDiff(sq.Scale, in.Scale), 1e-8, "test needs a drifted scale")
	p, err := polyapprox.Interpolate(func(v float64) float64 { return math.Exp(-v) }, polyapprox.Interval{A: 0, B: 1.5}, 31)
	require.NoError(t, err)
	out, err := ev.Polynomial(sq, p)
	require.NoError(t, err)
	want := make([]float64, slots)
	for i := range want {
		want[i] = p.Evaluate(x[i] * x[i])
	}
	bits := evalTestRelPrecBits(c.evalTestDecrypt(t, out), want)
	t.Logf("exp(-x^2) on a drifted scale 2^%.7f: %.1f bits", logScale(sq.Scale), bits)
	require.GreaterOrEqual(t, bits, float64(evalTestMinBits))

	ac, err := ev.AddConst(sq, 3)
	require.NoError(t, err)
	require.Equal(t, 0, ac.Scale.Cmp(sq.Scale))
	for i := range want {
		want[i] = x[i]*x[i] + 3
	}
	require.Less(t, evalTestMaxAbsErr(c.evalTestDecrypt(t, ac), want), 1e-7)
}
