package norm

import (
	"errors"
	"fmt"
	"math"

	"github.com/polyformer/polyformer/model/nn"
)

// BatchNorm normalizes each channel by statistics over all rows of the
// batch (every token of every sequence) in training, and by running
// statistics at inference, where it is a per-channel affine map that folds
// into the next linear layer:
//
//	training:  y = (x - mu_B) / sqrt(var_B + Eps) * Gain + Bias
//	inference: y = (x - RunMean) / sqrt(RunVar + Eps) * Gain + Bias
//
// The running statistics (frozen parameters, so checkpoints keep them) move
// by Momentum towards the last training batch's mean and unbiased variance
// in EndStep, once per training step. In a causal language model the batch
// statistics of training mix positions, a small leak that inference (running
// statistics) does not have.
type BatchNorm struct {
	Dim             int
	Eps, Momentum   float64
	Gain, Bias      *nn.Param
	RunMean, RunVar *nn.Param

	training bool
	batch    bool // last forward used batch statistics
	pending  bool // batch statistics waiting for EndStep
	n        int
	xhat     []float64
	rstd     []float64
	bmean    []float64
	bvar     []float64
}

// NewBatchNorm returns a BatchNorm with unit gain, zero bias, running mean 0
// and running variance 1, in inference mode.
func NewBatchNorm(name string, dim int, o Options) *BatchNorm {
	o = o.Defaults()
	b := &BatchNorm{Dim: dim, Eps: o.Eps, Momentum: o.Momentum,
		Gain: nn.NewParam(name+".gain", dim), Bias: nn.NewParam(name+".bias", dim),
		RunMean: nn.NewParam(name+".running_mean", dim), RunVar: nn.NewParam(name+".running_var", dim)}
	fill(b.Gain.Value.Data, 1)
	fill(b.RunVar.Value.Data, 1)
	b.Gain.NoDecay, b.Bias.NoDecay = true, true
	b.RunMean.Frozen, b.RunVar.Frozen = true, true
	b.RunMean.NoDecay, b.RunVar.NoDecay = true, true
	return b
}

func fill(a []float64, v float64) {
	for i := range a {
		a[i] = v
	}
}

// Method returns "batchnorm".
func (b *BatchNorm) Method() string { return MethodBatchNorm }

// SetTraining selects batch statistics (true) or running statistics (false).
func (b *BatchNorm) SetTraining(on bool) { b.training = on }

// Forward normalizes each channel.
func (b *BatchNorm) Forward(x *nn.Tensor) *nn.Tensor {
	n, d := x.Rows(), x.Cols()
	b.n = n
	b.rstd = make([]float64, d)
	mean := make([]float64, d)
	b.batch = b.training
	if b.training {
		b.bmean, b.bvar = make([]float64, d), make([]float64, d)
		for i := 0; i < n; i++ {
			for j, v := range x.Data[i*d : (i+1)*d] {
				b.bmean[j] += v
			}
		}
		for j := range b.bmean {
			b.bmean[j] /= float64(n)
		}
		for i := 0; i < n; i++ {
			for j, v := range x.Data[i*d : (i+1)*d] {
				c := v - b.bmean[j]
				b.bvar[j] += c * c
			}
		}
		for j := range b.bvar {
			b.bvar[j] /= float64(n)
			b.rstd[j] = 1 / math.Sqrt(b.bvar[j]+b.Eps)
		}
		copy(mean, b.bmean)
		b.pending = true
	} else {
		copy(mean, b.RunMean.Value.Data)
		for j, v := range b.RunVar.Value.Data {
			b.rstd[j] = 1 / math.Sqrt(v+b.Eps)
		}
	}
	y := nn.New(x.Shape...)
	b.xhat = make([]float64, len(x.Data))
	g, bias := b.Gain.Value.Data, b.Bias.Value.Data
	for i := 0; i < n; i++ {
		for j := 0; j < d; j++ {
			k := i*d + j
			xh := (x.Data[k] - mean[j]) * b.rstd[j]
			b.xhat[k] = xh
			y.Data[k] = xh*g[j] + bias[j]
		}
	}
	return y
}

