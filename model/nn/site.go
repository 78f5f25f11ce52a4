package nn

import (
	"fmt"
	"math"
	"sync"

	"github.com/polyformer/polyformer/polyapprox"
)

// Mode selects how every Site evaluates its non-linearity.
type Mode int

const (
	// ModeExact evaluates the exact function (training).
	ModeExact Mode = iota
	// ModeCalibrate evaluates the exact function and records the range of its inputs.
	ModeCalibrate
	// ModePoly evaluates the installed polynomial or plan (the float64 twin of
	// the encrypted circuit) and counts inputs outside its interval.
	ModePoly
)

// Site function kinds. Exp, recip and invsqrt are polyapprox's function
// names (polyapprox.LookupFunction).
const (
	FnExp     = "exp"     // e^x (softmax numerators)
	FnRecip   = "recip"   // 1/x (softmax and Power-Softmax row normalizers)
	FnInvSqrt = "invsqrt" // 1/sqrt(x) (norms)
	FnGELU    = "gelu"    // exact GELU x*Phi(x)
	FnReLU    = "relu"    // max(x, 0)
)

// Exact returns the exact scalar function of a kind.
func Exact(kind string) (func(float64) float64, error) {
	switch kind {
	case FnExp, FnRecip, FnInvSqrt:
		return polyapprox.LookupFunction(kind)
	case FnGELU:
		return gelu, nil
	case FnReLU:
		return func(x float64) float64 { return math.Max(x, 0) }, nil
	}
	return nil, fmt.Errorf("unknown non-linearity kind %q", kind)
}

func gelu(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }

// PolySpec is the polynomial form of one site: the site, its kind, the
// approximation (polyapprox.Spec: exactly what the encrypted circuit
// evaluates) and the calibration it was fitted from. Its JSON is that of
// the checkpoints' config.json ("site", "kind", the spec's fields,
// "observed", "max_err").
type PolySpec struct {
	Site string `json:"site"`
	Kind string `json:"kind"`
	polyapprox.Spec
	// Observed is the calibrated input range before widening.
	Observed [2]float64 `json:"observed"`
	// MaxErr is the error the fit measured for this form on Interval when
	// it was chosen against a target (FitOptions.Tol > 0), in the metric of
	// that target: the absolute error for exp and GELU, the absolute error
	// divided by max(|A|, |B|) for ReLU, the relative error for 1/x and
	// 1/sqrt(x). It is 0 (and omitted) for fits without a target.
	MaxErr float64 `json:"max_err,omitempty"`
}

// Evaluator returns the float64 twin of the spec and its multiplicative depth.
func (s PolySpec) Evaluator() (func(float64) float64, int, error) {
	f, d, err := s.Twin()
	if err != nil {
		return nil, 0, fmt.Errorf("site %s: %w", s.Site, err)
	}
	return f, d, nil
}

// FitOptions control how a calibrated range becomes a polynomial.
type FitOptions struct {
	// Margin widens the observed range [lo, hi] by Margin*(hi-lo) on each side
	// (for 1/x and 1/sqrt(x), the lower end is instead divided by 1+Margin
	// so it stays positive).
	Margin float64 `json:"margin"`
	// Degree of Chebyshev approximations (exp, GELU, ReLU); 2^k-1 is
	// depth-optimal. With a target (Tol > 0) it is instead the largest
	// degree the search may use, for these sites and for the initial guess
	// of 1/sqrt(x).
	Degree int `json:"degree"`
	// InitDegree of the Chebyshev initial guess of Newton inverse square
	// root. Unused with a target (Tol > 0): the degree is then searched.
	InitDegree int `json:"init_degree"`
	// UpperFactor multiplies the upper end of the 1/x and 1/sqrt(x) intervals
	// (after the margin; values < 1 mean 1). The Goldschmidt plan diverges
	// just above A+B, so headroom above the calibrated maximum is worth its
	// price of about one iteration per doubling.
	UpperFactor float64 `json:"upper_factor"`
	// RelTol is the target relative error of the 1/x and 1/sqrt(x) plans on
	// their interval; the iteration count is the smallest reaching it (at most
	// 40, else fitting fails: the range is too wide for an encrypted plan).
	RelTol float64 `json:"rel_tol"`
	// Tol > 0 turns on least-depth fitting against error targets; 0 (the
	// default) keeps the fixed Degree and InitDegree. With a target:
	//   - exp and GELU get the Chebyshev interpolant of the smallest depth
	//     whose maximum absolute error on the interval, measured on the
	//     dense grid of polyapprox.MeasureChebyshev, is at most Tol. The
	//     degrees tried are the depth-optimal 2^k-1 below Degree, then
	//     Degree itself; fitting fails if none meets the target.
	//   - ReLU is the same with the error divided by max(|A|, |B|) of the
	//     interval, compared with ReLUTol (or Tol when ReLUTol is 0): max(x, 0)
	//     is positively homogeneous, so a polynomial's absolute error grows
	//     linearly with the interval (because of the kink at 0 the degree-d
	//     interpolant's error is about 0.5*max(|A|, |B|)/d on a symmetric
	//     interval: scaled 7.8e-3 at degree 63, 3.9e-3 at 127), and only
	//     this scaled error is a target that a fixed degree can meet on
	//     every interval.
	//   - 1/sqrt(x) gets the Newton plan (Chebyshev-interpolant initial
	//     guess of degree 1..Degree, iteration count 0..40) of least total
	//     depth (NewtonInvSqrt.Depth) whose relative error
	//     on the interval (dense grid plus a geometric grid) is at most
	//     RelTol; ties go to fewer ciphertext products, then the lower
	//     degree.
	//   - 1/x keeps the fewest Goldschmidt iterations meeting RelTol (that
	//     is already least depth).
	// Every spec then records its measured error in PolySpec.MaxErr.
	Tol float64 `json:"tol,omitempty"`
	// ReLUTol is the target of ReLU sites in their scaled metric (see Tol);
	// 0 means Tol. It needs Tol > 0.
	ReLUTol float64 `json:"relu_tol,omitempty"`
}

