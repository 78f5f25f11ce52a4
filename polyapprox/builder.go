package polyapprox

// Builder is the arithmetic an evaluation plan is written against. The
// plans' steps (EvalChebyshev, EvalNewtonInvSqrt, NewtonIterations,
// EvalGoldschmidtInv, GoldschmidtIterations) are defined once, here, and
// run on three implementations, so the float64 twin, the encrypted
// evaluation and the compiled op graph cannot drift apart:
//
//   - Float evaluates in float64 (the twin: Evaluate of each plan);
//   - Dual evaluates value and derivative in float64 (forward-mode
//     differentiation of the same arithmetic, for training);
//   - the ciphertext builder of package he evaluates under encryption;
//   - the op-graph builder of the compiler emits one op per primitive.
//
// V is the builder's value: a float64, a ciphertext, an op id. Builders
// whose primitives can fail keep the first error (sticky) and report it
// after the plan returns; the plans do not check errors themselves.
type Builder[V any] interface {
	// Mul is the product of two values (a ciphertext-ciphertext product:
	// one level, one key switch).
	Mul(a, b V) V
	// MulConst is c·a (a plaintext-constant product: one level).
	MulConst(a V, c float64) V
	// AddConst is a + c (no level).
	AddConst(a V, c float64) V
	// ScaleSub is c·a − b, with c·a brought to b's level and scale (one
	// level on a).
	ScaleSub(a V, c float64, b V) V
	// Poly is the Chebyshev polynomial p at a (p.Depth() levels).
	Poly(a V, p Chebyshev) V
}

// EvalChebyshev evaluates the polynomial p at x.
func EvalChebyshev[V any](b Builder[V], p Chebyshev, x V) V { return b.Poly(x, p) }

// EvalNewtonInvSqrt evaluates the plan n at x (see NewtonInvSqrt):
//
//	h := 0.5 * x               // plaintext-constant product, 1 level
//	y := Init(x)               // Chebyshev polynomial, Init.Depth() levels
//	y = NewtonIterations(h, y, Iterations)
func EvalNewtonInvSqrt[V any](b Builder[V], n NewtonInvSqrt, x V) V {
	h := b.MulConst(x, 0.5)
	y := b.Poly(x, n.Init)
	return NewtonIterations(b, h, y, n.Iterations)
}

// NewtonIterations performs k Newton steps for 1/sqrt(x) from the guess y
// with h = x/2, and returns the refined guess:
//
//	repeat k times:
//	    a := y * y             // ciphertext product, 1 level
//	    b := h * y             // ciphertext product, 1 level (in parallel with a)
//	    c := a * b             // ciphertext product, 1 level
//	    y = 1.5 * y - c        // plaintext-constant product and subtraction
//
// that is y <- y * (3 - x*y^2) / 2. Each step costs 2 levels and 3
// ciphertext products.
func NewtonIterations[V any](b Builder[V], h, y V, k int) V {
	for i := 0; i < k; i++ {
		a := b.Mul(y, y)
		hy := b.Mul(h, y)
		c := b.Mul(a, hy)
		y = b.ScaleSub(y, 1.5, c)
	}
	return y
}

// EvalGoldschmidtInv evaluates the plan g at x (see GoldschmidtInv), with
// c = g.Normalizer():
//
//	m := -c * x                // plaintext-constant product, 1 level
//	a := m + 2                 // a = 2 - xn, constant addition
//	b := m + 1                 // b = 1 - xn, constant addition
//	a = GoldschmidtIterations(a, b, Iterations)
//	y := c * a                 // plaintext-constant product, 1 level
func EvalGoldschmidtInv[V any](b Builder[V], g GoldschmidtInv, x V) V {
	c := g.Normalizer()
	m := b.MulConst(x, -c)
	a := GoldschmidtIterations(b, b.AddConst(m, 2), b.AddConst(m, 1), g.Iterations)
	return b.MulConst(a, c)
}

// GoldschmidtIterations performs k Goldschmidt steps on (a, e) and returns
// a:
//
//	repeat k times:
//	    e = e * e              // ciphertext product, 1 level
//	    a = a * (e + 1)        // constant addition, then ciphertext product, 1 level
//
// From a = 2 - xn and e = 1 - xn, after k steps
// a = (1 - (1-xn)^(2^(k+1))) / xn. Starting from -a and -e instead gives
// -a (e*e is unchanged).
func GoldschmidtIterations[V any](b Builder[V], a, e V, k int) V {
	for i := 0; i < k; i++ {
		e = b.Mul(e, e)
		a = b.Mul(a, b.AddConst(e, 1))
	}
	return a
}