// Backward differentiates the last Forward (through the batch statistics in training).
func (b *BatchNorm) Backward(dy *nn.Tensor) *nn.Tensor {
	n, d := b.n, b.Dim
	dx := nn.New(dy.Shape...)
	g := b.Gain.Value.Data
	sum, sumx := make([]float64, d), make([]float64, d)
	for i := 0; i < n; i++ {
		for j := 0; j < d; j++ {
			k := i*d + j
			b.Gain.Grad.Data[j] += dy.Data[k] * b.xhat[k]
			b.Bias.Grad.Data[j] += dy.Data[k]
			dxh := dy.Data[k] * g[j]
			sum[j] += dxh
			sumx[j] += dxh * b.xhat[k]
		}
	}
	for i := 0; i < n; i++ {
		for j := 0; j < d; j++ {
			k := i*d + j
			dxh := dy.Data[k] * g[j]
			if b.batch {
				dx.Data[k] = b.rstd[j] * (dxh - sum[j]/float64(n) - b.xhat[k]*sumx[j]/float64(n))
			} else {
				dx.Data[k] = b.rstd[j] * dxh
			}
		}
	}
	return dx
}

// EndStep moves the running statistics towards the last training batch.
func (b *BatchNorm) EndStep() {
	if !b.pending {
		return
	}
	b.pending = false
	m := b.Momentum
	corr := 1.0
	if b.n > 1 {
		corr = float64(b.n) / float64(b.n-1)
	}
	for j := range b.bmean {
		b.RunMean.Value.Data[j] = (1-m)*b.RunMean.Value.Data[j] + m*b.bmean[j]
		b.RunVar.Value.Data[j] = (1-m)*b.RunVar.Value.Data[j] + m*b.bvar[j]*corr
	}
}

// Params returns gain, bias and the (frozen) running statistics.
func (b *BatchNorm) Params() []*nn.Param { return []*nn.Param{b.Gain, b.Bias, b.RunMean, b.RunVar} }

// Sites returns nothing: the inference form is affine.
func (b *BatchNorm) Sites() []*nn.Site { return nil }

// Affine returns the inference form: Scale = Gain / sqrt(RunVar + Eps),
// Shift = Bias - RunMean * Scale.
func (b *BatchNorm) Affine() (AffineForm, error) {
	f := AffineForm{Scale: make([]float64, b.Dim), Shift: make([]float64, b.Dim)}
	for j := 0; j < b.Dim; j++ {
		s := b.Gain.Value.Data[j] / math.Sqrt(b.RunVar.Value.Data[j]+b.Eps)
		f.Scale[j] = s
		f.Shift[j] = b.Bias.Value.Data[j] - b.RunMean.Value.Data[j]*s
	}
	return f, nil
}

// RepBN is BN(x) + Alpha * x with a learnable scalar Alpha (SLAB); at
// inference it is the affine map (BN scale + Alpha) x + BN shift and folds.
type RepBN struct {
	BN    *BatchNorm
	Alpha *nn.Param
	x     *nn.Tensor
}

// NewRepBN returns a RepBN with Alpha = o.RepAlpha (default 1).
func NewRepBN(name string, dim int, o Options) *RepBN {
	o = o.Defaults()
	r := &RepBN{BN: NewBatchNorm(name+".bn", dim, o), Alpha: nn.NewParam(name+".alpha", 1)}
	r.Alpha.Value.Data[0] = o.RepAlpha
	r.Alpha.NoDecay = true
	return r
}

// Method returns "repbn".
func (r *RepBN) Method() string { return MethodRepBN }

// SetTraining switches the inner BatchNorm.
func (r *RepBN) SetTraining(on bool) { r.BN.SetTraining(on) }

// Forward computes BN(x) + Alpha x.
func (r *RepBN) Forward(x *nn.Tensor) *nn.Tensor {
	r.x = x
	y := r.BN.Forward(x)
	a := r.Alpha.Value.Data[0]
	for i, v := range x.Data {
		y.Data[i] += a * v
	}
	return y
}

// Backward differentiates the last Forward.
func (r *RepBN) Backward(dy *nn.Tensor) *nn.Tensor {
	dx := r.BN.Backward(dy)
	a := r.Alpha.Value.Data[0]
	var ga float64
	for i, g := range dy.Data {
		ga += g * r.x.Data[i]
		dx.Data[i] += a * g
	}
	r.Alpha.Grad.Data[0] += ga
	return dx
}

// EndStep updates the running statistics.
func (r *RepBN) EndStep() { r.BN.EndStep() }