// DefaultFitOptions are the defaults used by calibration. Degree 63 (depth 6,
// plus one level for the change of basis): on a norm-free MNIST ViT whose
// GELU inputs spanned [-45, 45], degree 31 lost 2.4 accuracy points in poly
// mode, 63 lost 0.3 and 127 lost none.
func DefaultFitOptions() FitOptions {
	return FitOptions{Margin: 0.1, Degree: 63, InitDegree: 7, RelTol: 1e-3, UpperFactor: 2}
}

// Site is one scalar non-linearity of the model (e.g. the GELU of block 2, or
// the reciprocal of the Power-Softmax row sums of block 0). Layers evaluate
// it through Apply, which honours the mode.
type Site struct {
	Name string
	Kind string

	exact  func(float64) float64
	dexact func(float64) float64
	mode   Mode
	dpoly  func(float64) float64

	mu       sync.Mutex
	min, max float64
	seen     bool
	poly     func(float64) float64
	spec     *PolySpec
	outside  int64
	total    int64
	worstOut float64
	// poly-mode input extremes and non-finite outputs (see PolyInputs)
	polyLo, polyHi float64
	polySeen       bool
	nonFinite      int64
}

// NewSite returns a site in exact mode. Kind must be one of the Fn constants.
func NewSite(name, kind string) *Site {
	f, err := Exact(kind)
	if err != nil {
		panic(fmt.Sprintf("nn: site %s: %v", name, err)) // programming error: kinds are constants
	}
	d, _ := exactDeriv(kind)
	return &Site{Name: name, Kind: kind, exact: f, dexact: d}
}

// SetMode switches the site. ModePoly requires an installed spec.
func (s *Site) SetMode(m Mode) error {
	if m == ModePoly && s.poly == nil {
		return fmt.Errorf("site %s: no polynomial installed (calibrate first)", s.Name)
	}
	s.mode = m
	return nil
}

// Mode returns the current mode.
func (s *Site) Mode() Mode { return s.mode }

// Apply sets dst[i] = f(src[i]) with f the exact function or the polynomial,
// recording ranges in ModeCalibrate and out-of-interval counts in ModePoly.
// It is safe for concurrent use.
func (s *Site) Apply(dst, src []float64) {
	switch s.mode {
	case ModePoly:
		var out, bad int64
		worst := 0.0
		lo, hi := math.Inf(1), math.Inf(-1)
		for i, x := range src {
			if x < s.spec.Interval[0] || x > s.spec.Interval[1] || math.IsNaN(x) {
				out++
				d := math.Max(s.spec.Interval[0]-x, x-s.spec.Interval[1])
				if d > worst {
					worst = d
				}
			}
			if x < lo {
				lo = x
			}
			if x > hi {
				hi = x
			}
			y := s.poly(x)
			if math.IsNaN(y) || math.IsInf(y, 0) {
				bad++
			}
			dst[i] = y
		}
		s.mu.Lock()
		if lo <= hi { // some input was not NaN
			if !s.polySeen || lo < s.polyLo {
				s.polyLo = lo
			}
			if !s.polySeen || hi > s.polyHi {
				s.polyHi = hi
			}
			s.polySeen = true
		}
		s.outside += out
		s.nonFinite += bad
		s.total += int64(len(src))
		if worst > s.worstOut {
			s.worstOut = worst
		}
		s.mu.Unlock()
	case ModeCalibrate:
		lo, hi := math.Inf(1), math.Inf(-1)
		for i, x := range src {
			if x < lo {
				lo = x
			}
			if x > hi {
				hi = x
			}
			dst[i] = s.exact(x)
		}
		if len(src) == 0 {
			return
		}
		s.mu.Lock()
		if !s.seen || lo < s.min {
			s.min = lo
		}
		if !s.seen || hi > s.max {
			s.max = hi
		}
		s.seen = true
		s.mu.Unlock()
	default:
		for i, x := range src {
			dst[i] = s.exact(x)
		}
	}
}

