package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

const gradTol = 1e-6

func rng(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 42)) }

func randT(seed uint64, std float64, shape ...int) *Tensor {
	x := New(shape...)
	x.FillNormal(rng(seed), std)
	return x
}

func requireGrads(t *testing.T, res []GradCheckResult) {
	t.Helper()
	require.NotEmpty(t, res)
	for _, r := range res {
		require.Greater(t, r.Checked, 0, r.Name)
		require.Less(t, r.AggRelErr, gradTol, r.String())
	}
}

// identityNorm lets nn tests build blocks without importing model/norm.
type identityNorm struct{}

func (identityNorm) Forward(x *Tensor) *Tensor  { return x.Clone() }
func (identityNorm) Backward(d *Tensor) *Tensor { return d.Clone() }
func (identityNorm) Params() []*Param           { return nil }
func (identityNorm) Sites() []*Site             { return nil }
func (identityNorm) Method() string             { return "none" }

func TestGradCheckDetectsWrongGradient(t *testing.T) {
	x := []float64{1, 2, 3}
	loss := func() float64 { return x[0]*x[0] + x[1]*x[2] }
	good := GradCheck("good", loss, x, []float64{2, 3, 2}, 1e-5, 0, rng(1))
	require.Less(t, good.AggRelErr, 1e-9)
	bad := GradCheck("bad", loss, x, []float64{2, 3, 2.1}, 1e-5, 0, rng(1))
	require.Greater(t, bad.AggRelErr, 1e-3)
	require.Greater(t, bad.MaxRelErr, 1e-2)
}

func TestGemmMatchesNaive(t *testing.T) {
	a, b := randT(1, 1, 3, 4), randT(2, 1, 4, 5)
	c := New(3, 5)
	Gemm(false, false, 3, 5, 4, 1, a.Data, 4, b.Data, 5, 0, c.Data, 5)
	for i := 0; i < 3; i++ {
		for j := 0; j < 5; j++ {
			var s float64
			for k := 0; k < 4; k++ {
				s += a.Data[i*4+k] * b.Data[k*5+j]
			}
			require.InDelta(t, s, c.Data[i*5+j], 1e-12)
		}
	}
}

func TestLinearGrad(t *testing.T) {
	l := NewLinear("lin", 5, 4, rng(1))
	l.B.Value.FillNormal(rng(9), 1)
	requireGrads(t, CheckModule(l, randT(2, 1, 2, 3, 5), false, nil, nil, 1e-5, 0, 1))
}

func TestEmbeddingGrad(t *testing.T) {
	e := NewEmbedding("emb", 7, 4, rng(1))
	ids := []int{1, 3, 3, 6, 0, 1}
	r := randT(5, 1, 2, 3, 4)
	loss := func() float64 {
		y, err := e.ForwardIDs(ids, 2, 3)
		require.NoError(t, err)
		var s float64
		for i, v := range y.Data {
			s += v * r.Data[i]
		}
		return s
	}
	loss()
	e.Table.Grad.Zero()
	e.Backward(r)
	requireGrads(t, []GradCheckResult{GradCheck("emb", loss, e.Table.Value.Data, append([]float64(nil), e.Table.Grad.Data...), 1e-5, 0, rng(2))})
	_, err := e.ForwardIDs([]int{7}, 1, 1)
	require.ErrorContains(t, err, "outside vocabulary")
}

func TestPosEmbeddingGrad(t *testing.T) {
	p := NewPosEmbedding("pos", 5, 4, rng(1))
	requireGrads(t, CheckModule(p, randT(2, 1, 2, 3, 4), false, nil, nil, 1e-5, 0, 1))
}

func TestPatchEmbeddingGrad(t *testing.T) {
	p, err := NewPatchEmbedding("patch", 4, 6, 2, 3, rng(1))
	require.NoError(t, err)
	require.Equal(t, 6, p.Tokens())
	requireGrads(t, CheckModule(p, randT(2, 1, 2, 4, 6), false, nil, nil, 1e-5, 0, 1))
	_, err = NewPatchEmbedding("p", 5, 6, 2, 3, rng(1))
	require.Error(t, err)
	// patch layout: token 1 of a 4x6 image with 2x2 patches covers pixels (0,2),(0,3),(1,2),(1,3)
	img := New(1, 4, 6)
	img.Data[0*6+3] = 1
	p.Proj.W.Value.Zero()
	p.Proj.W.Value.Data[1*3+0] = 1 // pixel index 1 inside the patch -> output 0
	y := p.Forward(img)
	require.Equal(t, 1.0, y.Data[1*3+0])
}

