package polyapprox

import "fmt"

// NewtonInvSqrt is an explicit plan for 1/sqrt(x) on Init.Interval: a
// polynomial initial guess refined by Newton iterations. The encrypted
// evaluator performs exactly the arithmetic of Evaluate, in the same order:
//
//	h := 0.5 * x               // plaintext-constant product, 1 level
//	y := Init(x)               // Chebyshev polynomial, Init.Depth() levels
//	repeat Iterations times:
//	    a := y * y             // ciphertext product, 1 level
//	    b := h * y             // ciphertext product, 1 level (in parallel with a)
//	    c := a * b             // ciphertext product, 1 level
//	    d := 1.5 * y           // plaintext-constant product, 1 level
//	    y = d - c              // y <- y * (3 - x*y^2) / 2
//
// Each iteration costs 2 levels and 3 ciphertext-ciphertext multiplications.
type NewtonInvSqrt struct {
	Init       Chebyshev
	Iterations int
}

// Evaluate is the float64 twin of the encrypted plan.
func (n NewtonInvSqrt) Evaluate(x float64) float64 {
	h := 0.5 * x
	y := n.Init.Evaluate(x)
	for i := 0; i < n.Iterations; i++ {
		a := y * y
		b := h * y
		c := a * b
		d := 1.5 * y
		y = d - c
	}
	return y
}

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
// is first normalized into (0, 2) by c = 2/(A+B); the encrypted evaluator
// performs exactly the arithmetic of Evaluate, in the same order:
//
//	xn := c * x                // plaintext-constant product, 1 level
//	a := 2 - xn                // constant addition, no level
//	b := 1 - xn                // constant addition, no level
//	repeat Iterations times:
//	    b = b * b              // ciphertext product, 1 level
//	    a = a * (1 + b)        // constant addition, then ciphertext product, 1 level
//	y := c * a                 // plaintext-constant product, 1 level
//
// After k iterations a = (1 - (1-xn)^(2^(k+1))) / xn, so the relative error of
// y against 1/x is |1 - xn|^(2^(k+1)).
type GoldschmidtInv struct {
	Interval   Interval
	Iterations int
}

// Normalizer returns c = 2/(A+B), the constant that maps the interval into (0, 2).
func (g GoldschmidtInv) Normalizer() float64 { return 2 / (g.Interval.A + g.Interval.B) }

// Evaluate is the float64 twin of the encrypted plan.
func (g GoldschmidtInv) Evaluate(x float64) float64 {
	c := g.Normalizer()
	xn := c * x
	a := 2 - xn
	b := 1 - xn
	for i := 0; i < g.Iterations; i++ {
		b = b * b
		a = a * (1 + b)
	}
	return c * a
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