// Eval1 evaluates a single value (see Apply).
func (s *Site) Eval1(x float64) float64 {
	if s.mode == ModeExact {
		return s.exact(x)
	}
	var d [1]float64
	s.Apply(d[:], []float64{x})
	return d[0]
}

// Range returns the calibrated input range and whether any input was seen.
func (s *Site) Range() (lo, hi float64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.min, s.max, s.seen
}

// ResetStats clears the calibration range and the out-of-interval counters.
func (s *Site) ResetStats() {
	s.mu.Lock()
	s.seen, s.min, s.max = false, 0, 0
	s.outside, s.total, s.worstOut = 0, 0, 0
	s.polyLo, s.polyHi, s.polySeen, s.nonFinite = 0, 0, false, 0
	s.mu.Unlock()
}

// Outside returns how many poly-mode inputs fell outside the interval, out of
// how many, and the largest distance to the interval.
func (s *Site) Outside() (outside, total int64, worst float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outside, s.total, s.worstOut
}

// PolyInputs returns the smallest and largest poly-mode input and the
// number of poly-mode outputs that were NaN or infinite (a plan evaluated
// far outside its interval overflows: Goldschmidt's 1/x above about A+B)
// since the last ResetStats; lo = hi = 0 when nothing was evaluated. A NaN
// input leaves the extremes as they were (it counts as outside).
func (s *Site) PolyInputs() (lo, hi float64, nonFinite int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.polyLo, s.polyHi, s.nonFinite
}

// Spec returns the installed polynomial spec, or nil.
func (s *Site) Spec() *PolySpec { return s.spec }

// Install sets the polynomial form from a spec.
func (s *Site) Install(spec PolySpec) error {
	if spec.Kind != s.Kind {
		return fmt.Errorf("site %s: spec is for %q, site computes %q", s.Name, spec.Kind, s.Kind)
	}
	f, _, err := spec.Evaluator()
	if err != nil {
		return err
	}
	d, err := spec.Derivative()
	if err != nil {
		return err
	}
	sp := spec
	s.spec, s.poly, s.dpoly = &sp, f, d
	return nil
}

// Peek evaluates the site at x in its current mode without recording
// anything (used by backward passes to recompute forward values).
func (s *Site) Peek(x float64) float64 {
	if s.mode == ModePoly {
		return s.poly(x)
	}
	return s.exact(x)
}

// Deriv returns the derivative at x of what the site computes in its current
// mode: the exact function's derivative, or in poly mode the exact
// derivative of the polynomial or plan (so gradients of poly-mode training
// are the true gradients of the poly-mode model).
func (s *Site) Deriv(x float64) float64 {
	if s.mode == ModePoly {
		return s.dpoly(x)
	}
	return s.dexact(x)
}

func exactDeriv(kind string) (func(float64) float64, error) {
	switch kind {
	case FnExp:
		return math.Exp, nil
	case FnRecip:
		return func(x float64) float64 { return -1 / (x * x) }, nil
	case FnInvSqrt:
		return func(x float64) float64 { return -0.5 / (x * math.Sqrt(x)) }, nil
	case FnGELU:
		return geluDeriv, nil
	case FnReLU:
		return func(x float64) float64 {
			if x > 0 {
				return 1
			}
			return 0
		}, nil
	}
	return nil, fmt.Errorf("unknown non-linearity kind %q", kind)
}

// Derivative returns the exact derivative of the spec's float64 twin
// (polyapprox.Spec.Derivative: forward-mode differentiation of the same
// arithmetic).
func (s PolySpec) Derivative() (func(float64) float64, error) {
	d, err := s.Spec.Derivative()
	if err != nil {
		return nil, fmt.Errorf("site %s: %w", s.Site, err)
	}
	return d, nil
}

