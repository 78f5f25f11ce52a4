package norm

import (
	"fmt"
	"math"

	"github.com/polyformer/polyformer/model/nn"
)

// PowerNorm (Shen et al., 2020) divides each channel by a running quadratic
// mean psi instead of batch statistics, in training and at inference alike:
//
//	y = z / sqrt(RunPhi2 + Eps) * Gain + Bias,  z = x (or GroupScale(x))
//
// so its forward never depends on the current batch and at inference it is
// a per-channel affine map that folds. RunPhi2 moves as
// psi^2 <- Alpha psi^2 + (1 - Alpha) mean_B(z^2) once per training step
// (EndStep). In training the backward is the paper's approximate backward:
// the gradient of the normalized value is corrected by -nu * xhat, where nu
// is a running average of mean_B(xhat * dL/dxhat) (nu <- nu (1 - (1 - Alpha)
// Gamma) + (1 - Alpha) Lambda with Gamma = mean_B(xhat^2), Lambda =
// mean_B(xhat dL/dxhat)); Options.ExactBackward (and inference mode) gives
// the exact gradient of the forward instead.
//
// With Groups > 0, z is the per-group RMS scaling of the released code
// (GroupScaling1D): each token's channels are split into Groups groups and
// divided by their root mean square, one inverse square root per token and
// group through an nn.Site. That part is a per-token non-linearity: it does
// not fold and costs what an RMSNorm costs under encryption.
type PowerNorm struct {
	Dim, Groups       int
	Eps, Alpha        float64
	ExactBackward     bool
	Gain, Bias        *nn.Param
	RunPhi2, RunNu    *nn.Param
	site              *nn.Site
	training          bool
	pending           bool
	n                 int
	x, z              *nn.Tensor
	gvar, grstd       []float64
	xhat, rstd        []float64
	bphi2, bgam, blam []float64
	approx            bool
}

// NewPowerNorm returns a PowerNorm (unit gain, zero bias, psi^2 = 1, nu = 0).
func NewPowerNorm(name string, dim int, o Options) (*PowerNorm, error) {
	o = o.Defaults()
	if o.Groups > 0 && dim%o.Groups != 0 {
		return nil, fmt.Errorf("powernorm %s: width %d is not divisible into %d groups", name, dim, o.Groups)
	}
	p := &PowerNorm{Dim: dim, Groups: o.Groups, Eps: o.Eps, Alpha: o.PowerAlpha, ExactBackward: o.ExactBackward,
		Gain: nn.NewParam(name+".gain", dim), Bias: nn.NewParam(name+".bias", dim),
		RunPhi2: nn.NewParam(name+".running_phi2", dim), RunNu: nn.NewParam(name+".running_nu", dim)}
	fill(p.Gain.Value.Data, 1)
	fill(p.RunPhi2.Value.Data, 1)
	p.Gain.NoDecay, p.Bias.NoDecay = true, true
	for _, q := range []*nn.Param{p.RunPhi2, p.RunNu} {
		q.Frozen, q.NoDecay = true, true
	}
	if o.Groups > 0 {
		p.site = nn.NewSite(name+".group.invsqrt", nn.FnInvSqrt)
	}
	return p, nil
}

// Method returns "powernorm".
func (p *PowerNorm) Method() string { return MethodPowerNorm }

// SetTraining enables batch-statistics collection and the approximate backward.
func (p *PowerNorm) SetTraining(on bool) { p.training = on }

// Forward normalizes by the running quadratic mean.
func (p *PowerNorm) Forward(x *nn.Tensor) *nn.Tensor {
	n, d := x.Rows(), x.Cols()
	p.n, p.x = n, x
	z := x
	if p.Groups > 0 {
		gs := d / p.Groups
		z = nn.New(x.Shape...)
		p.gvar = make([]float64, n*p.Groups)
		p.grstd = make([]float64, n*p.Groups)
		for i := 0; i < n; i++ {
			for g := 0; g < p.Groups; g++ {
				var s float64
				for _, v := range x.Data[i*d+g*gs : i*d+(g+1)*gs] {
					s += v * v
				}
				p.gvar[i*p.Groups+g] = s/float64(gs) + p.Eps
			}
		}
		p.site.Apply(p.grstd, p.gvar)
		for i := 0; i < n; i++ {
			for j := 0; j < d; j++ {
				z.Data[i*d+j] = x.Data[i*d+j] * p.grstd[i*p.Groups+j/gs]
			}
		}
	}
	p.z = z
	p.rstd = make([]float64, d)
	for j, v := range p.RunPhi2.Value.Data {
		p.rstd[j] = 1 / math.Sqrt(v+p.Eps)
	}
	if p.training {
		p.bphi2 = make([]float64, d)
		for i := 0; i < n; i++ {
			for j, v := range z.Data[i*d : (i+1)*d] {
				p.bphi2[j] += v * v / float64(n)
			}
		}
		p.pending = true
	}
	p.approx = p.training && !p.ExactBackward
	y := nn.New(x.Shape...)
	p.xhat = make([]float64, len(x.Data))
	for i := 0; i < n; i++ {
		for j := 0; j < d; j++ {
			k := i*d + j
			xh := z.Data[k] * p.rstd[j]
			p.xhat[k] = xh
			y.Data[k] = xh*p.Gain.Value.Data[j] + p.Bias.Value.Data[j]
		}
	}
	return y
}

