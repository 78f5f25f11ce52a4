package polyapprox

import (
	"fmt"
	"math"
)

// NewtonInvSqrt is an explicit plan for 1/sqrt(x) on Init.Interval: a
// polynomial initial guess refined by Newton iterations. The encrypted
// evaluator, the compiler and the float64 twin (Evaluate) all run the
// steps of EvalNewtonInvSqrt and NewtonIterations (see Builder). Each
// iteration costs 2 levels and 3 ciphertext-ciphertext multiplications.
type NewtonInvSqrt struct {
	Init       Chebyshev
	Iterations int
}

// Evaluate is the float64 twin of the encrypted plan: EvalNewtonInvSqrt on
// the Float builder.
func (n NewtonInvSqrt) Evaluate(x float64) float64 { return EvalNewtonInvSqrt[float64](Float{}, n, x) }

// Depth is the number of levels the encrypted plan consumes.
func (n NewtonInvSqrt) Depth() int {
	d := n.Init.Depth()
	if d < 1 {
		d = 1 // h = 0.5*x takes one level even when Init is trivial
	}
	return d + 2*n.Iterations
}

// Validate checks the initial polynomial and the iteration count.
func (n NewtonInvSqrt) Validate() error {
	if err := n.Init.Validate(); err != nil {
		return fmt.Errorf("newton inverse sqrt: initial guess: %w", err)
	}
	if n.Iterations < 0 {
		return fmt.Errorf("newton inverse sqrt: %d iterations", n.Iterations)
	}
	if n.Init.Interval.A <= 0 {
		return fmt.Errorf("newton inverse sqrt: interval [%g, %g] must be positive", n.Init.Interval.A, n.Init.Interval.B)
	}
	return nil
}

// GoldschmidtInv is an explicit plan for 1/x on Interval (0 < A < B). The input
// is first normalized into (0, 2) by xn = c·x with c = 2/(A+B); the
// encrypted evaluator, the compiler and the float64 twin (Evaluate) all run
// the steps of EvalGoldschmidtInv and GoldschmidtIterations (see Builder).
// After k iterations a = (1 - (1-xn)^(2^(k+1))) / xn, so the relative error of
// y against 1/x is |1 - xn|^(2^(k+1)).
type GoldschmidtInv struct {
	Interval   Interval
	Iterations int
}

// Normalizer returns c = 2/(A+B), the constant that maps the interval into (0, 2).
func (g GoldschmidtInv) Normalizer() float64 { return 2 / (g.Interval.A + g.Interval.B) }

// Evaluate is the float64 twin of the encrypted plan: EvalGoldschmidtInv on
// the Float builder.
func (g GoldschmidtInv) Evaluate(x float64) float64 {
	return EvalGoldschmidtInv[float64](Float{}, g, x)
}

// Depth is the number of levels the encrypted plan consumes: one for the
// normalization, one per iteration plus one because a lags b by a level, and
// one for the final scaling.
func (g GoldschmidtInv) Depth() int {
	if g.Iterations == 0 {
		return 2
	}
	return g.Iterations + 3
}

// Validate checks the interval is positive and the iteration count.
func (g GoldschmidtInv) Validate() error {
	if err := g.Interval.Validate(); err != nil {
		return fmt.Errorf("goldschmidt inverse: %w", err)
	}
	if g.Interval.A <= 0 {
		return fmt.Errorf("goldschmidt inverse: interval [%g, %g] must be positive", g.Interval.A, g.Interval.B)
	}
	if g.Iterations < 0 {
		return fmt.Errorf("goldschmidt inverse: %d iterations", g.Iterations)
	}
	return nil
}

// Plan is an iterative evaluation plan for a named function (see Functions)
// with a float64 twin of its encrypted arithmetic. NewtonInvSqrt and
// GoldschmidtInv implement it.
type Plan interface {
	// Evaluate is the float64 twin of the encrypted plan.
	Evaluate(x float64) float64
	// Domain is the interval on which the plan is meant to be used.
	Domain() Interval
	// FunctionName is the name (for LookupFunction) of the function the plan approximates.
	FunctionName() string
	// Depth is the number of levels the encrypted plan consumes.
	Depth() int
	// CtMults is the number of ciphertext-ciphertext multiplications.
	CtMults() int
	// Validate reports an error if the plan cannot be evaluated.
	Validate() error
}

