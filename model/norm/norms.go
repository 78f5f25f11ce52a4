package norm

import (
	"fmt"

	"github.com/polyformer/polyformer/model/nn"
)

// New returns the norm of the given method with default options (see NewWith).
func New(method, name string, dim int) (nn.Norm, error) {
	return NewWith(method, name, dim, Options{})
}

// NewWith returns the norm layer of the given method for rows of width dim;
// parameter and site names start with name. Weight-side methods
// (sigmareparam, weightnorm, scaledws) have no norm layer: they return None
// (the reparameterization is applied to the linears, see NewReparam).
func NewWith(method, name string, dim int, o Options) (nn.Norm, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if dim <= 0 {
		return nil, fmt.Errorf("norm %s: width %d must be positive", name, dim)
	}
	o = o.Defaults()
	switch method {
	case MethodLayerNorm:
		return NewLayerNorm(name, dim, o.Eps), nil
	case MethodRMSNorm:
		return NewRMSNorm(name, dim, o.Eps), nil
	case MethodNone, "", MethodSigmaReparam, MethodWeightNorm, MethodScaledWS:
		return None{}, nil
	case MethodBatchNorm:
		return NewBatchNorm(name, dim, o), nil
	case MethodRepBN:
		return NewRepBN(name, dim, o), nil
	case MethodPRepBN:
		return NewPRepBN(name, dim, o), nil
	case MethodPowerNorm:
		return NewPowerNorm(name, dim, o)
	case MethodUnified:
		return NewUnified(name, dim, o), nil
	case MethodFixedScale:
		return NewFixedScale(name, dim, o), nil
	}
	return nil, ValidMethod(method)
}

// None is the identity: no normalization.
type None struct{}

// Method returns "none".
func (None) Method() string { return MethodNone }

// Forward returns x unchanged (a copy).
func (None) Forward(x *nn.Tensor) *nn.Tensor { return x.Clone() }

// Backward returns dy unchanged (a copy).
func (None) Backward(dy *nn.Tensor) *nn.Tensor { return dy.Clone() }

// Params returns nothing.
func (None) Params() []*nn.Param { return nil }

// Sites returns nothing.
func (None) Sites() []*nn.Site { return nil }

// LayerNorm is y = (x - mean) * invsqrt(var + Eps) * Gain + Bias per row.
type LayerNorm struct {
	Dim        int
	Eps        float64
	Gain, Bias *nn.Param
	// VarPenalty (nil: none) is a range penalty on the input of the
	// inverse square root, mean(xc^2) + Eps per row (see SetVarPenalty).
	VarPenalty *nn.RangePenalty
	site       *nn.Site
	xc, xhat   *nn.Tensor
	rstd, vars []float64
}

// NewLayerNorm returns a LayerNorm with unit gain and zero bias.
func NewLayerNorm(name string, dim int, eps float64) *LayerNorm {
	l := &LayerNorm{Dim: dim, Eps: eps, Gain: nn.NewParam(name+".gain", dim), Bias: nn.NewParam(name+".bias", dim),
		site: nn.NewSite(name+".invsqrt", nn.FnInvSqrt)}
	for i := range l.Gain.Value.Data {
		l.Gain.Value.Data[i] = 1
	}
	l.Gain.NoDecay, l.Bias.NoDecay = true, true
	return l
}

// Method returns "layernorm".
func (l *LayerNorm) Method() string { return MethodLayerNorm }

// Forward normalizes each row.
func (l *LayerNorm) Forward(x *nn.Tensor) *nn.Tensor {
	return l.forward(x, true)
}

func (l *LayerNorm) forward(x *nn.Tensor, center bool) *nn.Tensor {
	n, d := x.Rows(), x.Cols()
	y := nn.New(x.Shape...)
	l.xhat = nn.New(x.Shape...)
	l.xc = nn.New(x.Shape...)
	vars := make([]float64, n)
	l.vars = vars
	for i := 0; i < n; i++ {
		row := x.Data[i*d : (i+1)*d]
		var mean float64
		if center {
			for _, v := range row {
				mean += v
			}
			mean /= float64(d)
		}
		var v2 float64
		for _, v := range row {
			v2 += (v - mean) * (v - mean)
		}
		vars[i] = v2/float64(d) + l.Eps
		for j, v := range row {
			l.xc.Data[i*d+j] = v - mean
		}
	}
	if l.VarPenalty != nil {
		l.VarPenalty.ObservePass(vars)
	}
	l.rstd = make([]float64, n)
	l.site.Apply(l.rstd, vars)
	for i := 0; i < n; i++ {
		for j := 0; j < d; j++ {
			xh := l.xc.Data[i*d+j] * l.rstd[i]
			l.xhat.Data[i*d+j] = xh
			y.Data[i*d+j] = xh*l.Gain.Value.Data[j] + l.biasAt(j)
		}
	}
	return y
}

