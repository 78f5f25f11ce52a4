package nn

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/polyformer/polyformer/polyapprox"
)

// Activation names accepted by NewActivation.
const (
	ActGELU  = "gelu" // exact GELU x * Phi(x)
	ActReLU  = "relu" // max(x, 0)
	ActQuad  = "quad" // learnable a x^2 + b x + c
	ActPoly  = "poly" // fixed Chebyshev approximation of GELU from polyapprox
	ActNone  = "none" // identity (activation-free FFN)
	defPolyR = 8.0
)

// NewActivation returns the activation module of the given name. For "poly",
// degree and radius give the fixed Chebyshev interpolant of GELU on
// [-radius, radius] (defaults 7 and 8 when zero).
func NewActivation(name, paramName string, degree int, radius float64) (Module, error) {
	switch name {
	case ActGELU:
		return &Elementwise{site: NewSite(paramName+".gelu", FnGELU), deriv: geluDeriv}, nil
	case ActReLU:
		return &Elementwise{site: NewSite(paramName+".relu", FnReLU), deriv: func(x float64) float64 {
			if x > 0 {
				return 1
			}
			return 0
		}}, nil
	case ActQuad:
		q := &Quadratic{Coef: NewParam(paramName+".quad", 3)}
		copy(q.Coef.Value.Data, []float64{0.125, 0.5, 0})
		q.Coef.NoDecay = true
		return q, nil
	case ActPoly:
		if degree <= 0 {
			degree = 7
		}
		if radius <= 0 {
			radius = defPolyR
		}
		p, err := polyapprox.Interpolate(gelu, polyapprox.Interval{A: -radius, B: radius}, degree)
		if err != nil {
			return nil, fmt.Errorf("poly activation: %w", err)
		}
		return NewPolyActivation(p), nil
	case ActNone:
		return &Elementwise{deriv: func(float64) float64 { return 1 }}, nil
	}
	return nil, fmt.Errorf("unknown activation %q (want gelu, relu, quad, poly or none)", name)
}

func geluDeriv(x float64) float64 {
	phi := math.Exp(-0.5*x*x) / math.Sqrt(2*math.Pi)
	return 0.5*(1+math.Erf(x/math.Sqrt2)) + x*phi
}

// Elementwise applies a scalar function through a Site (nil site: identity),
// differentiating in Backward what Forward computed (exact or polynomial).
type Elementwise struct {
	site  *Site
	deriv func(float64) float64
	x     *Tensor
}

// Forward applies the function.
func (e *Elementwise) Forward(x *Tensor) *Tensor {
	e.x = x
	if e.site == nil {
		return x.Clone()
	}
	y := New(x.Shape...)
	chunks(len(x.Data), func(lo, hi int) { e.site.Apply(y.Data[lo:hi], x.Data[lo:hi]) })
	return y
}

// chunks runs fn on contiguous ranges of [0, n) in parallel when n is large.
func chunks(n int, fn func(lo, hi int)) {
	const minChunk = 1 << 14
	k := n / minChunk
	if k <= 1 {
		fn(0, n)
		return
	}
	w := Workers(k)
	ParallelFor(w, func(_, i int) { fn(i*n/w, (i+1)*n/w) })
}

// Backward multiplies by the derivative of what Forward computed (the exact
// function, or the polynomial in poly mode).
func (e *Elementwise) Backward(dy *Tensor) *Tensor {
	dx := New(dy.Shape...)
	chunks(len(dy.Data), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			x := e.x.Data[i]
			if e.site != nil {
				dx.Data[i] = dy.Data[i] * e.site.Deriv(x)
			} else {
				dx.Data[i] = dy.Data[i] * e.deriv(x)
			}
		}
	})
	return dx
}

// Params returns nothing.
func (e *Elementwise) Params() []*Param { return nil }

// Sites returns the activation's site (none for the identity).
func (e *Elementwise) Sites() []*Site {
	if e.site == nil {
		return nil
	}
	return []*Site{e.site}
}