// Fit builds and installs the polynomial form from the calibrated range.
func (s *Site) Fit(o FitOptions) (PolySpec, error) {
	lo, hi, ok := s.Range()
	if !ok {
		return PolySpec{}, fmt.Errorf("site %s: never evaluated during calibration", s.Name)
	}
	spec, err := FitSpec(s.Name, s.Kind, lo, hi, o)
	if err != nil {
		return PolySpec{}, err
	}
	if err := s.Install(spec); err != nil {
		return PolySpec{}, err
	}
	return spec, nil
}

// FitSpec builds the polynomial form of a kind for observed inputs in [lo, hi].
func FitSpec(name, kind string, lo, hi float64, o FitOptions) (PolySpec, error) {
	if math.IsNaN(lo) || math.IsNaN(hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return PolySpec{}, fmt.Errorf("site %s: calibrated range [%g, %g] is not finite", name, lo, hi)
	}
	spec := PolySpec{Site: name, Kind: kind, Observed: [2]float64{lo, hi}}
	width := hi - lo
	if width <= 0 {
		width = math.Max(math.Abs(hi), 1) * 1e-3
	}
	a, b := lo-o.Margin*width, hi+o.Margin*width
	if _, err := Exact(kind); err != nil {
		return PolySpec{}, err
	}
	switch kind {
	case FnRecip, FnInvSqrt:
		if lo <= 0 {
			return PolySpec{}, fmt.Errorf("site %s: calibrated range [%g, %g] of %s is not positive", name, lo, hi, kind)
		}
		a = lo / (1 + o.Margin)
		if o.UpperFactor > 1 {
			b *= o.UpperFactor
		}
	}
	spec.Interval = [2]float64{a, b}
	return RefitSpec(spec, o)
}

// RefitSpec fits the polynomial form of spec.Kind on spec.Interval as
// given (no margin, no upper factor): Chebyshev coefficients of degree
// o.Degree, or the smallest iteration count reaching o.RelTol; with a
// target (o.Tol > 0) the least-depth form meeting it (see FitOptions.Tol).
// Site and Observed are kept.
func RefitSpec(spec PolySpec, o FitOptions) (PolySpec, error) {
	name, kind := spec.Site, spec.Kind
	a, b := spec.Interval[0], spec.Interval[1]
	if !(a < b) || math.IsInf(a, 0) || math.IsInf(b, 0) {
		return PolySpec{}, fmt.Errorf("site %s: interval [%g, %g] is empty or not finite", name, a, b)
	}
	exact, err := Exact(kind)
	if err != nil {
		return PolySpec{}, err
	}
	if (kind == FnRecip || kind == FnInvSqrt) && a <= 0 {
		return PolySpec{}, fmt.Errorf("site %s: interval [%g, %g] of %s is not positive", name, a, b, kind)
	}
	if err := o.validateTargets(); err != nil {
		return PolySpec{}, fmt.Errorf("site %s: %w", name, err)
	}
	iv := polyapprox.Interval{A: a, B: b}
	spec.Spec, spec.MaxErr = polyapprox.Spec{Interval: spec.Interval}, 0
	target := o.Tol > 0
	switch kind {
	case FnExp, FnGELU, FnReLU:
		if target {
			p, e, err := leastDepthChebyshev(name, kind, exact, iv, o)
			if err != nil {
				return PolySpec{}, err
			}
			spec.Method, spec.Degree, spec.Coeffs, spec.MaxErr = polyapprox.PlanChebyshev, p.Degree(), p.Coeffs, e
			break
		}
		p, err := polyapprox.Interpolate(exact, iv, o.Degree)
		if err != nil {
			return PolySpec{}, fmt.Errorf("site %s: %w", name, err)
		}
		spec.Method, spec.Degree, spec.Coeffs = polyapprox.PlanChebyshev, o.Degree, p.Coeffs
	case FnRecip:
		spec.Method = polyapprox.PlanGoldschmidt
		k, e, ok := polyapprox.FewestIterations(func(k int) func(float64) float64 {
			return polyapprox.GoldschmidtInv{Interval: iv, Iterations: k}.Evaluate
		}, exact, iv, o.RelTol)
		spec.Iterations = k
		if target {
			spec.MaxErr = e
		}
		if !ok {
			return PolySpec{}, fmt.Errorf("site %s: 1/x on [%g, %g] (ratio %.3g): Goldschmidt relative error %.3g > %g after %d iterations; the calibrated range is too wide",
				name, a, b, b/a, e, o.RelTol, polyapprox.MaxIterations)
		}
	case FnInvSqrt:
		if target {
			if !(o.RelTol > 0) || math.IsInf(o.RelTol, 0) {
				return PolySpec{}, fmt.Errorf("site %s: rel_tol %g must be positive and finite", name, o.RelTol)
			}
			n, e, err := polyapprox.LeastDepthNewton(iv, o.Degree, o.RelTol)
			if err != nil {
				return PolySpec{}, fmt.Errorf("site %s: %w; the calibrated range is too wide", name, err)
			}
			spec.Method, spec.Degree, spec.Coeffs, spec.Iterations, spec.MaxErr = polyapprox.PlanNewton, n.Init.Degree(), n.Init.Coeffs, n.Iterations, e
			break
		}
		init, err := polyapprox.Interpolate(exact, iv, o.InitDegree)
		if err != nil {
			return PolySpec{}, fmt.Errorf("site %s: %w", name, err)
		}
		spec.Method, spec.Degree, spec.Coeffs = polyapprox.PlanNewton, o.InitDegree, init.Coeffs
		k, e, ok := polyapprox.FewestIterations(func(k int) func(float64) float64 {
			return polyapprox.NewtonInvSqrt{Init: init, Iterations: k}.Evaluate
		}, exact, iv, o.RelTol)
		spec.Iterations = k
		if !ok {
			return PolySpec{}, fmt.Errorf("site %s: 1/sqrt(x) on [%g, %g] (ratio %.3g): Newton relative error %.3g > %g after %d iterations; the calibrated range is too wide",
				name, a, b, b/a, e, o.RelTol, polyapprox.MaxIterations)
		}
	}
	return spec, nil
}

