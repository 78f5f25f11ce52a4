package norm

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/polyformer/polyformer/model/nn"
	"github.com/stretchr/testify/require"
)

func perturb(ps []*nn.Param, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 5))
	for _, p := range ps {
		if p.Frozen {
			continue
		}
		for i := range p.Value.Data {
			p.Value.Data[i] += 0.3 * rng.NormFloat64()
		}
	}
}

func requireGrad(t *testing.T, m nn.Module, x *nn.Tensor) {
	t.Helper()
	res := nn.CheckModule(m, x, false, nil, nil, 1e-5, 0, 11)
	require.NotEmpty(t, res)
	for _, r := range res {
		require.Less(t, r.AggRelErr, 1e-6, r.String())
	}
}

// trainSteps runs forward/backward/EndStep in training mode on fresh inputs
// so that running statistics move away from their initial values.
func trainSteps(t *testing.T, n nn.Norm, steps int, shape ...int) {
	t.Helper()
	tr, ok := n.(nn.Trainable)
	require.True(t, ok)
	tr.SetTraining(true)
	for s := 0; s < steps; s++ {
		x := randInput(uint64(100+s), shape...)
		for i := range x.Data {
			x.Data[i] = 1.5*x.Data[i] + 0.4
		}
		y := n.Forward(x)
		n.Backward(randInput(uint64(200+s), y.Shape...))
		n.(nn.StepEnder).EndStep()
	}
	tr.SetTraining(false)
}

func TestEveryMethodBuildsAndValidates(t *testing.T) {
	for _, k := range Methods() {
		n, err := NewWith(k, "n", 8, Options{})
		require.NoError(t, err, k)
		require.NotNil(t, n)
		require.NotEmpty(t, Describe(k))
	}
	require.ErrorContains(t, ValidMethod("batchnorm2"), "unknown normalization")
	_, err := NewWith(MethodBatchNorm, "n", 8, Options{Placement: "sideways"})
	require.ErrorContains(t, err, "placement")
	_, err = NewWith(MethodPowerNorm, "n", 6, Options{Groups: 4})
	require.ErrorContains(t, err, "groups")
	_, err = NewWith(MethodLayerNorm, "n", 0, Options{})
	require.ErrorContains(t, err, "width")
	require.Error(t, Options{Momentum: 2}.Validate())
	require.Error(t, Options{OutlierRatio: 0.5}.Validate())
	require.NoError(t, Options{}.Validate())
}

// TestGradCheckEveryMethod checks every norm layer in inference mode (after
// some training steps) and, where the forward differs, in training mode.
func TestGradCheckEveryMethod(t *testing.T) {
	cases := []struct {
		method string
		o      Options
	}{
		{MethodBatchNorm, Options{}}, {MethodRepBN, Options{RepAlpha: 0.7}}, {MethodPRepBN, Options{DecaySteps: 10}},
		{MethodPowerNorm, Options{ExactBackward: true}}, {MethodPowerNorm, Options{Groups: 2, ExactBackward: true}},
		{MethodUnified, Options{}}, {MethodUnified, Options{Window: 1}}, {MethodFixedScale, Options{}},
	}
	for _, c := range cases {
		t.Run(c.method, func(t *testing.T) {
			n, err := NewWith(c.method, "n", 6, c.o)
			require.NoError(t, err)
			trainSteps(t, n, 4, 5, 6) // PRepBN: lambda = 0.6
			perturb(n.Params(), 3)
			x := randInput(7, 2, 5, 6)
			requireGrad(t, n, x) // inference mode
			n.(nn.Trainable).SetTraining(true)
			requireGrad(t, n, x) // training mode (batch statistics)
		})
	}
}

