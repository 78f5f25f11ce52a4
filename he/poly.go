package he

import (
	"fmt"
	"math/bits"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/utils/bignum"

	"github.com/polyformer/polyformer/polyapprox"
)

// ksCounter wraps the Lattigo evaluator handed to Lattigo's polynomial
// evaluator and counts the relinearizations (key switches) it performs.
type ksCounter struct {
	*hefloat.Evaluator
	n int
}

func isCiphertext(op rlwe.Operand) bool {
	_, ok := op.(*rlwe.Ciphertext)
	return ok
}

func (c *ksCounter) Relinearize(a, b *rlwe.Ciphertext) error {
	c.n++
	return c.Evaluator.Relinearize(a, b)
}

func (c *ksCounter) MulRelin(a *rlwe.Ciphertext, b rlwe.Operand, out *rlwe.Ciphertext) error {
	if isCiphertext(b) {
		c.n++
	}
	return c.Evaluator.MulRelin(a, b, out)
}

func (c *ksCounter) MulRelinNew(a *rlwe.Ciphertext, b rlwe.Operand) (*rlwe.Ciphertext, error) {
	if isCiphertext(b) {
		c.n++
	}
	return c.Evaluator.MulRelinNew(a, b)
}

func (c *ksCounter) MulRelinThenAdd(a *rlwe.Ciphertext, b rlwe.Operand, out *rlwe.Ciphertext) error {
	if isCiphertext(b) {
		c.n++
	}
	return c.Evaluator.MulRelinThenAdd(a, b, out)
}

// Polynomial evaluates the Chebyshev polynomial p on ct and returns a
// ciphertext with ct's scale. It applies the change of basis
// u = (2x - A - B)/(B - A) explicitly (one level, skipped for [-1, 1]) and
// then Lattigo's Paterson–Stockmeyer evaluator, so it consumes exactly
// p.Depth() levels; the level check is done up front. Degrees 2^k, which
// Lattigo's own pre-check under-counts by one, are accounted for correctly
// (polyapprox.DepthOfDegree), but 2^k - 1 is cheaper for the same depth.
// Inputs outside p.Interval are not clamped.
func (e *Evaluator) Polynomial(ct *Ciphertext, p polyapprox.Chebyshev) (*Ciphertext, error) {
	if err := checkCt("polynomial", ct); err != nil {
		return nil, err
	}
	s := e.begin(ct)
	out, ks, err := e.polynomial(ct, p)
	if err != nil {
		return nil, err
	}
	var uses []KeyUse
	if p.Degree() > 1 {
		uses = []KeyUse{{Level: PolynomialRelinLevel(ct.Level(), p)}}
	}
	e.endKeys(s, OpPolynomial, out, ks, 0, false, fmt.Sprintf("degree %d on [%g, %g]", p.Degree(), p.Interval.A, p.Interval.B), uses)
	return out, nil
}

func (e *Evaluator) polynomial(ct *rlwe.Ciphertext, p polyapprox.Chebyshev) (*rlwe.Ciphertext, int, error) {
	if err := p.Validate(); err != nil {
		return nil, 0, fmt.Errorf("polynomial: %w", err)
	}
	if p.Degree() < 1 {
		return nil, 0, fmt.Errorf("polynomial: degree %d < 1 (a constant needs no ciphertext evaluation)", p.Degree())
	}
	if err := e.needLevels("polynomial", ct, p.Depth()); err != nil {
		return nil, 0, err
	}
	if p.Degree() > 1 {
		if err := e.checkRelinKey("polynomial", PolynomialRelinLevel(ct.Level(), p)); err != nil {
			return nil, 0, err
		}
	}
	targetScale := ct.Scale
	u := ct
	if !p.Interval.IsUnit() {
		scalar, constant := p.Interval.ChangeOfBasis()
		v, err := e.mulConstAtScale(ct, scalar, e.rescaleFactor(ct.Level()))
		if err != nil {
			return nil, 0, fmt.Errorf("polynomial: change of basis: %w", err)
		}
		if err = e.eval.Add(v, constant, v); err != nil {
			return nil, 0, fmt.Errorf("polynomial: change of basis: %w", err)
		}
		if err = e.eval.Rescale(v, v); err != nil {
			return nil, 0, fmt.Errorf("polynomial: change of basis: %w", err)
		}
		v.Scale = ct.Scale // exact: the multiplier was encoded at Q[level]
		u = v
	}
	poly := bignum.NewPolynomial(bignum.Chebyshev, p.Coeffs, [2]float64{p.Interval.A, p.Interval.B})
	cnt := &ksCounter{Evaluator: e.eval}
	out, err := hefloat.NewPolynomialEvaluator(e.params, cnt).Evaluate(u, poly, targetScale)
	if err != nil {
		return nil, 0, fmt.Errorf("polynomial: degree %d: %w", p.Degree(), err)
	}
	return out, cnt.n, nil
}