func TestActivationsGrad(t *testing.T) {
	for _, name := range []string{ActGELU, ActReLU, ActQuad, ActPoly, ActNone} {
		t.Run(name, func(t *testing.T) {
			a, err := NewActivation(name, "act", 7, 4)
			require.NoError(t, err)
			requireGrads(t, CheckModule(a, randT(3, 1.5, 2, 3, 4), false, nil, nil, 1e-6, 0, 1))
		})
	}
	_, err := NewActivation("swish", "a", 0, 0)
	require.Error(t, err)
}

func TestChebyshevDerivative(t *testing.T) {
	a, err := NewActivation(ActPoly, "p", 15, 3)
	require.NoError(t, err)
	p := a.(*PolyActivation)
	for _, x := range []float64{-2.5, -1, 0, 0.3, 2.9} {
		h := 1e-5
		num := (p.P.Evaluate(x+h) - p.P.Evaluate(x-h)) / (2 * h)
		require.InDelta(t, num, p.deriv.Evaluate(x), 1e-7)
		require.InDelta(t, gelu(x), p.P.Evaluate(x), 1e-3)
	}
}

func TestFFNGrad(t *testing.T) {
	f, err := NewFFN("ffn", 4, 8, ActGELU, 0, 0, rng(1))
	require.NoError(t, err)
	requireGrads(t, CheckModule(f, randT(2, 1, 2, 3, 4), false, nil, nil, 1e-5, 0, 1))
}

func kernels(t *testing.T, heads int) map[string]AttentionKernel {
	ps, err := NewPowerSoftmax("a", 4, 0, 1e-3, false, false, false)
	require.NoError(t, err)
	out := map[string]AttentionKernel{"softmax": NewSoftmax("a"), "power4": ps}
	for _, p := range []int{2, 6, 8} {
		k, err := NewPowerSoftmax("a", p, 1e-2, 0.1, true, false, false)
		require.NoError(t, err)
		out["power-scaled-eps-p"+string(rune('0'+p))] = k
	}
	k, err := NewPowerSoftmax("a", 4, 1e-2, 0.1, true, true, false)
	require.NoError(t, err)
	k.Eps = 0 // stop-gradient max is exact only when eps = 0
	out["power-scaled-stopgrad-eps0"] = k
	k, err = NewPowerSoftmax("a", 4, 1e-3, 0.1, true, false, true)
	require.NoError(t, err)
	out["power-lengthnorm"] = k
	pf, err := NewPowerFixed("a", 4, heads, true)
	require.NoError(t, err)
	out["power-fixed-learned"] = pf
	pc, err := NewPowerFixed("a", 2, heads, false)
	require.NoError(t, err)
	out["power-fixed-calibrated"] = pc
	return out
}

func TestAttentionVariantsGrad(t *testing.T) {
	for name, k := range kernels(t, 2) {
		for _, causal := range []bool{false, true} {
			for _, temp := range []bool{false, true} {
				if ps, ok := k.(*PowerSoftmax); ok && temp && ps.Eps == 0 {
					// with eps = 0 a row's weights do not depend on its scale, so the
					// temperature gradient is exactly zero and relative errors are noise
					continue
				}
				m, err := NewMultiHeadAttention("attn", 6, 2, 5, causal, k, temp, rng(1))
				require.NoError(t, err)
				if temp {
					m.Temp.Value.FillNormal(rng(4), 1)
				}
				x := randT(2, 1, 2, 4, 6)
				res := CheckModule(m, x, false, nil, nil, 1e-6, 0, 3)
				for _, r := range res {
					require.Less(t, r.AggRelErr, gradTol, "%s causal=%v temp=%v: %s", name, causal, temp, r)
				}
				require.Len(t, m.Entropy(), 2)
			}
		}
	}
}

