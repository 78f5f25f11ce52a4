package polyapprox

import (
	"fmt"
	"math"
)

// This file holds the least-depth fitting of specs against an error
// target (the search beside degree.go's SmallestDegree, in the metrics the
// model's calibration uses).

// TargetDegrees returns the Chebyshev degrees target fitting tries, in
// increasing depth, under the cap: 1, 3, 7, ..., the depth-optimal degrees
// 2^k-1 below the cap, then the cap itself.
func TargetDegrees(limit int) []int {
	var out []int
	for d := 1; d < limit; d = 2*d + 1 {
		out = append(out, d)
	}
	if limit >= 1 {
		out = append(out, limit)
	}
	return out
}

// LeastDepthChebyshev returns the interpolant of f on iv of the smallest
// depth, among TargetDegrees(maxDegree), whose error metric(p) is at most
// tol, and that error. It fails, naming the best error reached, when none
// meets tol.
func LeastDepthChebyshev(f func(float64) float64, iv Interval, maxDegree int, tol float64, metric func(Chebyshev) (float64, error)) (Chebyshev, float64, error) {
	best := math.Inf(1)
	for _, d := range TargetDegrees(maxDegree) {
		p, err := Interpolate(f, iv, d)
		if err != nil {
			return Chebyshev{}, 0, err
		}
		e, err := metric(p)
		if err != nil {
			return Chebyshev{}, 0, fmt.Errorf("degree %d: %w", d, err)
		}
		if e <= tol {
			return p, e, nil
		}
		best = math.Min(best, e)
	}
	return Chebyshev{}, 0, fmt.Errorf("no Chebyshev interpolant of degree <= %d meets the target %g (best %.3g)", maxDegree, tol, best)
}

// GridRelError is the largest relative error of f against g on a linear
// grid of 401 points of iv plus, for iv.A > 0, a geometric one; +Inf if
// any is NaN.
func GridRelError(f, g func(float64) float64, iv Interval) float64 {
	worst := 0.0
	const n = 400
	for i := 0; i <= n; i++ {
		t := float64(i) / n
		xs := []float64{iv.A + t*(iv.B-iv.A)}
		if iv.A > 0 {
			xs = append(xs, iv.A*math.Pow(iv.B/iv.A, t))
		}
		for _, x := range xs {
			e := math.Abs(f(x)-g(x)) / math.Max(math.Abs(g(x)), 1e-300)
			if e > worst || math.IsNaN(e) {
				worst = e
				if math.IsNaN(e) {
					return math.Inf(1)
				}
			}
		}
	}
	return worst
}

// FewestIterations returns the smallest iteration count k <= MaxIterations
// whose plan plan(k) meets the relative tolerance against exact on iv
// (GridRelError), its error, and whether one did (else k = MaxIterations
// and its error).
func FewestIterations(plan func(k int) func(float64) float64, exact func(float64) float64, iv Interval, tol float64) (int, float64, bool) {
	e := math.Inf(1)
	for k := 0; k <= MaxIterations; k++ {
		if e = GridRelError(plan(k), exact, iv); e <= tol {
			return k, e, true
		}
	}
	return MaxIterations, e, false
}

// newtonGrid is the grid of the Newton relative error: DenseGrid plus
// newtonGeometricPoints geometric points, which resolve the left end of
// wide positive intervals.
func newtonGrid(iv Interval) []float64 {
	const newtonGeometricPoints = 2001
	xs := DenseGrid(iv)
	for i := 0; i < newtonGeometricPoints; i++ {
		t := float64(i) / (newtonGeometricPoints - 1)
		xs = append(xs, math.Min(math.Max(iv.A*math.Pow(iv.B/iv.A, t), iv.A), iv.B))
	}
	return xs
}

// NewtonFitError is the largest relative error of the Newton plan n against
// 1/sqrt(x) on its interval, measured on the grid LeastDepthNewton uses
// (DenseGrid plus 2001 geometric points); +Inf if the plan returns NaN or
// ±Inf anywhere.
func NewtonFitError(n NewtonInvSqrt) float64 {
	worst := 0.0
	for _, x := range newtonGrid(n.Init.Interval) {
		e := math.Abs(n.Evaluate(x)*math.Sqrt(x) - 1)
		if math.IsNaN(e) || math.IsInf(e, 0) {
			return math.Inf(1)
		}
		worst = math.Max(worst, e)
	}
	return worst
}

// LeastDepthNewton returns the Newton plan for 1/sqrt(x) on iv (0 < A) of
// least total depth (ties: fewer ciphertext products, then the lower
// degree) whose NewtonFitError is at most tol, with the Chebyshev
// interpolant of degree in [1, maxDegree] as initial guess and at most
// MaxIterations iterations, and its error. Each degree's initial guess is
// evaluated once and iterated in place with NewtonIterations; the chosen
// plan is measured again with NewtonFitError.
func LeastDepthNewton(iv Interval, maxDegree int, tol float64) (NewtonInvSqrt, float64, error) {
	if !(tol > 0) || math.IsInf(tol, 0) {
		return NewtonInvSqrt{}, 0, fmt.Errorf("relative error target %g must be positive and finite", tol)
	}
	if !(iv.A > 0) {
		return NewtonInvSqrt{}, 0, fmt.Errorf("1/sqrt(x) on [%g, %g]: interval must be positive", iv.A, iv.B)
	}
	xs := newtonGrid(iv)
	sq := make([]float64, len(xs))
	for i, x := range xs {
		sq[i] = math.Sqrt(x)
	}
	ys := make([]float64, len(xs))
	var best NewtonInvSqrt
	found, bestErr := false, math.Inf(1)
	for d := 1; d <= maxDegree; d++ {
		init, err := Interpolate(invSqrt, iv, d)
		if err != nil {
			return NewtonInvSqrt{}, 0, err
		}
		if found && (NewtonInvSqrt{Init: init}).Depth() > best.Depth() {
			break // the depth only grows with the degree
		}
		for i, x := range xs {
			ys[i] = init.Evaluate(x)
		}
		for k := 0; k <= MaxIterations; k++ {
			n := NewtonInvSqrt{Init: init, Iterations: k}
			if found && (n.Depth() > best.Depth() || n.Depth() == best.Depth() && n.CtMults() >= best.CtMults()) {
				break
			}
			e := 0.0
			for i := range ys {
				r := math.Abs(ys[i]*sq[i] - 1)
				if math.IsNaN(r) || math.IsInf(r, 0) {
					e = math.Inf(1)
					break
				}
				e = math.Max(e, r)
			}
			if e <= tol {
				best, found = n, true
				break
			}
			bestErr = math.Min(bestErr, e)
			if math.IsInf(e, 1) {
				break // diverged
			}
			for i, x := range xs {
				ys[i] = NewtonIterations[float64](Float{}, Float{}.MulConst(x, 0.5), ys[i], 1)
			}
		}
	}
	if !found {
		return NewtonInvSqrt{}, 0, fmt.Errorf("1/sqrt(x) on [%g, %g] (ratio %.3g): no Newton plan with initial degree <= %d and <= %d iterations meets relative error %g (best %.3g)",
			iv.A, iv.B, iv.B/iv.A, maxDegree, MaxIterations, tol, bestErr)
	}
	e := NewtonFitError(best)
	if e > tol {
		return NewtonInvSqrt{}, 0, fmt.Errorf("1/sqrt(x) on [%g, %g]: Newton plan (degree %d, %d iterations) re-measured at relative error %.3g > %g", iv.A, iv.B, best.Init.Degree(), best.Iterations, e, tol)
	}
	return best, e, nil
}
