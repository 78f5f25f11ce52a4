package polyapprox

import (
	"errors"
	"fmt"
	"math"
)

// UniformGridPoints is the number of equispaced points (ends included) of
// the dense grid on which MeasureError measures errors.
const UniformGridPoints = 20001

// chebyshevGridPoints is the number of Chebyshev extrema cos(pi*j/(n-1))
// added to the uniform grid: they cluster at the ends, where polynomial
// errors peak.
const chebyshevGridPoints = 4097

// ErrorStats is the error of an approximation g of f measured on a dense grid.
type ErrorStats struct {
	// MaxAbs is max |g(x) - f(x)|, reached at ArgMaxAbs.
	MaxAbs, ArgMaxAbs float64
	// MaxRel is max |g(x) - f(x)| / |f(x)| over the grid points where
	// f(x) != 0, reached at ArgMaxRel. Points where f(x) is exactly zero are
	// skipped (there the absolute error is the meaningful one); near a zero
	// of f the relative error of any polynomial that is not exact there is
	// large by nature. MaxRel is 0 when f vanishes on every grid point.
	MaxRel, ArgMaxRel float64
	// Points is the number of grid points; RelPoints of them have f(x) != 0.
	Points, RelPoints int
}

// MeasureError measures the error of approx against f on iv, on the dense
// grid: UniformGridPoints equispaced points (both ends included), the 4097
// Chebyshev extrema cos(pi*j/4096) mapped to iv, and the optional extra
// points (those outside iv are ignored). It returns an error if either
// function returns NaN or ±Inf at a grid point, or if iv is invalid.
func MeasureError(f, approx func(float64) float64, iv Interval, extra ...float64) (ErrorStats, error) {
	var st ErrorStats
	if f == nil || approx == nil {
		return st, errors.New("measure error: nil function")
	}
	if err := iv.Validate(); err != nil {
		return st, fmt.Errorf("measure error: %w", err)
	}
	visit := func(x float64) error {
		x = math.Min(math.Max(x, iv.A), iv.B)
		fx := f(x)
		if math.IsNaN(fx) || math.IsInf(fx, 0) {
			return fmt.Errorf("measure error: f(%g) = %g", x, fx)
		}
		gx := approx(x)
		if math.IsNaN(gx) || math.IsInf(gx, 0) {
			return fmt.Errorf("measure error: approximation(%g) = %g", x, gx)
		}
		st.Points++
		e := math.Abs(gx - fx)
		if e > st.MaxAbs || st.Points == 1 {
			st.MaxAbs, st.ArgMaxAbs = math.Max(e, st.MaxAbs), x
		}
		if fx != 0 {
			st.RelPoints++
			r := e / math.Abs(fx)
			if r > st.MaxRel || st.RelPoints == 1 {
				st.MaxRel, st.ArgMaxRel = math.Max(r, st.MaxRel), x
			}
		}
		return nil
	}
	for _, x := range densePoints(iv) {
		if err := visit(x); err != nil {
			return st, err
		}
	}
	for _, x := range extra {
		if !iv.Contains(x) {
			continue
		}
		if err := visit(x); err != nil {
			return st, err
		}
	}
	return st, nil
}

// MeasureChebyshev measures the error of p against f on p.Interval with
// MeasureError, adding the Chebyshev extrema of degree Degree()+1 to the
// grid.
func MeasureChebyshev(f func(float64) float64, p Chebyshev, extra ...float64) (ErrorStats, error) {
	if err := p.Validate(); err != nil {
		return ErrorStats{}, fmt.Errorf("measure error: %w", err)
	}
	d := p.Degree() + 1
	pts := make([]float64, 0, d+1+len(extra))
	for j := 0; j <= d; j++ {
		pts = append(pts, p.Interval.FromUnit(math.Cos(math.Pi*float64(j)/float64(d))))
	}
	pts = append(pts, extra...)
	return MeasureError(f, p.Evaluate, p.Interval, pts...)
}

// densePoints returns the dense grid of MeasureError on iv (without the
// extra points): UniformGridPoints equispaced points, ends included, then
// the interior Chebyshev extrema.
func densePoints(iv Interval) []float64 {
	n := UniformGridPoints - 1
	m := chebyshevGridPoints - 1
	pts := make([]float64, 0, n+m)
	for j := 0; j <= n; j++ {
		x := iv.A + (iv.B-iv.A)*float64(j)/float64(n)
		if j == n {
			x = iv.B
		}
		pts = append(pts, x)
	}
	for j := 1; j < m; j++ { // the ends are already in the uniform grid
		pts = append(pts, iv.FromUnit(math.Cos(math.Pi*float64(j)/float64(m))))
	}
	return pts
}