func TestPowerSoftmaxScaledEqualsUnscaledWhenEpsZero(t *testing.T) {
	un, err := NewPowerSoftmax("a", 4, 0, 0, false, false, false)
	require.NoError(t, err)
	sc, err := NewPowerSoftmax("a", 4, 0, 0.5, true, false, false)
	require.NoError(t, err)
	scEps, err := NewPowerSoftmax("a", 4, 0.5, 0.5, true, false, false)
	require.NoError(t, err)
	unEps, err := NewPowerSoftmax("a", 4, 0.5, 0.5, false, false, false)
	require.NoError(t, err)
	s := randT(1, 2, 4, 4).Data
	a1, a2, a3, a4 := make([]float64, 16), make([]float64, 16), make([]float64, 16), make([]float64, 16)
	un.Forward(0, 4, true, s, a1)
	sc.Forward(0, 4, true, s, a2)
	scEps.Forward(0, 4, true, s, a3)
	unEps.Forward(0, 4, true, s, a4)
	var diffEps float64
	for i := range a1 {
		require.InDelta(t, a1[i], a2[i], 1e-12)
		diffEps += math.Abs(a3[i] - a4[i])
	}
	require.Greater(t, diffEps, 1e-3, "with eps > 0 scaling changes the function")
	// rows sum to one without eps; masked entries are zero
	for i := 0; i < 4; i++ {
		var sum float64
		for j := 0; j < 4; j++ {
			if j > i {
				require.Zero(t, a1[i*4+j])
			}
			sum += a1[i*4+j]
		}
		require.InDelta(t, 1, sum, 1e-12)
	}
	_, err = NewPowerSoftmax("a", 3, 0, 0, false, false, false)
	require.Error(t, err)
}

func TestEntropyRegularizerGrad(t *testing.T) {
	for _, lengthNorm := range []bool{false, true} {
		t.Run(fmt.Sprintf("lengthNorm=%v", lengthNorm), func(t *testing.T) { testEntropyRegularizerGrad(t, lengthNorm) })
	}
}

// TestAttentionEntropyIsAnEntropy checks that the recorded entropy lies in
// [0, log T] for kernels whose rows do not sum to 1.
func TestAttentionEntropyIsAnEntropy(t *testing.T) {
	for _, lengthNorm := range []bool{false, true} {
		ps, err := NewPowerSoftmax("a", 4, 1e-2, 0.1, false, false, lengthNorm)
		require.NoError(t, err)
		m, err := NewMultiHeadAttention("attn", 8, 2, 6, false, ps, false, rng(2))
		require.NoError(t, err)
		m.Forward(randT(3, 1, 2, 6, 8))
		for h, e := range m.Entropy() {
			require.GreaterOrEqual(t, e, 0.0, "head %d", h)
			require.LessOrEqual(t, e, math.Log(6)+1e-12, "head %d", h)
		}
	}
}

func testEntropyRegularizerGrad(t *testing.T, lengthNorm bool) {
	ps, err := NewPowerSoftmax("a", 4, 1e-2, 0.1, !lengthNorm, false, lengthNorm)
	require.NoError(t, err)
	m, err := NewMultiHeadAttention("attn", 6, 3, 5, true, ps, true, rng(1))
	require.NoError(t, err)
	m.Temp.Value.FillNormal(rng(5), 1)
	reg := NewEntropyRegularizer("ent", 1, 3, 0.05, 1, 0.5)
	// thresholds spread so that some heads are penalized
	copy(reg.Theta.Value.Data, []float64{0.1, 0.9, 0.3})
	x := randT(2, 1, 2, 5, 6)
	extra := func() float64 {
		l, _ := reg.Loss([][]float64{m.Entropy()}, 5)
		return l
	}
	var thetaGrad []float64
	hook := func() {
		reg.Theta.Grad.Zero()
		_, de := reg.Loss([][]float64{m.Entropy()}, 5)
		m.SetEntropyGrad(de[0])
		thetaGrad = append([]float64(nil), reg.Theta.Grad.Data...)
	}
	res := CheckModule(m, x, false, extra, hook, 1e-6, 0, 9)
	requireGrads(t, res)
	// thresholds
	m.Forward(x)
	lossTheta := func() float64 { l, _ := reg.Loss([][]float64{m.Entropy()}, 5); return l }
	r := GradCheck("theta", lossTheta, reg.Theta.Value.Data, thetaGrad, 1e-6, 0, rng(1))
	require.Less(t, r.AggRelErr, gradTol, r.String())
	var nonzero int
	for _, g := range thetaGrad {
		if g != 0 {
			nonzero++
		}
	}
	require.Greater(t, nonzero, 0, "some head must be outside the tolerance")
	m.SetEntropyGrad(nil)
}

