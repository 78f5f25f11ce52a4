package polyapprox

import (
	"errors"
	"fmt"
	"math"
)

// DepthOptimalDegrees returns the degrees 2^k - 1 for k = 1..maxDepth
// (1, 3, 7, ..., 2^maxDepth - 1): the largest degree for each polynomial
// depth k (a degree-2^k polynomial needs one level more). maxDepth is
// capped so that no degree exceeds MaxDegree; a maxDepth < 1 gives nil.
func DepthOptimalDegrees(maxDepth int) []int {
	var out []int
	for k := 1; k <= maxDepth && (1<<k)-1 <= MaxDegree; k++ {
		out = append(out, (1<<k)-1)
	}
	return out
}

// SmallestDegree returns the smallest degree d in [0, maxDegree] whose
// approximation of f on iv by method (MethodChebyshev or MethodRemez) has a
// measured maximum error (relative if relative is true, else absolute; see
// MeasureChebyshev) of at most target. With MethodRemez and relative = true
// the relative-error minimax is used (MethodRemezRelative is accepted as
// well and forces relative = true). Every degree is tried in order, since the
// interpolation error is not monotone in the degree. It returns an error if
// no degree up to maxDegree meets the target, or for invalid input.
func SmallestDegree(f func(float64) float64, iv Interval, target float64, relative bool, method string, maxDegree int) (int, error) {
	return smallestOf(f, iv, target, relative, method, maxDegree, func(d int) bool { return true })
}

// SmallestDepthOptimalDegree is SmallestDegree restricted to the degrees
// 2^k - 1, k = 1..maxDepth (DepthOptimalDegrees): the cheapest degree in
// levels that meets the target.
func SmallestDepthOptimalDegree(f func(float64) float64, iv Interval, target float64, relative bool, method string, maxDepth int) (int, error) {
	if maxDepth < 1 {
		return 0, fmt.Errorf("smallest depth-optimal degree: max depth %d < 1", maxDepth)
	}
	degs := DepthOptimalDegrees(maxDepth)
	maxDeg := degs[len(degs)-1]
	return smallestOf(f, iv, target, relative, method, maxDeg, func(d int) bool { return d&(d+1) == 0 && d > 0 })
}

func smallestOf(f func(float64) float64, iv Interval, target float64, relative bool, method string, maxDegree int, keep func(int) bool) (int, error) {
	if f == nil {
		return 0, errors.New("smallest degree: nil function")
	}
	if err := iv.Validate(); err != nil {
		return 0, fmt.Errorf("smallest degree: %w", err)
	}
	if !(target > 0) || math.IsInf(target, 0) {
		return 0, fmt.Errorf("smallest degree: target error %g must be positive and finite", target)
	}
	if maxDegree < 0 || maxDegree > MaxDegree {
		return 0, fmt.Errorf("smallest degree: max degree %d outside [0, %d]", maxDegree, MaxDegree)
	}
	switch method {
	case MethodChebyshev:
	case MethodRemez:
		if relative {
			method = MethodRemezRelative
		}
	case MethodRemezRelative:
		relative = true
	default:
		return 0, fmt.Errorf("smallest degree: unknown method %q", method)
	}
	best := math.Inf(1)
	var skipped error
	for d := 0; d <= maxDegree; d++ {
		if !keep(d) {
			continue
		}
		p, extra, err := build(f, iv, d, method)
		if err != nil && d > 0 && method != MethodChebyshev {
			// float64 Remez failed at this degree (input problems already
			// fail at degree 0): try the next one, report if none works
			skipped = fmt.Errorf("degree %d: %w", d, err)
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("smallest degree: degree %d: %w", d, err)
		}
		st, err := MeasureChebyshev(f, p, extra...)
		if err != nil {
			return 0, fmt.Errorf("smallest degree: degree %d: %w", d, err)
		}
		e := st.MaxAbs
		if relative {
			e = st.MaxRel
		}
		if e <= target {
			return d, nil
		}
		best = math.Min(best, e)
	}
	kind := "absolute"
	if relative {
		kind = "relative"
	}
	if skipped != nil {
		return 0, fmt.Errorf("smallest degree: no degree <= %d reaches %s error %g on [%g, %g] by %s (best %.3g; Remez failed at some degrees: %w)", maxDegree, kind, target, iv.A, iv.B, method, best, skipped)
	}
	return 0, fmt.Errorf("smallest degree: no degree <= %d reaches %s error %g on [%g, %g] by %s (best %.3g)", maxDegree, kind, target, iv.A, iv.B, method, best)
}