// PlanErrors validates the plan and measures its float64 twin against the
// exact function on the plan's domain with MeasureError (dense grid).
func PlanErrors(p Plan) (ErrorStats, error) {
	if p == nil {
		return ErrorStats{}, fmt.Errorf("plan errors: nil plan")
	}
	if err := p.Validate(); err != nil {
		return ErrorStats{}, fmt.Errorf("plan errors: %w", err)
	}
	f, err := LookupFunction(p.FunctionName())
	if err != nil {
		return ErrorStats{}, fmt.Errorf("plan errors: %w", err)
	}
	st, err := MeasureError(f, p.Evaluate, p.Domain())
	if err != nil {
		return ErrorStats{}, fmt.Errorf("plan %s: %w", p.FunctionName(), err)
	}
	return st, nil
}

// MaxRelError is the largest relative error of the plan's float64 twin
// against the exact function on the plan's domain, measured on the dense
// grid of MeasureError.
func MaxRelError(p Plan) (float64, error) {
	st, err := PlanErrors(p)
	if err != nil {
		return 0, err
	}
	return st.MaxRel, nil
}

// newtonMaxInitRelError is sqrt(3) - 1: an initial guess y0 = (1+e)/sqrt(x)
// with e >= sqrt(3)-1 makes 3 - x*y0^2 <= 0, so Newton does not converge.
const newtonMaxInitRelError = 0.7320508075688772 // sqrt(3) - 1

// NewNewtonInvSqrt builds the Newton plan for 1/sqrt(x) on iv (0 < A < B):
// the initial guess is the relative-error minimax polynomial (Remez) of
// 1/sqrt on iv at initDegree, refined by the given number of iterations.
// It returns an error for an invalid or non-positive interval, a degree
// outside [1, MaxDegree] (the encrypted evaluator refuses constants),
// iterations outside [0, MaxIterations], a Remez failure, or an initial guess whose
// relative error leaves (-1, sqrt(3)-1) (Newton would not converge on all
// of iv: raise initDegree or narrow iv).
func NewNewtonInvSqrt(iv Interval, initDegree, iterations int) (NewtonInvSqrt, error) {
	if err := CheckDomain("invsqrt", iv); err != nil {
		return NewtonInvSqrt{}, fmt.Errorf("newton inverse sqrt: %w", err)
	}
	if initDegree < 1 || initDegree > MaxDegree {
		return NewtonInvSqrt{}, fmt.Errorf("newton inverse sqrt: initial degree %d outside [1, %d] (he/ evaluates no constant polynomial)", initDegree, MaxDegree)
	}
	if iterations < 0 || iterations > MaxIterations {
		return NewtonInvSqrt{}, fmt.Errorf("newton inverse sqrt: %d iterations outside [0, %d]", iterations, MaxIterations)
	}
	init, _, err := Remez(invSqrt, iv, initDegree, true)
	if err != nil {
		return NewtonInvSqrt{}, fmt.Errorf("newton inverse sqrt: initial guess: %w", err)
	}
	n := NewtonInvSqrt{Init: init, Iterations: iterations}
	lo, hi, err := n.initRelErrorRange()
	if err != nil {
		return NewtonInvSqrt{}, err
	}
	if hi >= newtonMaxInitRelError || lo <= -1 {
		return NewtonInvSqrt{}, fmt.Errorf("newton inverse sqrt: initial guess of degree %d on [%g, %g] has relative error in [%.3g, %.3g], outside (-1, sqrt(3)-1): Newton would not converge; raise the degree or narrow the interval", initDegree, iv.A, iv.B, lo, hi)
	}
	return n, nil
}

// Domain is Init.Interval.
func (n NewtonInvSqrt) Domain() Interval { return n.Init.Interval }

// FunctionName is "invsqrt".
func (n NewtonInvSqrt) FunctionName() string { return "invsqrt" }

// CtMults is the number of ciphertext-ciphertext multiplications:
// CtMultsOfDegree(Init.Degree()) for the initial guess plus 3 per iteration
// (y*y, h*y, a*b; the products by 0.5 and 1.5 are plaintext constants).
func (n NewtonInvSqrt) CtMults() int { return CtMultsOfDegree(n.Init.Degree()) + 3*n.Iterations }

// MaxRelError is MaxRelError(n): the measured relative error of the float64
// twin against 1/sqrt(x) on the domain.
func (n NewtonInvSqrt) MaxRelError() (float64, error) { return MaxRelError(n) }

// initRelErrorRange measures the signed relative error e(x) = y0(x)*sqrt(x) - 1
// of the initial guess on the dense grid and returns its range.
func (n NewtonInvSqrt) initRelErrorRange() (lo, hi float64, err error) {
	if err := n.Validate(); err != nil {
		return 0, 0, err
	}
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, x := range densePoints(n.Init.Interval) {
		e := n.Init.Evaluate(x)*math.Sqrt(x) - 1
		if math.IsNaN(e) || math.IsInf(e, 0) {
			return 0, 0, fmt.Errorf("newton inverse sqrt: initial guess is %g at x = %g", n.Init.Evaluate(x), x)
		}
		lo, hi = math.Min(lo, e), math.Max(hi, e)
	}
	return lo, hi, nil
}

