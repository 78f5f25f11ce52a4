// Package polyapprox is the approximation theory behind polyformer's encrypted
// non-linearities: Chebyshev interpolation and series, Remez minimax, ready
// approximations of the functions transformers need, iterative plans (Newton,
// Goldschmidt), error bounds, depth and multiplication counts, and float64
// evaluators that are the plaintext twins of the encrypted evaluation.
//
// It depends on gonum only; the CKKS runtime (package he) evaluates the very
// same polynomials on ciphertexts.
//
// Entry points:
//   - Approximate(function, interval, degree, method) builds a ready
//     Approximation of a named function (Functions, LookupFunction) by
//     Chebyshev interpolation (Interpolate) or Remez minimax (Remez, absolute
//     or relative error), with its measured error (MeasureError), its depth
//     and its ciphertext-ciphertext product count (CtMultsOfDegree).
//   - NewNewtonInvSqrt and NewGoldschmidtInv build the iterative plans for
//     1/sqrt(x) and 1/x; MaxRelError, PredictedRelError, RelErrorBound and
//     GoldschmidtIterationsFor report and choose their accuracy.
//   - SmallestDegree, SmallestDepthOptimalDegree and DepthOptimalDegrees
//     choose a degree for a target error.
//
// Every polynomial is a Chebyshev value: coefficients of T_k on the interval
// mapped to [-1, 1], evaluated in float64 by Clenshaw (Chebyshev.Evaluate)
// and under encryption by Lattigo's Paterson–Stockmeyer evaluator.
package polyapprox

import (
	"errors"
	"fmt"
	"math"
)

// Interval is the closed interval [A, B] on which an approximation is valid.
// Inputs outside it are not clamped under encryption, so callers must make sure
// (by calibration) that they stay inside.
type Interval struct {
	A, B float64
}

// Validate reports an error unless A < B, both ends are finite and the
// width B - A is finite (so that the map to [-1, 1] is).
func (iv Interval) Validate() error {
	if math.IsNaN(iv.A) || math.IsNaN(iv.B) || math.IsInf(iv.A, 0) || math.IsInf(iv.B, 0) {
		return fmt.Errorf("interval [%g, %g]: ends must be finite", iv.A, iv.B)
	}
	if !(iv.A < iv.B) {
		return fmt.Errorf("interval [%g, %g]: need a < b", iv.A, iv.B)
	}
	if math.IsInf(iv.B-iv.A, 0) {
		return fmt.Errorf("interval [%g, %g]: width overflows float64", iv.A, iv.B)
	}
	return nil
}

// Contains reports whether x lies in [A, B].
func (iv Interval) Contains(x float64) bool { return x >= iv.A && x <= iv.B }

// ToUnit maps x in [A, B] affinely to u in [-1, 1]: u = (2x - A - B) / (B - A).
func (iv Interval) ToUnit(x float64) float64 { return (2*x - iv.A - iv.B) / (iv.B - iv.A) }

// FromUnit maps u in [-1, 1] back to [A, B].
func (iv Interval) FromUnit(u float64) float64 { return 0.5*(iv.B-iv.A)*u + 0.5*(iv.A+iv.B) }

// ChangeOfBasis returns the scalar and constant of the affine map to [-1, 1],
// u = scalar*x + constant, as the encrypted evaluator applies it.
func (iv Interval) ChangeOfBasis() (scalar, constant float64) {
	return 2 / (iv.B - iv.A), -(iv.A + iv.B) / (iv.B - iv.A)
}

// IsUnit reports whether the interval is exactly [-1, 1], in which case the
// change of basis is the identity and costs no level.
func (iv Interval) IsUnit() bool { return iv.A == -1 && iv.B == 1 }

// Chebyshev is the polynomial p(x) = sum_k Coeffs[k] * T_k(u) with
// u = (2x - A - B) / (B - A) the affine map of Interval onto [-1, 1].
// This is the basis, interval and coefficient convention that the encrypted
// evaluator uses, so a Chebyshev value fully describes what a ciphertext
// computes.
type Chebyshev struct {
	Interval Interval
	Coeffs   []float64
}

// Degree is the index of the last coefficient (trailing zeros included: the
// encrypted evaluator's cost depends on the stored length).
func (p Chebyshev) Degree() int { return len(p.Coeffs) - 1 }