func TestEntropyRegularizerPenalty(t *testing.T) {
	reg := NewEntropyRegularizer("ent", 2, 2, 0.2, 1, 0.5)
	emax := math.Log(8)
	e := [][]float64{{0.5 * emax, 0.5*emax + 0.1*emax}, {0.5*emax + 0.3*emax, 0}}
	l, de := reg.Loss(e, 8)
	d1, d2 := 0.3*emax, -0.5*emax
	require.InDelta(t, (d1*d1+d2*d2)/4, l, 1e-12)
	require.Zero(t, de[0][0])
	require.Zero(t, de[0][1])
	require.InDelta(t, 2*d1/4, de[1][0], 1e-12)
}

func TestCrossEntropyGrad(t *testing.T) {
	logits := randT(1, 2, 5, 4)
	targets := []int{0, 3, 2, 1, 3}
	_, g, err := CrossEntropy(logits, targets)
	require.NoError(t, err)
	loss := func() float64 { l, _, _ := CrossEntropy(logits, targets); return l }
	requireGrads(t, []GradCheckResult{GradCheck("ce", loss, logits.Data, g.Data, 1e-5, 0, rng(1))})
	_, _, err = CrossEntropy(logits, []int{0, 1, 2, 3, 4})
	require.Error(t, err)
	u := New(1, 4)
	l, _, err := CrossEntropy(u, []int{2})
	require.NoError(t, err)
	require.InDelta(t, math.Log(4), l, 1e-12)
}

func TestBlockGrad(t *testing.T) {
	for _, scaled := range []bool{false, true} {
		for _, act := range []string{ActGELU, ActNone} {
			k := NewSoftmax("b")
			attn, err := NewMultiHeadAttention("b.attn", 4, 2, 3, true, k, false, rng(1))
			require.NoError(t, err)
			f, err := NewFFN("b.ffn", 4, 8, act, 0, 0, rng(2))
			require.NoError(t, err)
			b := NewBlock("b", identityNorm{}, identityNorm{}, attn, f, scaled)
			if scaled {
				b.Beta.Value.Data[0], b.Alpha.Value.Data[0] = 0.7, 1.6
			}
			requireGrads(t, CheckModule(b, randT(3, 1, 2, 3, 4), false, nil, nil, 1e-6, 0, 1))
		}
	}
}

func TestHeadsGrad(t *testing.T) {
	head := Sequential{&MeanPool{}, NewLinear("head", 4, 3, rng(1))}
	requireGrads(t, CheckModule(head, randT(3, 1, 2, 5, 4), false, nil, nil, 1e-5, 0, 1))
}