// PredictedRelError is the relative error after Iterations Newton steps in
// exact arithmetic, predicted from the measured range [lo, hi] of the
// initial guess's signed relative error e: one step maps e to
// phi(e) = -e^2 (3 + e) / 2, and the range is propagated through phi (its
// extremes over an interval are at the ends or at 0). It ignores float64 and
// CKKS rounding, so it is not a guarantee below about 1e-15.
func (n NewtonInvSqrt) PredictedRelError() (float64, error) {
	lo, hi, err := n.initRelErrorRange()
	if err != nil {
		return 0, err
	}
	phi := func(e float64) float64 { return -e * e * (3 + e) / 2 }
	for i := 0; i < n.Iterations; i++ {
		a, b := phi(lo), phi(hi)
		nlo, nhi := math.Min(a, b), math.Max(a, b)
		if lo < 0 && hi > 0 {
			nhi = math.Max(nhi, 0)
		}
		lo, hi = nlo, nhi
	}
	return math.Max(math.Abs(lo), math.Abs(hi)), nil
}

// NewGoldschmidtInv builds the Goldschmidt plan for 1/x on iv (0 < A < B)
// with the given number of iterations (0..MaxIterations). Use GoldschmidtIterationsFor
// to choose the iteration count from a target relative error.
func NewGoldschmidtInv(iv Interval, iterations int) (GoldschmidtInv, error) {
	if err := CheckDomain("recip", iv); err != nil {
		return GoldschmidtInv{}, fmt.Errorf("goldschmidt inverse: %w", err)
	}
	if iterations < 0 || iterations > MaxIterations {
		return GoldschmidtInv{}, fmt.Errorf("goldschmidt inverse: %d iterations outside [0, %d]", iterations, MaxIterations)
	}
	return GoldschmidtInv{Interval: iv, Iterations: iterations}, nil
}

// Domain is Interval.
func (g GoldschmidtInv) Domain() Interval { return g.Interval }

// FunctionName is "recip".
func (g GoldschmidtInv) FunctionName() string { return "recip" }

// CtMults is the number of ciphertext-ciphertext multiplications: 2 per
// iteration (b*b and a*(1+b)).
func (g GoldschmidtInv) CtMults() int { return 2 * g.Iterations }

// MaxRelError is MaxRelError(g): the measured relative error of the float64
// twin against 1/x on the interval.
func (g GoldschmidtInv) MaxRelError() (float64, error) { return MaxRelError(g) }

// RelErrorBound is the exact-arithmetic relative error bound
// max(|1 - c*A|, |1 - c*B|)^(2^(Iterations+1)) with c = Normalizer(); both
// ends give r = (B-A)/(B+A), the error is attained at x = A and x = B, and
// it is smaller inside. Float64 rounding adds a few ulps.
func (g GoldschmidtInv) RelErrorBound() float64 {
	c := g.Normalizer()
	r := math.Max(math.Abs(1-c*g.Interval.A), math.Abs(1-c*g.Interval.B))
	return math.Pow(r, math.Pow(2, float64(g.Iterations+1)))
}

// GoldschmidtIterationsFor returns the smallest iteration count k such that
// the Goldschmidt bound ((B-A)/(B+A))^(2^(k+1)) on iv is at most
// targetRelErr. It returns an error for an invalid or non-positive
// interval, a target outside (0, 1), or more than MaxIterations iterations needed.
// Targets below about 1e-15 are met by the bound but not by float64 or
// CKKS arithmetic.
func GoldschmidtIterationsFor(iv Interval, targetRelErr float64) (int, error) {
	if err := CheckDomain("recip", iv); err != nil {
		return 0, fmt.Errorf("goldschmidt iterations: %w", err)
	}
	if !(targetRelErr > 0 && targetRelErr < 1) {
		return 0, fmt.Errorf("goldschmidt iterations: target relative error %g outside (0, 1)", targetRelErr)
	}
	for k := 0; k <= MaxIterations; k++ {
		if (GoldschmidtInv{Interval: iv, Iterations: k}).RelErrorBound() <= targetRelErr {
			return k, nil
		}
	}
	return 0, fmt.Errorf("goldschmidt iterations: target %g on [%g, %g] needs more than %d iterations", targetRelErr, iv.A, iv.B, MaxIterations)
}