// Backward returns the approximate gradient in training (unless
// ExactBackward) and the exact gradient of the forward otherwise.
func (p *PowerNorm) Backward(dy *nn.Tensor) *nn.Tensor {
	n, d := p.n, p.Dim
	dz := nn.New(dy.Shape...)
	if p.approx {
		p.bgam, p.blam = make([]float64, d), make([]float64, d)
	}
	nu := p.RunNu.Value.Data
	for i := 0; i < n; i++ {
		for j := 0; j < d; j++ {
			k := i*d + j
			p.Gain.Grad.Data[j] += dy.Data[k] * p.xhat[k]
			p.Bias.Grad.Data[j] += dy.Data[k]
			dxh := dy.Data[k] * p.Gain.Value.Data[j]
			if p.approx {
				p.bgam[j] += p.xhat[k] * p.xhat[k] / float64(n)
				p.blam[j] += p.xhat[k] * dxh / float64(n)
				dxh -= nu[j] * p.xhat[k]
			}
			dz.Data[k] = dxh * p.rstd[j]
		}
	}
	if p.Groups == 0 {
		return dz
	}
	gs := d / p.Groups
	dx := nn.New(dy.Shape...)
	for i := 0; i < n; i++ {
		for g := 0; g < p.Groups; g++ {
			gi := i*p.Groups + g
			r := p.grstd[gi]
			lo, hi := i*d+g*gs, i*d+(g+1)*gs
			var dr float64
			for k := lo; k < hi; k++ {
				dr += dz.Data[k] * p.x.Data[k]
			}
			dv := p.site.Deriv(p.gvar[gi]) * dr
			for k := lo; k < hi; k++ {
				dx.Data[k] = dz.Data[k]*r + dv*2*p.x.Data[k]/float64(gs)
			}
		}
	}
	return dx
}

// EndStep updates psi^2 (and nu, after an approximate backward) from the last training step.
func (p *PowerNorm) EndStep() {
	if !p.pending {
		return
	}
	p.pending = false
	a := p.Alpha
	for j := range p.bphi2 {
		p.RunPhi2.Value.Data[j] = a*p.RunPhi2.Value.Data[j] + (1-a)*p.bphi2[j]
	}
	if p.bgam != nil {
		for j := range p.bgam {
			p.RunNu.Value.Data[j] = p.RunNu.Value.Data[j]*(1-(1-a)*p.bgam[j]) + (1-a)*p.blam[j]
		}
		p.bgam, p.blam = nil, nil
	}
}

// Params returns gain, bias and the frozen running statistics.
func (p *PowerNorm) Params() []*nn.Param {
	return []*nn.Param{p.Gain, p.Bias, p.RunPhi2, p.RunNu}
}

// Sites returns the group-scaling site (none without group scaling).
func (p *PowerNorm) Sites() []*nn.Site {
	if p.site == nil {
		return nil
	}
	return []*nn.Site{p.site}
}

// Affine returns the folded form; with group scaling it is an error.
func (p *PowerNorm) Affine() (AffineForm, error) {
	if p.Groups > 0 {
		return AffineForm{}, fmt.Errorf("powernorm with %d-group RMS scaling: %w (a per-token inverse square root)", p.Groups, errNoFold)
	}
	f := AffineForm{Scale: make([]float64, p.Dim), Shift: append([]float64(nil), p.Bias.Value.Data...)}
	for j := range f.Scale {
		f.Scale[j] = p.Gain.Value.Data[j] / math.Sqrt(p.RunPhi2.Value.Data[j]+p.Eps)
	}
	return f, nil
}