// PolynomialRelinLevel is the highest level at which Polynomial uses the
// relinearization key on an input at level: the input level, or one below
// after the change of basis of a polynomial on an interval other than
// [-1, 1] (which rescales first).
func PolynomialRelinLevel(level int, p polyapprox.Chebyshev) int {
	if p.Interval.IsUnit() {
		return level
	}
	return level - 1
}

// Power returns ct^p (p >= 1) by binary exponentiation (repeated squaring):
// ceil(log2 p) levels, floor(log2 p) + popcount(p) - 1 ciphertext
// products (one key switch each). The level check is done up front.
func (e *Evaluator) Power(ct *Ciphertext, p int) (*Ciphertext, error) {
	if err := checkCt("power", ct); err != nil {
		return nil, err
	}
	if p < 1 {
		return nil, fmt.Errorf("power: exponent %d < 1", p)
	}
	need := bits.Len(uint(p - 1)) // ceil(log2 p)
	if err := e.needLevels(fmt.Sprintf("power %d", p), ct, need); err != nil {
		return nil, err
	}
	if p > 1 {
		if err := e.checkRelinKey("power", ct.Level()); err != nil {
			return nil, err
		}
	}
	s := e.begin(ct)
	var result *rlwe.Ciphertext
	base := ct
	ks := 0
	for q := p; q > 0; q >>= 1 {
		if q&1 == 1 {
			if result == nil {
				result = base
			} else {
				r, err := e.rawMulRelinRescale(result, base)
				if err != nil {
					return nil, fmt.Errorf("power %d: %w", p, err)
				}
				result = r
				ks++
			}
		}
		if q > 1 {
			b, err := e.rawMulRelinRescale(base, base)
			if err != nil {
				return nil, fmt.Errorf("power %d: %w", p, err)
			}
			base = b
			ks++
		}
	}
	if result == ct {
		result = ct.CopyNew()
	}
	var uses []KeyUse
	if ks > 0 {
		uses = []KeyUse{{Level: ct.Level()}}
	}
	e.endKeys(s, OpPower, result, ks, 0, false, fmt.Sprintf("x^%d", p), uses)
	return result, nil
}

// rawMulRelinRescale multiplies, relinearizes and rescales without recording.
func (e *Evaluator) rawMulRelinRescale(a, b *rlwe.Ciphertext) (*rlwe.Ciphertext, error) {
	out, err := e.eval.MulRelinNew(a, b)
	if err != nil {
		return nil, err
	}
	if err = e.eval.Rescale(out, out); err != nil {
		return nil, err
	}
	return out, nil
}

// rawMulConstRescale multiplies by c encoded at Q[level] and rescales: the
// result has ct's scale exactly and one level less.
func (e *Evaluator) rawMulConstRescale(ct *rlwe.Ciphertext, c float64) (*rlwe.Ciphertext, error) {
	out, err := e.mulConstAtScale(ct, c, e.rescaleFactor(ct.Level()))
	if err != nil {
		return nil, err
	}
	if err = e.eval.Rescale(out, out); err != nil {
		return nil, err
	}
	out.Scale = ct.Scale
	return out, nil
}

// EvaluateNewtonInvSqrt evaluates the plan n (1/sqrt(x) by a Chebyshev
// initial guess and Newton iterations) on ct: polyapprox.EvalNewtonInvSqrt
// on the ciphertext builder, the arithmetic of n.Evaluate in the same
// order. It consumes n.Depth() levels (checked up front).
func (e *Evaluator) EvaluateNewtonInvSqrt(ct *Ciphertext, n polyapprox.NewtonInvSqrt) (*Ciphertext, error) {
	if err := checkCt("newton inverse sqrt", ct); err != nil {
		return nil, err
	}
	if err := n.Validate(); err != nil {
		return nil, err
	}
	if err := e.needLevels("newton inverse sqrt", ct, n.Depth()); err != nil {
		return nil, err
	}
	if err := e.checkRelinKey("newton inverse sqrt", ct.Level()); err != nil {
		return nil, err
	}
	s := e.begin(ct)
	out, ks, err := e.newtonInvSqrt(ct, n)
	if err != nil {
		return nil, fmt.Errorf("newton inverse sqrt: %w", err)
	}
	e.end(s, OpInvSqrt, out, ks, 0, false, fmt.Sprintf("init degree %d, %d iterations", n.Init.Degree(), n.Iterations))
	return out, nil
}

func (e *Evaluator) newtonInvSqrt(x *rlwe.Ciphertext, n polyapprox.NewtonInvSqrt) (*rlwe.Ciphertext, int, error) {
	b := &ctBuilder{e: e}
	y := polyapprox.EvalNewtonInvSqrt[*rlwe.Ciphertext](b, n, x)
	return y, b.ks, b.err
}

