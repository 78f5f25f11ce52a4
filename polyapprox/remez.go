package polyapprox

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// MaxDegree is the largest polynomial degree this package builds (Remez,
// Approximate, degree searches). Float64 Remez is practical up to about 63;
// 127 is the hard cap.
const MaxDegree = 127

// ErrRemezNotConverged is wrapped by the error Remez returns when the
// exchange iterations did not level the error within the iteration budget.
var ErrRemezNotConverged = errors.New("remez: did not converge")

// ErrRemezAlternation is wrapped by the error Remez returns when the error
// curve has fewer than degree+2 sign-alternating extrema above the rounding
// level, so no exchange is possible (typically the degree is too high for
// float64 on this function).
var ErrRemezAlternation = errors.New("remez: alternation lost")

const (
	remezMaxIter    = 80   // exchange iterations before giving up
	remezTolerance  = 1e-6 // (max - min)/max of the reference errors at convergence
	remezRefineIter = 48   // golden-section steps per extremum
	// remezSoftNoise: a lost alternation or an exhausted iteration budget is
	// accepted (RoundingLimited) when the best error is within this factor
	// of the rounding level.
	remezSoftNoise = 100
)

// RemezResult describes the outcome of Remez. Errors are weighted errors:
// p(x) - f(x) for absolute, (p(x) - f(x)) / |f(x)| for relative minimax.
type RemezResult struct {
	// Relative is true for relative-error minimax.
	Relative bool
	// Iterations is the number of linear solves performed.
	Iterations int
	// LevelledError is |E| of the last linear system: the error the
	// polynomial attains, with alternating signs, on the reference points.
	LevelledError float64
	// MaxError is the largest weighted error found on the search grid
	// (Chebyshev-spaced, at least 4096 points) after local refinement.
	MaxError float64
	// MinExtremum is the smallest |weighted error| over Extrema; at
	// convergence (MaxError - MinExtremum) <= 1e-6 * MaxError, unless the
	// error is at the float64 rounding level (see RoundingLimited).
	MinExtremum float64
	// Extrema are the degree+2 points of the final alternation, ascending, in
	// the original variable x; ExtremaErrors are the weighted errors there
	// (alternating in sign).
	Extrema, ExtremaErrors []float64
	// RoundingLimited is true when the iteration stopped because the error
	// reached the float64 rounding level rho = 2 (degree+1) 2^-52 max|f|
	// (times max|f|/min|f| for relative error): the error is below rho, or
	// the extrema are levelled to within rho, or the alternation was lost or
	// the budget exhausted with an error below 100 rho (for example when f
	// is itself a polynomial of degree <= degree). The polynomial is then as
	// good as float64 allows, but equioscillation may not hold; Extrema may
	// then hold fewer than degree+2 points.
	RoundingLimited bool
}

// Remez returns the minimax polynomial of the given degree for f on iv,
// in the Chebyshev basis of iv (the convention of Chebyshev), computed by
// the classic single-point exchange algorithm in float64:
//
//  1. start from the degree+2 Chebyshev extrema -cos(pi*i/(degree+1));
//  2. solve the (degree+2)x(degree+2) system sum_k c_k T_k(u_i) +
//     (-1)^i E / w(u_i) = f(u_i) (gonum LU), with w = 1 (absolute) or
//     w = 1/|f| (relative);
//  3. scan the weighted error on a Chebyshev-spaced grid, take one extremum
//     per sign run, refine each by golden-section search, drop the smallest
//     surplus extrema while keeping the alternation, and exchange;
//  4. stop when the extrema are levelled: (max - min)/max <= 1e-6, or when
//     the error is at the float64 rounding level.
//
// With relative = true, f must not vanish on iv. Degree must be in
// [0, MaxDegree]. Remez returns an error (never panics) for invalid input,
// a non-finite f, a singular system or a lost alternation; if the budget of
// 80 iterations is exhausted it returns the best polynomial found together
// with an error wrapping ErrRemezNotConverged.
func Remez(f func(float64) float64, iv Interval, degree int, relative bool) (Chebyshev, RemezResult, error) {
	return remez(f, iv, degree, relative, remezMaxIter)
}