func TestSitePolyAndCalibration(t *testing.T) {
	s := NewSite("g", FnGELU)
	require.Error(t, s.SetMode(ModePoly))
	require.NoError(t, s.SetMode(ModeCalibrate))
	xs := []float64{-3, 0.5, 2}
	out := make([]float64, 3)
	s.Apply(out, xs)
	lo, hi, ok := s.Range()
	require.True(t, ok)
	require.Equal(t, -3.0, lo)
	require.Equal(t, 2.0, hi)
	spec, err := s.Fit(DefaultFitOptions())
	require.NoError(t, err)
	require.InDelta(t, -3.5, spec.Interval[0], 1e-12)
	require.InDelta(t, 2.5, spec.Interval[1], 1e-12)
	require.NoError(t, s.SetMode(ModePoly))
	s.Apply(out, []float64{-1, 1, 10})
	require.InDelta(t, gelu(-1), out[0], 1e-6)
	n, total, worst := s.Outside()
	require.Equal(t, int64(1), n)
	require.Equal(t, int64(3), total)
	require.InDelta(t, 7.5, worst, 1e-12)
	r := NewSite("r", FnRecip)
	spec, err = FitSpec("r", FnRecip, 0.5, 20, DefaultFitOptions())
	require.NoError(t, err)
	require.NoError(t, r.Install(spec))
	require.NoError(t, r.SetMode(ModePoly))
	require.InDelta(t, 1/3.0, r.Eval1(3), 1e-3/3)
	_, err = FitSpec("r", FnRecip, -1, 2, DefaultFitOptions())
	require.Error(t, err)
	_, err = FitSpec("r", FnRecip, 1e-9, 1e3, DefaultFitOptions())
	require.ErrorContains(t, err, "too wide")
	spec, err = FitSpec("s", FnInvSqrt, 0.01, 4, DefaultFitOptions())
	require.NoError(t, err)
	f, depth, err := spec.Evaluator()
	require.NoError(t, err)
	require.Greater(t, depth, 1)
	require.InDelta(t, 1/math.Sqrt(0.5), f(0.5), 1e-3*1/math.Sqrt(0.5))
}

func TestElementwiseParallelMatchesScalar(t *testing.T) {
	a, err := NewActivation(ActGELU, "g", 0, 0)
	require.NoError(t, err)
	x := randT(7, 2, 50000)
	y := a.Forward(x)
	dy := randT(8, 1, 50000)
	dx := a.Backward(dy)
	for i, v := range x.Data {
		require.Equal(t, gelu(v), y.Data[i])
		require.Equal(t, dy.Data[i]*geluDeriv(v), dx.Data[i])
	}
}

func TestUniformAttentionEntropyIsLogT(t *testing.T) {
	m, err := NewMultiHeadAttention("a", 4, 2, 8, false, NewSoftmax("a"), false, rng(1))
	require.NoError(t, err)
	m.QKV.W.Value.Zero() // zero scores -> uniform weights
	m.Forward(randT(1, 1, 3, 8, 4))
	for _, e := range m.Entropy() {
		require.InDelta(t, math.Log(8), e, 1e-6)
	}
}

func TestPowerFixedInitializesFromFirstBatch(t *testing.T) {
	k, err := NewPowerFixed("a", 2, 1, false)
	require.NoError(t, err)
	require.True(t, k.G.Frozen)
	m, err := NewMultiHeadAttention("a", 4, 1, 4, false, k, false, rng(1))
	require.NoError(t, err)
	x := randT(2, 1, 2, 4, 4)
	m.Forward(x)
	require.Equal(t, 1.0, k.Ready.Value.Data[0])
	// mean over rows of sum_j s_ij^2 equals exp(G): rows of a then average to 1
	var tot float64
	for _, v := range m.Weights() {
		tot += v
	}
	require.InDelta(t, 1, tot/float64(2*4), 1e-12)
	g := k.G.Value.Data[0]
	m.Forward(randT(3, 5, 2, 4, 4))
	require.Equal(t, g, k.G.Value.Data[0], "initialized once")
}

func TestCausalAttentionIgnoresFuture(t *testing.T) {
	for name, k := range kernels(t, 2) {
		m, err := NewMultiHeadAttention("a", 6, 2, 5, true, k, false, rng(1))
		require.NoError(t, err)
		x := randT(4, 1, 1, 5, 6)
		y := m.Forward(x).Clone()
		x2 := x.Clone()
		for j := 0; j < 6; j++ {
			x2.Data[4*6+j] += 3 // change the last token only
		}
		y2 := m.Forward(x2)
		for i := 0; i < 4*6; i++ {
			require.Equal(t, y.Data[i], y2.Data[i], name)
		}
		require.NotEqual(t, y.Data[4*6], y2.Data[4*6], name)
	}
}