// EvaluateGoldschmidtInv evaluates the plan g (1/x by Goldschmidt's
// iteration) on ct: polyapprox.EvalGoldschmidtInv on the ciphertext
// builder, the arithmetic of g.Evaluate in the same order. It consumes
// g.Depth() levels (checked up front).
func (e *Evaluator) EvaluateGoldschmidtInv(ct *Ciphertext, g polyapprox.GoldschmidtInv) (*Ciphertext, error) {
	if err := checkCt("goldschmidt inverse", ct); err != nil {
		return nil, err
	}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	if err := e.needLevels("goldschmidt inverse", ct, g.Depth()); err != nil {
		return nil, err
	}
	if g.Iterations > 0 {
		if err := e.checkRelinKey("goldschmidt inverse", ct.Level()); err != nil {
			return nil, err
		}
	}
	s := e.begin(ct)
	out, err := e.goldschmidt(ct, g)
	if err != nil {
		return nil, fmt.Errorf("goldschmidt inverse: %w", err)
	}
	e.end(s, OpInverse, out, 2*g.Iterations, 0, false, fmt.Sprintf("%d iterations on [%g, %g]", g.Iterations, g.Interval.A, g.Interval.B))
	return out, nil
}

func (e *Evaluator) goldschmidt(x *rlwe.Ciphertext, g polyapprox.GoldschmidtInv) (*rlwe.Ciphertext, error) {
	b := &ctBuilder{e: e}
	y := polyapprox.EvalGoldschmidtInv[*rlwe.Ciphertext](b, g, x)
	return y, b.err
}

// ctBuilder is the ciphertext polyapprox.Builder: the plans' steps under
// encryption, without recording (the caller records the whole plan). It
// counts key switches and keeps the first error; after an error every
// primitive returns nil.
type ctBuilder struct {
	e   *Evaluator
	ks  int
	err error
}

// fail keeps the first error, naming the primitive.
func (b *ctBuilder) fail(what string, err error) *rlwe.Ciphertext {
	if b.err == nil {
		b.err = fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// Mul multiplies, relinearizes and rescales (one key switch).
func (b *ctBuilder) Mul(x, y *rlwe.Ciphertext) *rlwe.Ciphertext {
	if b.err != nil {
		return nil
	}
	out, err := b.e.rawMulRelinRescale(x, y)
	if err != nil {
		return b.fail("ciphertext product", err)
	}
	b.ks++
	return out
}

// MulConst multiplies by c encoded at Q[level] and rescales: x's scale, one
// level less.
func (b *ctBuilder) MulConst(x *rlwe.Ciphertext, c float64) *rlwe.Ciphertext {
	if b.err != nil {
		return nil
	}
	out, err := b.e.rawMulConstRescale(x, c)
	if err != nil {
		return b.fail(fmt.Sprintf("product by %g", c), err)
	}
	return out
}

// AddConst adds c at x's scale.
func (b *ctBuilder) AddConst(x *rlwe.Ciphertext, c float64) *rlwe.Ciphertext {
	if b.err != nil {
		return nil
	}
	out, err := b.e.addConstNew(x, c)
	if err != nil {
		return b.fail(fmt.Sprintf("addition of %g", c), err)
	}
	return out
}

// ScaleSub is c·x − y: c is encoded at the scale that makes c·x land
// exactly on y's scale after its rescale, the product is dropped to y's
// level, and the subtraction is exact in scale.
func (b *ctBuilder) ScaleSub(x *rlwe.Ciphertext, c float64, y *rlwe.Ciphertext) *rlwe.Ciphertext {
	if b.err != nil {
		return nil
	}
	what := fmt.Sprintf("%g*x - y", c)
	t := y.Scale.Mul(b.e.rescaleFactor(x.Level())).Div(x.Scale)
	d, err := b.e.mulConstAtScale(x, c, t)
	if err != nil {
		return b.fail(what, err)
	}
	if err = b.e.eval.Rescale(d, d); err != nil {
		return b.fail(what, err)
	}
	b.e.eval.DropLevel(d, d.Level()-y.Level())
	d.Scale = y.Scale
	if err = b.e.eval.Sub(d, y, d); err != nil {
		return b.fail(what, err)
	}
	return d
}

// Poly evaluates the Chebyshev polynomial p (see Evaluator.Polynomial).
func (b *ctBuilder) Poly(x *rlwe.Ciphertext, p polyapprox.Chebyshev) *rlwe.Ciphertext {
	if b.err != nil {
		return nil
	}
	out, ks, err := b.e.polynomial(x, p)
	if err != nil {
		return b.fail("chebyshev polynomial", err)
	}
	b.ks += ks
	return out
}