// remez is Remez with an iteration budget per exchange run.
func remez(f func(float64) float64, iv Interval, degree int, relative bool, maxIter int) (Chebyshev, RemezResult, error) {
	res := RemezResult{Relative: relative}
	if f == nil {
		return Chebyshev{}, res, errors.New("remez: nil function")
	}
	if err := iv.Validate(); err != nil {
		return Chebyshev{}, res, fmt.Errorf("remez: %w", err)
	}
	if degree < 0 || degree > MaxDegree {
		return Chebyshev{}, res, fmt.Errorf("remez: degree %d outside [0, %d]", degree, MaxDegree)
	}
	r := &remezState{f: f, iv: iv, d: degree, n: degree + 2, relative: relative, maxIter: maxIter}
	if err := r.initGrid(); err != nil {
		return Chebyshev{}, res, err
	}

	// Chebyshev extrema: the classic start.
	ref := make([]float64, r.n)
	for i := range ref {
		ref[i] = -math.Cos(math.Pi * float64(i) / float64(degree+1))
	}
	ref[0], ref[r.n-1] = -1, 1
	coeffs, err := r.run(ref, &res, true)
	if errors.Is(err, errDegenerate) || errors.Is(err, ErrRemezAlternation) {
		// A symmetric reference is degenerate (E = 0) for odd or even f (or
		// a constant plus such an f) on a symmetric interval; restart from
		// asymmetric points: the Chebyshev extrema with their angles
		// compressed by 1 - 1/(4(d+1)), so the first stays at -1 and the
		// last moves inside.
		shrink := 1 - 1/(4*float64(degree+1))
		for i := range ref {
			ref[i] = -math.Cos(math.Pi * shrink * float64(i) / float64(degree+1))
		}
		ref[0] = -1
		coeffs, err = r.run(ref, &res, false)
	}
	if err != nil {
		if errors.Is(err, ErrRemezNotConverged) && coeffs != nil {
			return Chebyshev{Interval: iv, Coeffs: coeffs}, res, fmt.Errorf("remez: degree %d on [%g, %g]: %w", degree, iv.A, iv.B, err)
		}
		return Chebyshev{}, res, fmt.Errorf("remez: degree %d on [%g, %g]: %w", degree, iv.A, iv.B, err)
	}
	return Chebyshev{Interval: iv, Coeffs: coeffs}, res, nil
}

// errDegenerate reports a reference on which the levelled error vanishes
// although the polynomial is not accurate: the exchange cannot progress.
var errDegenerate = errors.New("degenerate reference (levelled error 0)")

// run performs the exchange iterations from the reference ref (with
// checkDegenerate, a first levelled error below 1e-3 of the maximum error
// aborts with errDegenerate so that the caller restarts). It returns
// the coefficients at convergence, or the best coefficients so far with an
// error wrapping ErrRemezNotConverged, or nil and another error.
func (r *remezState) run(ref []float64, res *RemezResult, checkDegenerate bool) ([]float64, error) {
	var best []float64
	bestErr := math.Inf(1)
	ref = append([]float64(nil), ref...)
	for it := 1; it <= r.maxIter; it++ {
		res.Iterations++
		coeffs, levelled, err := r.solve(ref)
		if err != nil {
			return nil, fmt.Errorf("iteration %d: %w", it, err)
		}
		res.LevelledError = math.Abs(levelled)
		ext, vals, maxErr, err := r.extrema(coeffs)
		if err != nil {
			return nil, fmt.Errorf("iteration %d: %w", it, err)
		}
		if maxErr < bestErr {
			bestErr, best = maxErr, coeffs
		}
		res.MaxError = maxErr
		if maxErr <= r.noise {
			// Error at rounding level: nothing left to level in float64.
			res.RoundingLimited = true
			r.fill(res, ext, vals)
			return coeffs, nil
		}
		if checkDegenerate && it == 1 && res.LevelledError <= 1e-3*maxErr {
			return nil, fmt.Errorf("iteration %d: %w", it, errDegenerate)
		}
		if len(ext) < r.n && bestErr <= remezSoftNoise*r.noise {
			// near the rounding level the error curve is noisy: accept
			res.RoundingLimited = true
			res.MaxError = bestErr
			return best, nil
		}
		if len(ext) < r.n {
			return nil, fmt.Errorf("iteration %d: only %d sign-alternating extrema of the error, need %d (max error %.3g): %w", it, len(ext), r.n, maxErr, ErrRemezAlternation)
		}
		ext, vals = selectAlternation(ext, vals, r.n)
		minAbs := math.Inf(1)
		for _, v := range vals {
			minAbs = math.Min(minAbs, math.Abs(v))
		}
		spread := maxErr - minAbs
		if spread <= remezTolerance*maxErr || spread <= r.noise {
			res.RoundingLimited = spread > remezTolerance*maxErr
			r.fill(res, ext, vals)
			return coeffs, nil
		}
		ref = ext
	}
	res.MaxError = bestErr
	if bestErr <= remezSoftNoise*r.noise {
		res.RoundingLimited = true
		return best, nil
	}
	return best, fmt.Errorf("%d iterations (max error %.3g, levelled %.3g): %w",
		r.maxIter, bestErr, res.LevelledError, ErrRemezNotConverged)
}

