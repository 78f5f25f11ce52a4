package polyapprox

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDenseGridIsMeasureErrorGrid(t *testing.T) {
	iv := Interval{A: -2, B: 3}
	g := DenseGrid(iv)
	require.Len(t, g, UniformGridPoints+chebyshevGridPoints-2)
	require.Equal(t, -2.0, g[0])
	require.Equal(t, 3.0, g[UniformGridPoints-1])
	for _, x := range g {
		require.True(t, iv.Contains(x), x)
	}
	// an approximation that is wrong only at one grid point is caught there
	bad := g[UniformGridPoints+100]
	st, err := MeasureError(func(x float64) float64 { return 0 }, func(x float64) float64 {
		if x == bad {
			return 1
		}
		return 0
	}, iv)
	require.NoError(t, err)
	require.Equal(t, 1.0, st.MaxAbs)
	require.Equal(t, bad, st.ArgMaxAbs)
}