// Evaluate returns p(x) by the Clenshaw recurrence in float64. It is the
// plaintext twin of the encrypted evaluation (same polynomial, same interval);
// x outside the interval is evaluated as is, not clamped, exactly like a
// ciphertext would be.
func (p Chebyshev) Evaluate(x float64) float64 {
	return clenshaw(p.Coeffs, p.Interval.ToUnit(x))
}

// EvaluateUnit returns p at u in the unit variable (no change of basis).
func (p Chebyshev) EvaluateUnit(u float64) float64 { return clenshaw(p.Coeffs, u) }

func clenshaw(c []float64, u float64) float64 {
	n := len(c)
	if n == 0 {
		return 0
	}
	if n == 1 {
		return c[0]
	}
	var b1, b2 float64
	for k := n - 1; k >= 1; k-- {
		b1, b2 = 2*u*b1-b2+c[k], b1
	}
	return u*b1 - b2 + c[0]
}

// PolyDepth is the number of multiplicative levels the polynomial body needs
// on a ciphertext: ceil(log2(degree + 1)). Degree 2^k - 1 is depth-optimal;
// degree 2^k needs one level more.
func (p Chebyshev) PolyDepth() int { return DepthOfDegree(p.Degree()) }

// ChangeOfBasisDepth is 1 when the interval is not [-1, 1] (the affine map
// u = scalar*x + constant costs a plaintext multiplication and a rescale), else 0.
func (p Chebyshev) ChangeOfBasisDepth() int {
	if p.Interval.IsUnit() {
		return 0
	}
	return 1
}

// Depth is the total number of levels an encrypted evaluation consumes:
// the change of basis plus the polynomial body.
func (p Chebyshev) Depth() int { return p.ChangeOfBasisDepth() + p.PolyDepth() }

// Validate checks the interval and that every coefficient is finite.
func (p Chebyshev) Validate() error {
	if err := p.Interval.Validate(); err != nil {
		return err
	}
	if len(p.Coeffs) == 0 {
		return errors.New("chebyshev polynomial has no coefficients")
	}
	for i, c := range p.Coeffs {
		if math.IsNaN(c) || math.IsInf(c, 0) {
			return fmt.Errorf("chebyshev coefficient %d is %g", i, c)
		}
	}
	return nil
}

// DepthOfDegree returns ceil(log2(d + 1)), the multiplicative depth of a
// polynomial of degree d (0 for constants and 1 for linear polynomials).
func DepthOfDegree(d int) int {
	if d <= 0 {
		return 0
	}
	depth := 0
	for (1 << depth) < d+1 {
		depth++
	}
	return depth
}

// Interpolate returns the Chebyshev interpolant of f of degree d on iv: the
// unique polynomial of degree d through f at the d+1 Chebyshev nodes of the
// first kind, whose coefficients are computed by the discrete cosine sum.
func Interpolate(f func(float64) float64, iv Interval, d int) (Chebyshev, error) {
	if f == nil {
		return Chebyshev{}, errors.New("interpolate: nil function")
	}
	if err := iv.Validate(); err != nil {
		return Chebyshev{}, err
	}
	if d < 0 {
		return Chebyshev{}, fmt.Errorf("interpolate: degree %d < 0", d)
	}
	n := d + 1
	fv := make([]float64, n)
	for j := 0; j < n; j++ {
		u := math.Cos(math.Pi * (float64(j) + 0.5) / float64(n))
		fv[j] = f(iv.FromUnit(u))
		if math.IsNaN(fv[j]) || math.IsInf(fv[j], 0) {
			return Chebyshev{}, fmt.Errorf("interpolate: f(%g) = %g on [%g, %g]", iv.FromUnit(u), fv[j], iv.A, iv.B)
		}
	}
	coeffs := make([]float64, n)
	for k := 0; k < n; k++ {
		var s float64
		for j := 0; j < n; j++ {
			s += fv[j] * math.Cos(math.Pi*float64(k)*(float64(j)+0.5)/float64(n))
		}
		coeffs[k] = 2 * s / float64(n)
	}
	coeffs[0] /= 2
	return Chebyshev{Interval: iv, Coeffs: coeffs}, nil
}
