package polyapprox

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Approximation methods accepted by Approximate and the degree searches.
const (
	// MethodChebyshev is Chebyshev interpolation at the first-kind nodes
	// (Interpolate).
	MethodChebyshev = "chebyshev"
	// MethodRemez is absolute-error minimax (Remez with relative = false).
	MethodRemez = "remez"
	// MethodRemezRelative is relative-error minimax (Remez with
	// relative = true); f must not vanish on the interval.
	MethodRemezRelative = "remez-rel"
)

// Methods lists the accepted method names.
func Methods() []string { return []string{MethodChebyshev, MethodRemez, MethodRemezRelative} }

// MaxPowExponent is the largest exponent p accepted in "pow<p>".
const MaxPowExponent = 64

// Functions lists the canonical names of the ready functions, sorted:
//
//	exp      e^x
//	gelu     x * 0.5 * (1 + erf(x / sqrt 2))   (exact erf form)
//	invsqrt  1/sqrt(x)                         (interval must be > 0)
//	pow2..pow8  x^p
//	recip    1/x                               (interval must be > 0)
//	sigmoid  1 / (1 + e^-x)
//	tanh     tanh(x)
//
// LookupFunction also accepts "pow<p>" for any integer 1 <= p <= MaxPowExponent.
func Functions() []string {
	return []string{"exp", "gelu", "invsqrt", "pow2", "pow3", "pow4", "pow5", "pow6", "pow7", "pow8", "recip", "sigmoid", "tanh"}
}

// GELU is x * 0.5 * (1 + erf(x / sqrt 2)), the exact (erf) form.
func GELU(x float64) float64 { return x * 0.5 * (1 + math.Erf(x/math.Sqrt2)) }

// Sigmoid is 1 / (1 + e^-x), computed without overflow for large |x|.
func Sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

func recip(x float64) float64   { return 1 / x }
func invSqrt(x float64) float64 { return 1 / math.Sqrt(x) }

// parsePow returns p for a name "pow<p>".
func parsePow(name string) (int, bool, error) {
	rest, ok := strings.CutPrefix(name, "pow")
	if !ok {
		return 0, false, nil
	}
	p, err := strconv.Atoi(rest)
	if err != nil || rest == "" || rest[0] == '+' || rest[0] == '-' {
		return 0, true, fmt.Errorf("function %q: want pow<p> with an integer p", name)
	}
	if p < 1 || p > MaxPowExponent {
		return 0, true, fmt.Errorf("function %q: exponent %d outside [1, %d]", name, p, MaxPowExponent)
	}
	return p, true, nil
}

// LookupFunction returns the float64 implementation of a named function
// (see Functions; "pow<p>" for 1 <= p <= MaxPowExponent). Unknown names are
// an error listing the known ones.
func LookupFunction(name string) (func(float64) float64, error) {
	switch name {
	case "exp":
		return math.Exp, nil
	case "gelu":
		return GELU, nil
	case "recip":
		return recip, nil
	case "invsqrt":
		return invSqrt, nil
	case "sigmoid":
		return Sigmoid, nil
	case "tanh":
		return math.Tanh, nil
	}
	p, isPow, err := parsePow(name)
	if err != nil {
		return nil, err
	}
	if isPow {
		return func(x float64) float64 {
			// repeated squaring: exact for small integer p like the circuit
			r, b := 1.0, x
			for e := p; e > 0; e >>= 1 {
				if e&1 == 1 {
					r *= b
				}
				b *= b
			}
			return r
		}, nil
	}
	return nil, fmt.Errorf("unknown function %q (known: %s, pow<p> for 1 <= p <= %d)", name, strings.Join(Functions(), ", "), MaxPowExponent)
}

// CheckDomain reports an error if the named function is not defined (or not
// finite) on all of iv: recip and invsqrt need A > 0, exp needs B < 709 (no
// overflow). The interval itself must be valid.
func CheckDomain(name string, iv Interval) error {
	if _, err := LookupFunction(name); err != nil {
		return err
	}
	if err := iv.Validate(); err != nil {
		return fmt.Errorf("function %q: %w", name, err)
	}
	switch name {
	case "recip", "invsqrt":
		if iv.A <= 0 {
			return fmt.Errorf("function %q: interval [%g, %g] must lie in x > 0", name, iv.A, iv.B)
		}
	case "exp":
		if iv.B >= 709 {
			return fmt.Errorf("function %q: interval [%g, %g] overflows float64 (need b < 709)", name, iv.A, iv.B)
		}
	}
	return nil
}