func TestBatchNormStatistics(t *testing.T) {
	b := NewBatchNorm("bn", 3, Options{Momentum: 1})
	b.SetTraining(true)
	x := randInput(1, 50, 3)
	for i := range x.Data {
		x.Data[i] = x.Data[i]*2 + float64(i%3)
	}
	y := b.Forward(x)
	for j := 0; j < 3; j++ {
		var m, v float64
		for i := 0; i < 50; i++ {
			m += y.Data[i*3+j] / 50
		}
		for i := 0; i < 50; i++ {
			v += (y.Data[i*3+j] - m) * (y.Data[i*3+j] - m) / 50
		}
		require.InDelta(t, 0, m, 1e-12)
		require.InDelta(t, 1, v, 1e-4)
	}
	b.EndStep()
	// momentum 1: running statistics are the batch's (unbiased variance)
	b.SetTraining(false)
	y2 := b.Forward(x)
	for j := 0; j < 3; j++ {
		require.InDelta(t, b.bmean[j], b.RunMean.Value.Data[j], 1e-15)
		require.InDelta(t, b.bvar[j]*50/49, b.RunVar.Value.Data[j], 1e-12)
	}
	require.InDelta(t, y.Data[4], y2.Data[4]*math.Sqrt((b.bvar[1]*50/49+b.Eps)/(b.bvar[1]+b.Eps)), 1e-9)
	// EndStep without a new training forward changes nothing
	before := append([]float64(nil), b.RunMean.Value.Data...)
	b.EndStep()
	require.Equal(t, before, b.RunMean.Value.Data)
}

func TestPRepBNLambdaDecaysLinearly(t *testing.T) {
	p := NewPRepBN("p", 4, Options{DecaySteps: 4})
	var lambdas []float64
	p.SetTraining(true)
	for s := 0; s < 6; s++ {
		lambdas = append(lambdas, p.Lambda())
		y := p.Forward(randInput(uint64(s), 3, 4))
		p.Backward(y)
		p.EndStep()
	}
	require.Equal(t, []float64{1, 0.75, 0.5, 0.25, 0, 0}, lambdas)
	_, err := NewPRepBN("q", 4, Options{DecaySteps: 4}).Affine()
	require.ErrorContains(t, err, "lambda")
	// lambda = 0: the output is RepBN's alone and the LayerNorm site is not evaluated
	p.SetTraining(false)
	x := randInput(9, 3, 4)
	require.Equal(t, p.Rep.Forward(x).Data, p.Forward(x).Data)
	f, err := p.Affine()
	require.NoError(t, err)
	y, err := f.Apply(x)
	require.NoError(t, err)
	for i, v := range p.Forward(x).Data {
		require.InDelta(t, v, y.Data[i], 1e-12)
	}
}

func TestPowerNormApproximateBackward(t *testing.T) {
	p, err := NewPowerNorm("pn", 4, Options{})
	require.NoError(t, err)
	trainSteps(t, p, 5, 6, 4)
	nu := append([]float64(nil), p.RunNu.Value.Data...)
	require.NotEqual(t, make([]float64, 4), nu, "nu moves during training")
	x, dy := randInput(1, 6, 4), randInput(2, 6, 4)
	p.Forward(x)
	exact := p.Backward(dy) // inference mode: exact gradient
	p.SetTraining(true)
	p.Forward(x)
	approx := p.Backward(dy)
	// the approximate backward subtracts nu * xhat / psi per element
	for k := range x.Data {
		j := k % 4
		rstd := 1 / math.Sqrt(p.RunPhi2.Value.Data[j]+p.Eps)
		require.InDelta(t, exact.Data[k]-nu[j]*x.Data[k]*rstd*rstd, approx.Data[k], 1e-12)
	}
	// the forward uses only running statistics: training and inference agree
	p.SetTraining(false)
	a := p.Forward(x)
	p.SetTraining(true)
	require.Equal(t, a.Data, p.Forward(x).Data)
}

func TestUnifiedOutlierFiltration(t *testing.T) {
	u := NewUnified("u", 2, Options{Window: 3, OutlierRatio: 4})
	trainSteps(t, u, 3, 8, 2)
	require.Equal(t, 2.0, u.HistLen.Value.Data[0])
	u.SetTraining(true)
	x := randInput(5, 8, 2)
	for i := range x.Data {
		if i%2 == 0 {
			x.Data[i] *= 100 // channel 0 is an outlier batch
		}
	}
	u.Forward(x)
	require.True(t, u.outlier[0])
	require.False(t, u.outlier[1])
	hist := math.Exp((u.Hist.Value.Data[0] + u.Hist.Value.Data[2]) / 2)
	require.InDelta(t, hist, u.s[0], 1e-12)
	requireGrad(t, u, x)
	u.Forward(x)
	u.EndStep()
	require.InDelta(t, math.Log(hist), u.Hist.Value.Data[0], 1e-12, "an outlier records the smoothed value")
}

