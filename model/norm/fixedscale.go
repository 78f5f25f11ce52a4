package norm

import (
	"math"

	"github.com/polyformer/polyformer/model/nn"
)

// FixedScale is the fixed-scale substitute for LayerNorm: each row is
// centred (a linear map) and multiplied by one calibrated scalar
// 1/sqrt(RunVar + Eps) instead of its own 1/std:
//
//	y = (x - mean(x)) / sqrt(RunVar + Eps) * Gain + Bias
//
// RunVar is the mean row variance, set from the first training batch and
// then tracked by a running average (Momentum) once per training step; the
// forward never depends on the current batch beyond that, so the gradient
// is that of an affine map. At inference the whole layer is affine
// (centring included) and folds into the next linear layer.
type FixedScale struct {
	Dim           int
	Eps, Momentum float64
	Gain, Bias    *nn.Param
	// RunVar is the calibrated variance and Ready 1 once it is set (both frozen).
	RunVar, Ready *nn.Param

	training, pending bool
	bvar, scale       float64
	xc                []float64
}

// NewFixedScale returns an uncalibrated FixedScale (calibrated by its first training forward).
func NewFixedScale(name string, dim int, o Options) *FixedScale {
	o = o.Defaults()
	f := &FixedScale{Dim: dim, Eps: o.Eps, Momentum: o.Momentum,
		Gain: nn.NewParam(name+".gain", dim), Bias: nn.NewParam(name+".bias", dim),
		RunVar: nn.NewParam(name+".running_var", 1), Ready: nn.NewParam(name+".ready", 1)}
	fill(f.Gain.Value.Data, 1)
	f.RunVar.Value.Data[0] = 1
	f.Gain.NoDecay, f.Bias.NoDecay = true, true
	for _, p := range []*nn.Param{f.RunVar, f.Ready} {
		p.Frozen, p.NoDecay = true, true
	}
	return f
}

// Method returns "fixedscale".
func (f *FixedScale) Method() string { return MethodFixedScale }

// SetTraining enables calibration and tracking of the variance.
func (f *FixedScale) SetTraining(on bool) { f.training = on }

// Forward centres each row and applies the fixed scale.
func (f *FixedScale) Forward(x *nn.Tensor) *nn.Tensor {
	n, d := x.Rows(), x.Cols()
	f.xc = make([]float64, len(x.Data))
	var v float64
	for i := 0; i < n; i++ {
		row := x.Data[i*d : (i+1)*d]
		var m float64
		for _, a := range row {
			m += a
		}
		m /= float64(d)
		for j, a := range row {
			c := a - m
			f.xc[i*d+j] = c
			v += c * c
		}
	}
	if f.training && n > 0 {
		f.bvar = v / float64(n*d)
		f.pending = true
		if f.Ready.Value.Data[0] == 0 {
			f.RunVar.Value.Data[0] = f.bvar
			f.Ready.Value.Data[0] = 1
		}
	}
	f.scale = 1 / math.Sqrt(f.RunVar.Value.Data[0]+f.Eps)
	y := nn.New(x.Shape...)
	for k, c := range f.xc {
		j := k % d
		y.Data[k] = c*f.scale*f.Gain.Value.Data[j] + f.Bias.Value.Data[j]
	}
	return y
}

// Backward differentiates the last Forward (the scale is a constant).
func (f *FixedScale) Backward(dy *nn.Tensor) *nn.Tensor {
	d := f.Dim
	n := len(dy.Data) / d
	dx := nn.New(dy.Shape...)
	for i := 0; i < n; i++ {
		var m float64
		for j := 0; j < d; j++ {
			k := i*d + j
			f.Gain.Grad.Data[j] += dy.Data[k] * f.xc[k] * f.scale
			f.Bias.Grad.Data[j] += dy.Data[k]
			g := dy.Data[k] * f.Gain.Value.Data[j] * f.scale
			dx.Data[k] = g
			m += g
		}
		m /= float64(d)
		for j := 0; j < d; j++ {
			dx.Data[i*d+j] -= m
		}
	}
	return dx
}

// EndStep moves the calibrated variance towards the last training batch.
func (f *FixedScale) EndStep() {
	if !f.pending {
		return
	}
	f.pending = false
	f.RunVar.Value.Data[0] = (1-f.Momentum)*f.RunVar.Value.Data[0] + f.Momentum*f.bvar
}

// Params returns gain, bias and the frozen calibration.
func (f *FixedScale) Params() []*nn.Param { return []*nn.Param{f.Gain, f.Bias, f.RunVar, f.Ready} }

// Sites returns nothing.
func (f *FixedScale) Sites() []*nn.Site { return nil }

// Affine returns the folded inference form (with centring).
func (f *FixedScale) Affine() (AffineForm, error) {
	s := 1 / math.Sqrt(f.RunVar.Value.Data[0]+f.Eps)
	a := AffineForm{Center: true, Scale: make([]float64, f.Dim), Shift: append([]float64(nil), f.Bias.Value.Data...)}
	for j := range a.Scale {
		a.Scale[j] = f.Gain.Value.Data[j] * s
	}
	return a, nil
}