// Params returns the BatchNorm parameters and Alpha.
func (r *RepBN) Params() []*nn.Param { return append(r.BN.Params(), r.Alpha) }

// Sites returns nothing.
func (r *RepBN) Sites() []*nn.Site { return nil }

// Affine returns the folded inference form.
func (r *RepBN) Affine() (AffineForm, error) {
	f, err := r.BN.Affine()
	if err != nil {
		return f, err
	}
	for j := range f.Scale {
		f.Scale[j] += r.Alpha.Value.Data[0]
	}
	return f, nil
}

// PRepBN is progressive RepBN: y = lambda LN(x) + (1 - lambda) RepBN(x)
// with lambda = max(0, 1 - step / DecaySteps), step counting training steps
// (EndStep). Once lambda is 0 it is RepBN alone, folded at inference; before
// that the LayerNorm branch keeps its inverse square root.
type PRepBN struct {
	LN         *LayerNorm
	Rep        *RepBN
	DecaySteps int
	// Step is the number of training steps taken (frozen parameter, saved in checkpoints).
	Step *nn.Param

	lambda float64
	lnUsed bool
}

// NewPRepBN returns a PRepBN at step 0 (lambda = 1).
func NewPRepBN(name string, dim int, o Options) *PRepBN {
	o = o.Defaults()
	p := &PRepBN{LN: NewLayerNorm(name+".ln", dim, o.Eps), Rep: NewRepBN(name+".rep", dim, o),
		DecaySteps: o.DecaySteps, Step: nn.NewParam(name+".step", 1)}
	p.Step.Frozen, p.Step.NoDecay = true, true
	return p
}

// Method returns "prepbn".
func (p *PRepBN) Method() string { return MethodPRepBN }

// Lambda is the current weight of the LayerNorm branch.
func (p *PRepBN) Lambda() float64 {
	if p.DecaySteps <= 0 {
		return 0
	}
	return math.Max(0, 1-p.Step.Value.Data[0]/float64(p.DecaySteps))
}

// SetTraining switches the RepBN branch.
func (p *PRepBN) SetTraining(on bool) { p.Rep.SetTraining(on) }

// Forward computes lambda LN(x) + (1 - lambda) RepBN(x). When lambda is 0
// the LayerNorm branch is skipped, except in calibration mode (so its site
// still gets a polynomial form).
func (p *PRepBN) Forward(x *nn.Tensor) *nn.Tensor {
	l := p.Lambda()
	p.lambda = l
	y := p.Rep.Forward(x)
	for i := range y.Data {
		y.Data[i] *= 1 - l
	}
	p.lnUsed = l > 0 || p.LN.site.Mode() == nn.ModeCalibrate
	if p.lnUsed {
		z := p.LN.Forward(x)
		for i, v := range z.Data {
			y.Data[i] += l * v
		}
	}
	return y
}

// Backward differentiates the last Forward.
func (p *PRepBN) Backward(dy *nn.Tensor) *nn.Tensor {
	l := p.lambda
	d2 := dy.Clone()
	for i := range d2.Data {
		d2.Data[i] *= 1 - l
	}
	dx := p.Rep.Backward(d2)
	if p.lnUsed && l > 0 {
		d1 := dy.Clone()
		for i := range d1.Data {
			d1.Data[i] *= l
		}
		for i, v := range p.LN.Backward(d1).Data {
			dx.Data[i] += v
		}
	}
	return dx
}

// EndStep advances the schedule and the running statistics.
func (p *PRepBN) EndStep() {
	p.Rep.EndStep()
	p.Step.Value.Data[0]++
}

// Params returns the LayerNorm, RepBN and step parameters.
func (p *PRepBN) Params() []*nn.Param {
	return append(append(p.LN.Params(), p.Rep.Params()...), p.Step)
}

// Sites returns the LayerNorm branch's inverse-square-root site.
func (p *PRepBN) Sites() []*nn.Site { return p.LN.Sites() }

// Affine returns RepBN's folded form once lambda is 0.
func (p *PRepBN) Affine() (AffineForm, error) {
	if l := p.Lambda(); l > 0 {
		return AffineForm{}, fmt.Errorf("prepbn: lambda = %g > 0 after %g of %d decay steps: the LayerNorm branch does not fold", l, p.Step.Value.Data[0], p.DecaySteps)
	}
	return p.Rep.Affine()
}

var errNoFold = errors.New("does not fold")
