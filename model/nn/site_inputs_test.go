package nn

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// A Goldschmidt reciprocal evaluated well above its interval overflows: the
// site counts the non-finite outputs and records the input extremes, NaN
// inputs included as outside but not as extremes; ResetStats clears both.
func TestSitePolyInputsAndNonFinite(t *testing.T) {
	r := NewSite("r", FnRecip)
	spec, err := FitSpec("r", FnRecip, 1, 1000, DefaultFitOptions())
	require.NoError(t, err)
	require.NoError(t, r.Install(spec))
	require.NoError(t, r.SetMode(ModePoly))
	lo, hi, bad := r.PolyInputs()
	require.Zero(t, lo)
	require.Zero(t, hi)
	require.Zero(t, bad)

	out := make([]float64, 3)
	r.Apply(out, []float64{5, 50, math.NaN()})
	r.Apply(out[:2], []float64{2, 100 * spec.Interval[1]})
	require.True(t, math.IsInf(out[1], 0) || math.IsNaN(out[1]), "1/x at 100 B: %g", out[1])
	lo, hi, bad = r.PolyInputs()
	require.Equal(t, 2.0, lo)
	require.Equal(t, 100*spec.Interval[1], hi)
	require.Equal(t, int64(2), bad) // the NaN input and the overflow
	n, total, _ := r.Outside()
	require.Equal(t, int64(2), n)
	require.Equal(t, int64(5), total)

	r.ResetStats()
	lo, hi, bad = r.PolyInputs()
	require.Zero(t, lo)
	require.Zero(t, hi)
	require.Zero(t, bad)
}