// Quadratic is the learnable activation a x^2 + b x + c with Coef = [a, b, c];
// it is a polynomial already, so poly mode leaves it unchanged.
type Quadratic struct {
	Coef *Param
	x    *Tensor
}

// Forward applies a x^2 + b x + c.
func (q *Quadratic) Forward(x *Tensor) *Tensor {
	q.x = x
	a, b, c := q.Coef.Value.Data[0], q.Coef.Value.Data[1], q.Coef.Value.Data[2]
	y := New(x.Shape...)
	for i, v := range x.Data {
		y.Data[i] = (a*v+b)*v + c
	}
	return y
}

// Backward accumulates the coefficient gradients and returns (2 a x + b) dy.
func (q *Quadratic) Backward(dy *Tensor) *Tensor {
	a, b := q.Coef.Value.Data[0], q.Coef.Value.Data[1]
	var ga, gb, gc float64
	dx := New(dy.Shape...)
	for i, g := range dy.Data {
		v := q.x.Data[i]
		ga += g * v * v
		gb += g * v
		gc += g
		dx.Data[i] = g * (2*a*v + b)
	}
	q.Coef.Grad.Data[0] += ga
	q.Coef.Grad.Data[1] += gb
	q.Coef.Grad.Data[2] += gc
	return dx
}

// Params returns the coefficients.
func (q *Quadratic) Params() []*Param { return []*Param{q.Coef} }

// PolyActivation is a fixed polyapprox Chebyshev polynomial used as the
// activation in training and inference alike.
type PolyActivation struct {
	P     polyapprox.Chebyshev
	deriv polyapprox.Chebyshev
	x     *Tensor
}

// NewPolyActivation wraps a Chebyshev polynomial.
func NewPolyActivation(p polyapprox.Chebyshev) *PolyActivation {
	return &PolyActivation{P: p, deriv: polyapprox.ChebyshevDerivative(p)}
}

// Forward evaluates the polynomial (Clenshaw).
func (p *PolyActivation) Forward(x *Tensor) *Tensor {
	p.x = x
	y := New(x.Shape...)
	for i, v := range x.Data {
		y.Data[i] = p.P.Evaluate(v)
	}
	return y
}

// Backward multiplies by the polynomial's derivative.
func (p *PolyActivation) Backward(dy *Tensor) *Tensor {
	dx := New(dy.Shape...)
	for i, g := range dy.Data {
		dx.Data[i] = g * p.deriv.Evaluate(p.x.Data[i])
	}
	return dx
}

// Params returns nothing: the polynomial is fixed.
func (p *PolyActivation) Params() []*Param { return nil }

// FFN is Linear(Dim, Hidden) -> activation -> Linear(Hidden, Dim).
type FFN struct {
	Up, Down *Linear
	Act      Module
}

// NewFFN returns an FFN with the named activation (see NewActivation).
func NewFFN(name string, dim, hidden int, act string, polyDegree int, polyRadius float64, rng *rand.Rand) (*FFN, error) {
	a, err := NewActivation(act, name+".act", polyDegree, polyRadius)
	if err != nil {
		return nil, fmt.Errorf("ffn %s: %w", name, err)
	}
	return &FFN{Up: NewLinear(name+".up", dim, hidden, rng), Act: a, Down: NewLinear(name+".down", hidden, dim, rng)}, nil
}

// Forward applies the FFN.
func (f *FFN) Forward(x *Tensor) *Tensor {
	return f.Down.Forward(f.Act.Forward(f.Up.Forward(x)))
}

// Backward back-propagates through the FFN.
func (f *FFN) Backward(dy *Tensor) *Tensor {
	return f.Up.Backward(f.Act.Backward(f.Down.Backward(dy)))
}

// Params returns the parameters of both linears and the activation.
func (f *FFN) Params() []*Param {
	return append(append(f.Up.Params(), f.Act.Params()...), f.Down.Params()...)
}

// Sites returns the activation's sites.
func (f *FFN) Sites() []*Site { return CollectSites(f.Act) }