type remezState struct {
	f        func(float64) float64
	iv       Interval
	d, n     int
	relative bool
	maxIter  int
	grid     []float64 // unit variable, ascending, ends included
	g        []float64 // f on the grid
	noise    float64   // weighted error considered float64 rounding
}

// target evaluates f at the unit point u (the mapped x is clamped to iv).
func (r *remezState) target(u float64) float64 {
	x := r.iv.FromUnit(u)
	x = math.Min(math.Max(x, r.iv.A), r.iv.B)
	return r.f(x)
}

func (r *remezState) initGrid() error {
	m := 64 * r.n
	if m < 4096 {
		m = 4096
	}
	r.grid = make([]float64, m)
	r.g = make([]float64, m)
	scale := 0.0
	for j := 0; j < m; j++ {
		u := -math.Cos(math.Pi * float64(j) / float64(m-1))
		if j == 0 {
			u = -1
		} else if j == m-1 {
			u = 1
		}
		r.grid[j] = u
		v := r.target(u)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("remez: f(%g) = %g on [%g, %g]", r.iv.FromUnit(u), v, r.iv.A, r.iv.B)
		}
		if r.relative && v == 0 {
			return fmt.Errorf("remez: relative error undefined: f(%g) = 0 on [%g, %g]", r.iv.FromUnit(u), r.iv.A, r.iv.B)
		}
		if r.relative && j > 0 && (v > 0) != (r.g[j-1] > 0) {
			return fmt.Errorf("remez: relative error undefined: f changes sign (vanishes) between %g and %g", r.iv.FromUnit(r.grid[j-1]), r.iv.FromUnit(u))
		}
		r.g[j] = v
		scale = math.Max(scale, math.Abs(v))
	}
	if r.relative {
		scale = 1
	}
	// Clenshaw and the linear solve lose a few ulps per degree.
	r.noise = 2 * float64(r.d+1) * 0x1p-52 * scale
	if r.relative {
		// relative errors are measured against |f|, which may be far below
		// the coefficient scale; use the dynamic range of f on the grid.
		lo, hi := math.Inf(1), 0.0
		for _, v := range r.g {
			lo = math.Min(lo, math.Abs(v))
			hi = math.Max(hi, math.Abs(v))
		}
		r.noise *= hi / lo
	}
	return nil
}

// weighted returns the weighted error of the Chebyshev coefficients at u.
func (r *remezState) weighted(coeffs []float64, u float64) float64 {
	return r.weightedWith(coeffs, u, r.target(u))
}

func (r *remezState) weightedWith(coeffs []float64, u, fu float64) float64 {
	e := clenshaw(coeffs, u) - fu
	if r.relative {
		return e / math.Abs(fu)
	}
	return e
}

// solve sets up and solves the levelled-error system on the reference.
func (r *remezState) solve(ref []float64) ([]float64, float64, error) {
	n := r.n
	a := mat.NewDense(n, n, nil)
	b := mat.NewVecDense(n, nil)
	for i, u := range ref {
		fu := r.target(u)
		if math.IsNaN(fu) || math.IsInf(fu, 0) {
			return nil, 0, fmt.Errorf("f(%g) = %g", r.iv.FromUnit(u), fu)
		}
		// T_k(u) by the three-term recurrence.
		t0, t1 := 1.0, u
		for k := 0; k <= r.d; k++ {
			switch k {
			case 0:
				a.Set(i, 0, 1)
			case 1:
				a.Set(i, 1, u)
			default:
				t0, t1 = t1, 2*u*t1-t0
				a.Set(i, k, t1)
			}
		}
		sign := 1.0
		if i%2 == 1 {
			sign = -1
		}
		w := 1.0
		if r.relative {
			w = math.Abs(fu)
		}
		a.Set(i, n-1, sign*w)
		b.SetVec(i, fu)
	}
	var x mat.VecDense
	if err := x.SolveVec(a, b); err != nil {
		return nil, 0, fmt.Errorf("levelled-error system: %w", err)
	}
	coeffs := make([]float64, r.d+1)
	for k := range coeffs {
		coeffs[k] = x.AtVec(k)
		if math.IsNaN(coeffs[k]) || math.IsInf(coeffs[k], 0) {
			return nil, 0, fmt.Errorf("levelled-error system: coefficient %d is %g", k, coeffs[k])
		}
	}
	return coeffs, x.AtVec(n - 1), nil
}