func (l *LayerNorm) biasAt(j int) float64 {
	if l.Bias == nil {
		return 0
	}
	return l.Bias.Value.Data[j]
}

// Backward differentiates what Forward computed (exact or poly mode).
func (l *LayerNorm) Backward(dy *nn.Tensor) *nn.Tensor { return l.backward(dy, true) }

func (l *LayerNorm) backward(dy *nn.Tensor, center bool) *nn.Tensor {
	// y = xc * R(v) * g + b with xc = x - mean (or x), v = mean(xc^2) + eps and
	// R the inverse square root as the site computes it (exact, or the Newton
	// plan in poly mode, differentiated exactly).
	n, d := dy.Rows(), dy.Cols()
	dx := nn.New(dy.Shape...)
	dxc := make([]float64, d)
	for i := 0; i < n; i++ {
		r := l.rstd[i]
		var dr float64
		for j := 0; j < d; j++ {
			dyv := dy.Data[i*d+j]
			l.Gain.Grad.Data[j] += dyv * l.xhat.Data[i*d+j]
			if l.Bias != nil {
				l.Bias.Grad.Data[j] += dyv
			}
			dxc[j] = dyv * l.Gain.Value.Data[j]
			dr += dxc[j] * l.xc.Data[i*d+j]
		}
		dv := l.site.Deriv(l.vars[i]) * dr
		if l.VarPenalty != nil {
			dv += l.VarPenalty.Grad(l.vars[i])
		}
		var mean float64
		for j := 0; j < d; j++ {
			dxc[j] = dxc[j]*r + dv*2*l.xc.Data[i*d+j]/float64(d)
			mean += dxc[j]
		}
		mean /= float64(d)
		if !center {
			mean = 0
		}
		for j := 0; j < d; j++ {
			dx.Data[i*d+j] = dxc[j] - mean
		}
	}
	return dx
}

// SetVarPenalty attaches p (nil detaches): Forward records p on every row's
// inverse-square-root input v = mean(xc^2) + Eps and Backward adds its
// gradient, so training keeps v inside p's target and the fitted inverse
// square root can be cheap (a narrow interval needs a low-degree initial
// guess and few Newton steps; see CostOf).
func (l *LayerNorm) SetVarPenalty(p *nn.RangePenalty) { l.VarPenalty = p }

// Params returns gain and bias.
func (l *LayerNorm) Params() []*nn.Param {
	if l.Bias == nil {
		return []*nn.Param{l.Gain}
	}
	return []*nn.Param{l.Gain, l.Bias}
}

// Sites returns the inverse-square-root site.
func (l *LayerNorm) Sites() []*nn.Site { return []*nn.Site{l.site} }

// RMSNorm is y = x * invsqrt(mean(x^2) + Eps) * Gain per row (no centering, no bias).
type RMSNorm struct{ ln *LayerNorm }

// NewRMSNorm returns an RMSNorm with unit gain.
func NewRMSNorm(name string, dim int, eps float64) *RMSNorm {
	l := NewLayerNorm(name, dim, eps)
	l.Bias = nil
	return &RMSNorm{ln: l}
}

// Method returns "rmsnorm".
func (r *RMSNorm) Method() string { return MethodRMSNorm }

// Forward normalizes each row by its root mean square.
func (r *RMSNorm) Forward(x *nn.Tensor) *nn.Tensor { return r.ln.forward(x, false) }

// Backward differentiates what Forward computed (exact or poly mode).
func (r *RMSNorm) Backward(dy *nn.Tensor) *nn.Tensor { return r.ln.backward(dy, false) }

// SetVarPenalty attaches p to the input mean(x^2) + Eps of the inverse
// square root (see LayerNorm.SetVarPenalty).
func (r *RMSNorm) SetVarPenalty(p *nn.RangePenalty) { r.ln.SetVarPenalty(p) }

// Params returns the gain.
func (r *RMSNorm) Params() []*nn.Param { return r.ln.Params() }

// Sites returns the inverse-square-root site.
func (r *RMSNorm) Sites() []*nn.Site { return r.ln.Sites() }
