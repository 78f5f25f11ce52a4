package polyapprox

// DenseGrid returns the dense grid on which MeasureError measures errors on
// iv, without extra points: UniformGridPoints equispaced points (ends
// included) followed by the interior Chebyshev extrema cos(pi*j/4096) mapped
// to iv. Callers that evaluate an approximation incrementally (for example
// one Newton iteration at a time) use it to measure on exactly the points
// MeasureError uses. iv is not validated.
func DenseGrid(iv Interval) []float64 { return densePoints(iv) }