// Float is the float64 Builder: the twin of the encrypted plans. Each
// primitive is one rounded float64 operation (two for ScaleSub), in the
// order the plans perform them.
type Float struct{}

// Mul is a*b.
func (Float) Mul(a, b float64) float64 { return a * b }

// MulConst is c*a.
func (Float) MulConst(a, c float64) float64 { return c * a }

// AddConst is a+c.
func (Float) AddConst(a, c float64) float64 { return a + c }

// ScaleSub is c*a - b, the product rounded before the subtraction.
func (Float) ScaleSub(a, c, b float64) float64 { return float64(c*a) - b }

// Poly is p.Evaluate(a).
func (Float) Poly(a float64, p Chebyshev) float64 { return p.Evaluate(a) }

// DualNumber is a value with its derivative with respect to the plan's
// input.
type DualNumber struct{ V, D float64 }

// Dual is the value-and-derivative Builder: forward-mode differentiation of
// exactly the arithmetic of Float (its values are Float's, bit for bit).
// The derivative of a polynomial is evaluated from its derivative series
// (ChebyshevDerivative); NewDual computes those of the given polynomials
// once, others are computed at each use.
type Dual struct {
	polys, derivs []Chebyshev
}

// NewDual returns a Dual builder that keeps the derivative series of polys.
// It is safe for concurrent use.
func NewDual(polys ...Chebyshev) *Dual {
	d := &Dual{}
	for _, p := range polys {
		d.polys, d.derivs = append(d.polys, p), append(d.derivs, ChebyshevDerivative(p))
	}
	return d
}

// Mul is the product rule.
func (*Dual) Mul(a, b DualNumber) DualNumber {
	return DualNumber{a.V * b.V, a.D*b.V + a.V*b.D}
}

// MulConst scales value and derivative.
func (*Dual) MulConst(a DualNumber, c float64) DualNumber { return DualNumber{c * a.V, c * a.D} }

// AddConst shifts the value.
func (*Dual) AddConst(a DualNumber, c float64) DualNumber { return DualNumber{a.V + c, a.D} }

// ScaleSub is c*a - b.
func (*Dual) ScaleSub(a DualNumber, c float64, b DualNumber) DualNumber {
	return DualNumber{float64(c*a.V) - b.V, float64(c*a.D) - b.D}
}

// Poly is p and its derivative at a (chain rule).
func (d *Dual) Poly(a DualNumber, p Chebyshev) DualNumber {
	return DualNumber{p.Evaluate(a.V), d.derivative(p).Evaluate(a.V) * a.D}
}

// derivative returns the kept derivative series of p (polynomials are
// identified by interval and coefficient slice), or computes it.
func (d *Dual) derivative(p Chebyshev) Chebyshev {
	for i, q := range d.polys {
		if q.Interval == p.Interval && len(q.Coeffs) == len(p.Coeffs) && (len(p.Coeffs) == 0 || &q.Coeffs[0] == &p.Coeffs[0]) {
			return d.derivs[i]
		}
	}
	return ChebyshevDerivative(p)
}

// ChebyshevDerivative returns dp/dx as a Chebyshev series on the same
// interval, degree one less (the zero polynomial for a constant): the
// recurrence c'_{k-1} = c'_{k+1} + 2k c_k, the constant term halved, times
// the chain-rule factor 2/(B-A).
func ChebyshevDerivative(p Chebyshev) Chebyshev {
	n := len(p.Coeffs)
	if n <= 1 {
		return Chebyshev{Interval: p.Interval, Coeffs: []float64{0}}
	}
	d := make([]float64, n+1)
	for k := n - 1; k >= 1; k-- {
		d[k-1] = d[k+1] + 2*float64(k)*p.Coeffs[k]
	}
	d[0] /= 2
	s := 2 / (p.Interval.B - p.Interval.A)
	out := make([]float64, n-1)
	for i := range out {
		out[i] = d[i] * s
	}
	return Chebyshev{Interval: p.Interval, Coeffs: out}
}