// Approximation is a ready polynomial approximation of a named function on an
// interval, with its measured error and encrypted cost.
type Approximation struct {
	// Function is the name given to Approximate (see Functions).
	Function string
	// Interval is where the approximation is valid; inputs outside are not
	// clamped under encryption.
	Interval Interval
	// Degree is the polynomial degree (len(Poly.Coeffs) - 1).
	Degree int
	// Method is MethodChebyshev, MethodRemez or MethodRemezRelative.
	Method string
	// Poly is the polynomial the encrypted evaluator evaluates.
	Poly Chebyshev
	// MaxAbsError and MaxRelError are measured by MeasureChebyshev (dense
	// grid, see MeasureError for how zeros of f are handled), with the Remez
	// extrema added to the grid for the Remez methods.
	MaxAbsError, MaxRelError float64
	// Depth is Poly.Depth(): levels consumed, change of basis included.
	Depth int
	// CtMults is CtMultsOfDegree(Degree): ciphertext-ciphertext products of
	// the Lattigo v5.0.7 Paterson–Stockmeyer evaluation.
	CtMults int
}

// Evaluate returns the polynomial at x (the float64 twin of the encrypted
// evaluation).
func (a Approximation) Evaluate(x float64) float64 { return a.Poly.Evaluate(x) }

// Approximate builds the degree-d approximation of the named function on iv
// by the given method and measures its error. It returns an error for an
// unknown function or method, a degree outside [0, MaxDegree], an invalid
// interval (NaN/Inf ends, a >= b), a domain violation (CheckDomain), a zero
// of f on iv with MethodRemezRelative, or a Remez failure. Degree 0 gives a
// constant, which package he does not evaluate as a polynomial.
func Approximate(function string, iv Interval, degree int, method string) (Approximation, error) {
	f, err := LookupFunction(function)
	if err != nil {
		return Approximation{}, fmt.Errorf("approximate: %w", err)
	}
	if err := CheckDomain(function, iv); err != nil {
		return Approximation{}, fmt.Errorf("approximate: %w", err)
	}
	poly, extra, err := build(f, iv, degree, method)
	if err != nil {
		return Approximation{}, fmt.Errorf("approximate %s on [%g, %g] at degree %d: %w", function, iv.A, iv.B, degree, err)
	}
	st, err := MeasureChebyshev(f, poly, extra...)
	if err != nil {
		return Approximation{}, fmt.Errorf("approximate %s: %w", function, err)
	}
	return Approximation{
		Function:    function,
		Interval:    iv,
		Degree:      poly.Degree(),
		Method:      method,
		Poly:        poly,
		MaxAbsError: st.MaxAbs,
		MaxRelError: st.MaxRel,
		Depth:       poly.Depth(),
		CtMults:     CtMultsOfDegree(poly.Degree()),
	}, nil
}

// build constructs the polynomial of f by method and returns extra points
// (the Remez extrema) worth adding to the measurement grid.
func build(f func(float64) float64, iv Interval, degree int, method string) (Chebyshev, []float64, error) {
	if degree < 0 || degree > MaxDegree {
		return Chebyshev{}, nil, fmt.Errorf("degree %d outside [0, %d]", degree, MaxDegree)
	}
	switch method {
	case MethodChebyshev:
		p, err := Interpolate(f, iv, degree)
		return p, nil, err
	case MethodRemez, MethodRemezRelative:
		p, res, err := Remez(f, iv, degree, method == MethodRemezRelative)
		if err != nil {
			return Chebyshev{}, nil, err
		}
		return p, res.Extrema, nil
	case "":
		return Chebyshev{}, nil, errors.New("empty method")
	}
	return Chebyshev{}, nil, fmt.Errorf("unknown method %q (known: %s)", method, strings.Join(Methods(), ", "))
}
