package polyapprox

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMeasureError(t *testing.T) {
	iv := Interval{-2, 3}
	f := func(x float64) float64 { return x }
	// error bump 1e-3*x^2, largest at x = 3
	st, err := MeasureError(f, func(x float64) float64 { return x + 1e-3*x*x }, iv)
	require.NoError(t, err)
	require.InDelta(t, 9e-3, st.MaxAbs, 1e-15)
	require.Equal(t, 3.0, st.ArgMaxAbs)
	require.Equal(t, UniformGridPoints+4095, st.Points)
	// x = 0 is a grid point of [-2, 3] (j = 8000): skipped for relative error
	require.Equal(t, st.Points-1, st.RelPoints)
	// relative error 1e-3*|x| peaks at x = 3 too
	require.InDelta(t, 3e-3, st.MaxRel, 1e-15)
	// extra points inside count, outside are ignored
	st2, err := MeasureError(f, f, iv, 0.123, 10, -10)
	require.NoError(t, err)
	require.Equal(t, st.Points+1, st2.Points)
	require.Zero(t, st2.MaxAbs)
	// f identically zero: no relative point
	st3, err := MeasureError(func(float64) float64 { return 0 }, func(float64) float64 { return 1e-9 }, iv)
	require.NoError(t, err)
	require.Zero(t, st3.RelPoints)
	require.Zero(t, st3.MaxRel)
	require.Equal(t, 1e-9, st3.MaxAbs)
}

func TestMeasureErrorInvalid(t *testing.T) {
	id := func(x float64) float64 { return x }
	_, err := MeasureError(nil, id, Interval{0, 1})
	require.Error(t, err)
	_, err = MeasureError(id, nil, Interval{0, 1})
	require.Error(t, err)
	_, err = MeasureError(id, id, Interval{1, 0})
	require.Error(t, err)
	_, err = MeasureError(recip, id, Interval{0, 1}) // f(0) = +Inf
	require.ErrorContains(t, err, "f(0)")
	_, err = MeasureError(id, func(float64) float64 { return math.NaN() }, Interval{0, 1})
	require.ErrorContains(t, err, "approximation")
	_, err = MeasureChebyshev(id, Chebyshev{Interval: Interval{0, 1}})
	require.Error(t, err)
}