// toPoly calibrates the sites of m on x, installs polynomials and switches to poly mode.
func toPoly(t *testing.T, m Module, sites []*Site, x *Tensor, fit FitOptions) {
	t.Helper()
	for _, s := range sites {
		require.NoError(t, s.SetMode(ModeCalibrate))
	}
	m.Forward(x)
	for _, s := range sites {
		_, err := s.Fit(fit)
		require.NoError(t, err)
		require.NoError(t, s.SetMode(ModePoly))
	}
}

func TestPolySpecDerivatives(t *testing.T) {
	fit := DefaultFitOptions()
	for _, c := range []struct {
		kind   string
		lo, hi float64
	}{{FnGELU, -4, 4}, {FnExp, -3, 2}, {FnRecip, 0.2, 7}, {FnInvSqrt, 0.05, 9}, {FnReLU, -2, 2}} {
		spec, err := FitSpec("s", c.kind, c.lo, c.hi, fit)
		require.NoError(t, err)
		f, _, err := spec.Evaluator()
		require.NoError(t, err)
		d, err := spec.Derivative()
		require.NoError(t, err)
		for i := 0; i <= 20; i++ {
			x := c.lo + (c.hi-c.lo)*float64(i)/20
			h := 1e-6 * math.Max(1, math.Abs(x))
			num := (f(x+h) - f(x-h)) / (2 * h)
			require.InDelta(t, num, d(x), 1e-6*math.Max(1, math.Abs(num)), "%s at %g", c.kind, x)
		}
	}
}

func TestPolyModeGrad(t *testing.T) {
	fit := DefaultFitOptions()
	fit.Degree = 15
	t.Run("gelu", func(t *testing.T) {
		a, err := NewActivation(ActGELU, "g", 0, 0)
		require.NoError(t, err)
		x := randT(3, 1.5, 2, 3, 4)
		toPoly(t, a, a.(SiteHolder).Sites(), x, fit)
		requireGrads(t, CheckModule(a, x, false, nil, nil, 1e-6, 0, 1))
	})
	ps, err := NewPowerSoftmax("a", 4, 1e-2, 0.1, false, false, true)
	require.NoError(t, err)
	for name, k := range map[string]AttentionKernel{"softmax": NewSoftmax("a"), "power-softmax": ps} {
		t.Run(name, func(t *testing.T) {
			m, err := NewMultiHeadAttention("attn", 6, 2, 5, true, k, true, rng(1))
			require.NoError(t, err)
			m.Temp.Value.FillNormal(rng(4), 1)
			x := randT(2, 1, 2, 4, 6)
			toPoly(t, m, m.Sites(), x, fit)
			requireGrads(t, CheckModule(m, x, false, nil, nil, 1e-6, 0, 3))
			// and the poly-mode function really differs from the exact one
			y := m.Forward(x).Clone()
			for _, s := range m.Sites() {
				require.NoError(t, s.SetMode(ModeExact))
			}
			var diff float64
			for i, v := range m.Forward(x).Data {
				diff += math.Abs(v - y.Data[i])
			}
			require.Greater(t, diff, 0.0)
		})
	}
}

// TestAttentionWeightsGrad checks SetWeightsGrad: with the extra loss
// sum(w * a) over the attention weights, the hook's dL/da = w must give
// exact input and parameter gradients.
func TestAttentionWeightsGrad(t *testing.T) {
	ps, err := NewPowerSoftmax("a", 4, 1e-2, 0.1, false, false, true)
	require.NoError(t, err)
	m, err := NewMultiHeadAttention("attn", 6, 2, 5, true, ps, true, rng(1))
	require.NoError(t, err)
	m.Temp.Value.FillNormal(rng(6), 1)
	x := randT(2, 1, 2, 5, 6)
	w := randT(3, 1, 2*2*5*5).Data
	extra := func() float64 {
		var s float64
		for i, a := range m.Weights() {
			s += w[i] * a
		}
		return s
	}
	hook := func() { require.NoError(t, m.SetWeightsGrad(w)) }
	requireGrads(t, CheckModule(m, x, false, extra, hook, 1e-6, 0, 11))
	require.Error(t, m.SetWeightsGrad(make([]float64, 3)), "wrong length is an error")
	require.NoError(t, m.SetWeightsGrad(nil))
}