// extrema scans the grid for the extremum of each sign run of the weighted
// error, refines it, and returns the points (ascending), their errors and
// the largest |error| seen.
func (r *remezState) extrema(coeffs []float64) ([]float64, []float64, float64, error) {
	m := len(r.grid)
	e := make([]float64, m)
	for j, u := range r.grid {
		e[j] = r.weightedWith(coeffs, u, r.g[j])
	}
	var pts, vals []float64
	maxErr := 0.0
	j := 0
	for j < m {
		// skip exact zeros between runs
		if e[j] == 0 {
			j++
			continue
		}
		s := math.Copysign(1, e[j])
		bestJ := j
		for j < m && e[j]*s >= 0 {
			if e[j]*s > e[bestJ]*s {
				bestJ = j
			}
			j++
		}
		u, v := r.refine(coeffs, e, bestJ, s)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, nil, 0, fmt.Errorf("error is %g at x = %g", v, r.iv.FromUnit(u))
		}
		pts = append(pts, u)
		vals = append(vals, v)
		maxErr = math.Max(maxErr, math.Abs(v))
	}
	return pts, vals, maxErr, nil
}

// refine maximizes s*error around grid index j by golden-section search on
// [grid[j-1], grid[j+1]] and keeps the best of the grid and refined values.
func (r *remezState) refine(coeffs, e []float64, j int, s float64) (float64, float64) {
	bestU, bestV := r.grid[j], e[j]
	lo, hi := r.grid[max(j-1, 0)], r.grid[min(j+1, len(r.grid)-1)]
	if lo == hi {
		return bestU, bestV
	}
	const gr = 0.6180339887498949
	x1 := hi - gr*(hi-lo)
	x2 := lo + gr*(hi-lo)
	f1 := s * r.weighted(coeffs, x1)
	f2 := s * r.weighted(coeffs, x2)
	for it := 0; it < remezRefineIter; it++ {
		if f1 > f2 {
			hi, x2, f2 = x2, x1, f1
			x1 = hi - gr*(hi-lo)
			f1 = s * r.weighted(coeffs, x1)
		} else {
			lo, x1, f1 = x1, x2, f2
			x2 = lo + gr*(hi-lo)
			f2 = s * r.weighted(coeffs, x2)
		}
	}
	u, v := x1, f1
	if f2 > f1 {
		u, v = x2, f2
	}
	if v > s*bestV {
		return u, s * v
	}
	return bestU, bestV
}

// selectAlternation reduces an alternating list of extrema to exactly n
// points, still alternating: a surplus extremum at an end is dropped alone,
// an interior one together with its smaller neighbour; the smallest
// extremum goes first, so the global maximum is kept.
func selectAlternation(pts, vals []float64, n int) ([]float64, []float64) {
	pts = append([]float64(nil), pts...)
	vals = append([]float64(nil), vals...)
	for len(pts) > n {
		k := len(pts)
		if k-n == 1 {
			// one surplus: only an end can go without breaking alternation
			if math.Abs(vals[0]) <= math.Abs(vals[k-1]) {
				pts, vals = pts[1:], vals[1:]
			} else {
				pts, vals = pts[:k-1], vals[:k-1]
			}
			continue
		}
		m := 0
		for i := range vals {
			if math.Abs(vals[i]) < math.Abs(vals[m]) {
				m = i
			}
		}
		switch {
		case m == 0:
			pts, vals = pts[1:], vals[1:]
		case m == k-1:
			pts, vals = pts[:k-1], vals[:k-1]
		default:
			drop := m + 1
			if math.Abs(vals[m-1]) < math.Abs(vals[m+1]) {
				drop = m - 1
			}
			lo := min(m, drop)
			pts = append(pts[:lo], pts[lo+2:]...)
			vals = append(vals[:lo], vals[lo+2:]...)
		}
	}
	return pts, vals
}

func (r *remezState) fill(res *RemezResult, ext, vals []float64) {
	if len(ext) > r.n {
		ext, vals = selectAlternation(ext, vals, r.n)
	}
	res.Extrema = make([]float64, len(ext))
	res.ExtremaErrors = append([]float64(nil), vals...)
	res.MinExtremum = math.Inf(1)
	for i, u := range ext {
		x := r.iv.FromUnit(u)
		res.Extrema[i] = math.Min(math.Max(x, r.iv.A), r.iv.B)
		res.MinExtremum = math.Min(res.MinExtremum, math.Abs(vals[i]))
	}
	if len(ext) == 0 {
		res.MinExtremum = 0
	}
}