func TestFixedScaleCalibratesFromFirstBatch(t *testing.T) {
	f := NewFixedScale("f", 5, Options{})
	x := randInput(3, 40, 5)
	for i := range x.Data {
		x.Data[i] *= 3
	}
	f.SetTraining(true)
	y := f.Forward(x)
	var v float64
	for _, a := range y.Data {
		v += a * a
	}
	require.InDelta(t, 1, v/float64(len(y.Data)), 1e-4, "unit mean variance on the calibration batch")
	require.Equal(t, 1.0, f.Ready.Value.Data[0])
}

// TestAffineFormsMatchInference: every foldable norm's affine form equals
// its inference forward, and folding it into a linear layer is exact.
func TestAffineFormsMatchInference(t *testing.T) {
	for _, k := range []string{MethodBatchNorm, MethodRepBN, MethodPRepBN, MethodPowerNorm, MethodUnified, MethodFixedScale} {
		t.Run(k, func(t *testing.T) {
			n, err := NewWith(k, "n", 6, Options{DecaySteps: 3})
			require.NoError(t, err)
			trainSteps(t, n, 5, 7, 6)
			perturb(n.Params(), 4)
			f, err := n.(Foldable).Affine()
			require.NoError(t, err)
			x := randInput(8, 3, 4, 6)
			y := n.Forward(x)
			ya, err := f.Apply(x)
			require.NoError(t, err)
			for i := range y.Data {
				require.InDelta(t, y.Data[i], ya.Data[i], 1e-12)
			}
			lin := nn.NewLinear("lin", 6, 5, rand.New(rand.NewPCG(1, 2)))
			lin.B.Value.FillNormal(rand.New(rand.NewPCG(2, 2)), 1)
			want := lin.Forward(y)
			require.NoError(t, FoldIntoLinear(f.Scaled(1), lin))
			got := lin.Forward(x)
			for i := range want.Data {
				require.InDelta(t, want.Data[i], got.Data[i], 1e-9)
			}
		})
	}
	p, err := NewPowerNorm("g", 8, Options{Groups: 2})
	require.NoError(t, err)
	_, err = p.Affine()
	require.ErrorIs(t, err, errNoFold)
	require.Error(t, FoldIntoLinear(AffineForm{Scale: []float64{1}, Shift: []float64{0}}, nn.NewLinear("l", 2, 2, rand.New(rand.NewPCG(1, 1)))))
}

// reparamModule adapts a Reparam to nn.Module for gradient checks:
// materialize, apply the linear, map dL/dW back.
type reparamModule struct{ r Reparam }

func (m reparamModule) Forward(x *nn.Tensor) *nn.Tensor {
	m.r.Prepare(false)
	return m.r.Linear().Forward(x)
}

func (m reparamModule) Backward(dy *nn.Tensor) *nn.Tensor {
	dx := m.r.Linear().Backward(dy)
	m.r.Backprop()
	return dx
}

func (m reparamModule) Params() []*nn.Param {
	return append([]*nn.Param{m.r.Linear().B}, m.r.Params()...)
}

func TestReparamGradCheck(t *testing.T) {
	for _, k := range []string{MethodSigmaReparam, MethodWeightNorm, MethodScaledWS} {
		t.Run(k, func(t *testing.T) {
			lin := nn.NewLinear("lin", 5, 4, rand.New(rand.NewPCG(3, 4)))
			w0 := append([]float64(nil), lin.W.Value.Data...)
			r, err := NewReparam(k, lin)
			require.NoError(t, err)
			require.True(t, lin.W.Frozen)
			if k != MethodScaledWS { // initialized to reproduce the initial weight
				for i := range w0 {
					require.InDelta(t, w0[i], lin.W.Value.Data[i], 1e-12)
				}
			}
			perturb(r.Params(), 6)
			requireGrad(t, reparamModule{r}, randInput(2, 3, 5))
		})
	}
	_, err := NewReparam(MethodBatchNorm, nn.NewLinear("l", 2, 2, rand.New(rand.NewPCG(1, 1))))
	require.ErrorContains(t, err, "weight-side")
}