// CollectSites returns the sites of every module that has any.
func CollectSites(mods ...any) []*Site {
	var out []*Site
	for _, m := range mods {
		if h, ok := m.(SiteHolder); ok {
			out = append(out, h.Sites()...)
		}
	}
	return out
}

// validateTargets checks the error targets of o (all zero is valid: no target).
func (o FitOptions) validateTargets() error {
	for _, t := range []struct {
		name string
		v    float64
	}{{"tol", o.Tol}, {"relu_tol", o.ReLUTol}} {
		if !(t.v >= 0) || math.IsInf(t.v, 0) {
			return fmt.Errorf("fit option %s = %g: must be finite and >= 0", t.name, t.v)
		}
	}
	if o.ReLUTol > 0 && o.Tol == 0 {
		return fmt.Errorf("fit option relu_tol = %g needs tol > 0 (targets are off without it)", o.ReLUTol)
	}
	if o.Tol > 0 && o.Degree < 1 {
		return fmt.Errorf("fit option degree = %d: the degree cap of target fitting must be >= 1", o.Degree)
	}
	return nil
}

// chebyshevTarget returns the target of a Chebyshev site kind under o.
func chebyshevTarget(kind string, o FitOptions) float64 {
	if kind == FnReLU && o.ReLUTol > 0 {
		return o.ReLUTol
	}
	return o.Tol
}

// ChebyshevFitError is the error of p against the exact function of a
// Chebyshev site kind in the metric of FitOptions.Tol: the maximum absolute
// error on p.Interval measured by polyapprox.MeasureChebyshev, divided by
// max(|A|, |B|) for ReLU.
func ChebyshevFitError(kind string, p polyapprox.Chebyshev) (float64, error) {
	exact, err := Exact(kind)
	if err != nil {
		return 0, err
	}
	st, err := polyapprox.MeasureChebyshev(exact, p)
	if err != nil {
		return 0, err
	}
	e := st.MaxAbs
	if kind == FnReLU {
		e /= math.Max(math.Abs(p.Interval.A), math.Abs(p.Interval.B))
	}
	return e, nil
}

// leastDepthChebyshev returns the interpolant of the smallest depth meeting
// the target of kind on iv (see FitOptions.Tol) and its error
// (polyapprox.LeastDepthChebyshev in the metric ChebyshevFitError).
func leastDepthChebyshev(name, kind string, exact func(float64) float64, iv polyapprox.Interval, o FitOptions) (polyapprox.Chebyshev, float64, error) {
	p, e, err := polyapprox.LeastDepthChebyshev(exact, iv, o.Degree, chebyshevTarget(kind, o), func(p polyapprox.Chebyshev) (float64, error) {
		return ChebyshevFitError(kind, p)
	})
	if err != nil {
		metric := "absolute error"
		if kind == FnReLU {
			metric = "absolute error / max(|a|, |b|)"
		}
		return polyapprox.Chebyshev{}, 0, fmt.Errorf("site %s: %s on [%g, %g] (%s): %w; raise the degree cap, loosen the target or narrow the range",
			name, kind, iv.A, iv.B, metric, err)
	}
	return p, e, nil
}
