package polyapprox

import "fmt"

// PlanMethod names how a Spec is evaluated. Its values are the strings
// recorded in checkpoints ("chebyshev", "goldschmidt", "newton"). It is not
// the fitting method of Approximate (MethodChebyshev, MethodRemez, ...):
// a PlanMethod says what the circuit computes, not how it was fitted.
type PlanMethod string

const (
	// PlanChebyshev is the Chebyshev series Coeffs on Interval (Chebyshev).
	PlanChebyshev PlanMethod = "chebyshev"
	// PlanGoldschmidt is 1/x by Iterations Goldschmidt steps on Interval
	// (GoldschmidtInv).
	PlanGoldschmidt PlanMethod = "goldschmidt"
	// PlanNewton is 1/sqrt(x) by the Chebyshev initial guess Coeffs on
	// Interval and Iterations Newton steps (NewtonInvSqrt).
	PlanNewton PlanMethod = "newton"
)

// MaxIterations bounds the iteration count of the Goldschmidt and Newton
// plans everywhere: the plan constructors, the fits (a range that needs
// more is too wide for an encrypted plan) and the specs a checkpoint may
// hold. Long before it float64 (and CKKS) precision no longer improves.
const MaxIterations = 40

// Spec is the serializable description of one approximation: exactly what
// the encrypted circuit evaluates. Degree is the degree of Coeffs (the
// polynomial, or Newton's initial guess); Goldschmidt has no coefficients.
type Spec struct {
	Method     PlanMethod `json:"method"`
	Interval   [2]float64 `json:"interval"`
	Degree     int        `json:"degree,omitempty"`
	Iterations int        `json:"iterations,omitempty"`
	Coeffs     []float64  `json:"coeffs,omitempty"`
}

// Domain is Interval as an Interval.
func (s Spec) Domain() Interval { return Interval{A: s.Interval[0], B: s.Interval[1]} }

// Chebyshev returns the polynomial of a PlanChebyshev spec.
func (s Spec) Chebyshev() (Chebyshev, error) {
	if s.Method != PlanChebyshev {
		return Chebyshev{}, fmt.Errorf("spec method %q is not %q", s.Method, PlanChebyshev)
	}
	p := Chebyshev{Interval: s.Domain(), Coeffs: s.Coeffs}
	return p, p.Validate()
}

// Goldschmidt returns the plan of a PlanGoldschmidt spec.
func (s Spec) Goldschmidt() (GoldschmidtInv, error) {
	if s.Method != PlanGoldschmidt {
		return GoldschmidtInv{}, fmt.Errorf("spec method %q is not %q", s.Method, PlanGoldschmidt)
	}
	g := GoldschmidtInv{Interval: s.Domain(), Iterations: s.Iterations}
	return g, g.Validate()
}

// Newton returns the plan of a PlanNewton spec.
func (s Spec) Newton() (NewtonInvSqrt, error) {
	if s.Method != PlanNewton {
		return NewtonInvSqrt{}, fmt.Errorf("spec method %q is not %q", s.Method, PlanNewton)
	}
	n := NewtonInvSqrt{Init: Chebyshev{Interval: s.Domain(), Coeffs: s.Coeffs}, Iterations: s.Iterations}
	return n, n.Validate()
}

// Validate reports an error for an unknown method or a spec its plan
// cannot evaluate.
func (s Spec) Validate() error {
	var err error
	switch s.Method {
	case PlanChebyshev:
		_, err = s.Chebyshev()
	case PlanGoldschmidt:
		_, err = s.Goldschmidt()
	case PlanNewton:
		_, err = s.Newton()
	default:
		return fmt.Errorf("unknown polynomial method %q", s.Method)
	}
	return err
}

// EvalSpec evaluates the spec at x on the builder b: EvalChebyshev,
// EvalGoldschmidtInv or EvalNewtonInvSqrt. It validates the spec first.
func EvalSpec[V any](b Builder[V], s Spec, x V) (V, error) {
	var zero V
	switch s.Method {
	case PlanChebyshev:
		p, err := s.Chebyshev()
		if err != nil {
			return zero, err
		}
		return EvalChebyshev(b, p, x), nil
	case PlanGoldschmidt:
		g, err := s.Goldschmidt()
		if err != nil {
			return zero, err
		}
		return EvalGoldschmidtInv(b, g, x), nil
	case PlanNewton:
		n, err := s.Newton()
		if err != nil {
			return zero, err
		}
		return EvalNewtonInvSqrt(b, n, x), nil
	}
	return zero, fmt.Errorf("unknown polynomial method %q", s.Method)
}

// Twin returns the float64 twin of the spec (EvalSpec on Float, validated
// once) and its multiplicative depth.
func (s Spec) Twin() (func(float64) float64, int, error) {
	switch s.Method {
	case PlanChebyshev:
		p, err := s.Chebyshev()
		if err != nil {
			return nil, 0, err
		}
		return p.Evaluate, p.Depth(), nil
	case PlanGoldschmidt:
		g, err := s.Goldschmidt()
		if err != nil {
			return nil, 0, err
		}
		return g.Evaluate, g.Depth(), nil
	case PlanNewton:
		n, err := s.Newton()
		if err != nil {
			return nil, 0, err
		}
		return n.Evaluate, n.Depth(), nil
	}
	return nil, 0, fmt.Errorf("unknown polynomial method %q", s.Method)
}

// Derivative returns the exact derivative of the spec's float64 twin: the
// spec evaluated on the Dual builder (forward-mode differentiation of the
// same arithmetic), validated once. The returned function is safe for
// concurrent use.
func (s Spec) Derivative() (func(float64) float64, error) {
	switch s.Method {
	case PlanChebyshev:
		p, err := s.Chebyshev()
		if err != nil {
			return nil, err
		}
		d := NewDual(p)
		return func(x float64) float64 { return EvalChebyshev[DualNumber](d, p, DualNumber{V: x, D: 1}).D }, nil
	case PlanGoldschmidt:
		g, err := s.Goldschmidt()
		if err != nil {
			return nil, err
		}
		d := NewDual()
		return func(x float64) float64 { return EvalGoldschmidtInv[DualNumber](d, g, DualNumber{V: x, D: 1}).D }, nil
	case PlanNewton:
		n, err := s.Newton()
		if err != nil {
			return nil, err
		}
		d := NewDual(n.Init)
		return func(x float64) float64 { return EvalNewtonInvSqrt[DualNumber](d, n, DualNumber{V: x, D: 1}).D }, nil
	}
	return nil, fmt.Errorf("unknown polynomial method %q", s.Method)
}