func TestSigmaReparamSpectralNorm(t *testing.T) {
	lin := nn.NewLinear("lin", 6, 4, rand.New(rand.NewPCG(1, 9)))
	r, err := NewReparam(MethodSigmaReparam, lin)
	require.NoError(t, err)
	s := r.(*SigmaReparam)
	s.Gamma.Value.Data[0] = 2
	for i := 0; i < 5; i++ {
		s.Prepare(true)
	}
	// sigma(W) = gamma: check with a long power iteration on W itself
	v := make([]float64, 4)
	fill(v, 0.5)
	u := make([]float64, 6)
	for it := 0; it < 200; it++ {
		nn.Gemm(false, false, 6, 1, 4, 1, lin.W.Value.Data, 4, v, 1, 0, u, 1)
		normalize(u)
		nn.Gemm(true, false, 4, 1, 6, 1, lin.W.Value.Data, 4, u, 1, 0, v, 1)
		normalize(v)
	}
	wv := make([]float64, 6)
	nn.Gemm(false, false, 6, 1, 4, 1, lin.W.Value.Data, 4, v, 1, 0, wv, 1)
	var sig float64
	for i := range u {
		sig += u[i] * wv[i]
	}
	require.InDelta(t, 2, sig, 1e-6)
}

func TestScaledWSStandardizes(t *testing.T) {
	lin := nn.NewLinear("lin", 16, 3, rand.New(rand.NewPCG(1, 9)))
	for i := range lin.W.Value.Data {
		lin.W.Value.Data[i] = lin.W.Value.Data[i]*5 + 2
	}
	_, err := NewReparam(MethodScaledWS, lin)
	require.NoError(t, err)
	for j := 0; j < 3; j++ {
		var m, v float64
		for i := 0; i < 16; i++ {
			m += lin.W.Value.Data[i*3+j] / 16
		}
		for i := 0; i < 16; i++ {
			d := lin.W.Value.Data[i*3+j] - m
			v += d * d / 16
		}
		require.InDelta(t, 0, m, 1e-12)
		require.InDelta(t, 1.0/16, v, 1e-9)
	}
}

func TestCRMSNormEqualsRMSNormOnZeroMeanStream(t *testing.T) {
	const d = 6
	x := randInput(4, 5, d)
	centerRows(x.Data, 5, d)
	rms := NewRMSNorm("r", d, 1e-5)
	perturb(rms.Params(), 2)
	lin := nn.NewLinear("lin", d, 3, rand.New(rand.NewPCG(2, 2)))
	// reference: lin(RMSNorm(x)) with the gain folded into lin
	want := lin.Forward(rms.Forward(x))
	g := rms.Params()[0].Value.Data
	require.NoError(t, FoldIntoLinear(AffineForm{Scale: append([]float64(nil), g...), Shift: make([]float64, d)}, lin))
	c, err := NewCRMSNorm("c", d, 1e-5)
	require.NoError(t, err)
	got := DecompressLinear(lin).Forward(c.Forward(Compress(x)))
	for i := range want.Data {
		require.InDelta(t, want.Data[i], got.Data[i], 1e-12)
	}
	requireGrad(t, c, randInput(5, 2, 3, d-1))
	_, err = NewCRMSNorm("c", 1, 0)
	require.Error(t, err)
}

// TestPolyModeGradCheckOfSiteMethods: the methods with an inverse square
// root (PowerNorm group scaling, CRMSNorm, PRepBN's LayerNorm branch)
// differentiate their poly-mode form exactly.
func TestPolyModeGradCheckOfSiteMethods(t *testing.T) {
	pn, err := NewPowerNorm("pn", 6, Options{Groups: 2, ExactBackward: true})
	require.NoError(t, err)
	cr, err := NewCRMSNorm("cr", 7, 1e-5)
	require.NoError(t, err)
	pr := NewPRepBN("pr", 6, Options{DecaySteps: 4})
	pr.Step.Value.Data[0] = 1
	for _, n := range []nn.Norm{pn, cr, pr} {
		t.Run(n.Method(), func(t *testing.T) {
			x := randInput(1, 2, 3, 6)
			s := n.Sites()[0]
			require.NoError(t, s.SetMode(nn.ModeCalibrate))
			n.Forward(x)
			fit := nn.DefaultFitOptions()
			fit.RelTol = 0.05 // coarse, so poly and exact differ
			_, err := s.Fit(fit)
			require.NoError(t, err)
			require.NoError(t, s.SetMode(nn.ModePoly))
			poly := n.Forward(x)
			require.NoError(t, s.SetMode(nn.ModeExact))
			exact := n.Forward(x)
			require.NotEqual(t, exact.Data, poly.Data)
			require.NoError(t, s.SetMode(nn.ModePoly))
			requireGrad(t, n, x)
		})
	}
}
