package norm

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/model/nn"
)

// varPenalized is a norm with a variance range penalty.
type varPenalized interface {
	nn.Norm
	SetVarPenalty(*nn.RangePenalty)
}

// TestVarPenaltyGradCheck checks the gradient of a norm's loss plus its
// variance range penalty, in exact and poly mode, with rows whose variance
// lies below, inside and above the target.
func TestVarPenaltyGradCheck(t *testing.T) {
	for _, method := range []string{MethodLayerNorm, MethodRMSNorm} {
		for _, mode := range []nn.Mode{nn.ModeExact, nn.ModePoly} {
			n, err := New(method, "n", 6)
			require.NoError(t, err)
			perturb(n.Params(), 3)
			x := randInput(1, 2, 3, 6)
			// rescale the rows to mean(x^2) 0.1 ... 9: two below the
			// target, two inside, two above
			for i, v := range []float64{0.1, 0.3, 0.9, 1.5, 4, 9} {
				row := x.Data[i*6 : (i+1)*6]
				var ms float64
				for _, u := range row {
					ms += u * u / 6
				}
				for j := range row {
					row[j] *= math.Sqrt(v / ms)
				}
			}
			pen, err := nn.NewRangePenalty("n.invsqrt", 0.5, 2, 0.8)
			require.NoError(t, err)
			vp := n.(varPenalized)
			vp.SetVarPenalty(pen)
			if mode == nn.ModePoly {
				s := n.Sites()[0]
				require.NoError(t, s.SetMode(nn.ModeCalibrate))
				n.Forward(x)
				_, err = s.Fit(nn.DefaultFitOptions())
				require.NoError(t, err)
				require.NoError(t, s.SetMode(nn.ModePoly))
			}
			n.Forward(x)
			st := pen.Stats()
			require.Equal(t, 6, st.Total)
			require.Greater(t, st.Outside, 1, "%s: rows must fall outside the target on both sides", method)
			require.Less(t, st.Outside, 6, "%s: some rows must be inside the target", method)
			require.Less(t, st.Min, 0.5)
			require.Greater(t, st.Max, 2.0)
			require.Greater(t, pen.Value(), 0.01)
			for _, r := range nn.CheckModule(n, x, false, pen.Value, nil, 1e-6, 0, 7) {
				require.Less(t, r.AggRelErr, 1e-6, "%s mode %v: %s", method, mode, r.String())
			}
			// detached: no penalty is recorded or differentiated
			vp.SetVarPenalty(nil)
			for _, r := range nn.CheckModule(n, x, false, nil, nil, 1e-6, 0, 7) {
				require.Less(t, r.AggRelErr, 1e-6, r.String())
			}
		}
	}
}

// TestVarPenaltyPullsVarianceIntoTarget trains only the penalty (a learnable
// input scale in front of an RMSNorm) and checks that the variances move to the
// target.
func TestVarPenaltyPullsVarianceIntoTarget(t *testing.T) {
	n := NewRMSNorm("n", 4, DefaultEps)
	pen, err := nn.NewRangePenalty("n.invsqrt", 0.8, 1.25, 1)
	require.NoError(t, err)
	n.SetVarPenalty(pen)
	x := randInput(5, 8, 4)
	scale := 4.0 // mean(x^2) ~ 16: far above the target
	var first float64
	for step := 0; step < 300; step++ {
		xs := x.Clone()
		for i := range xs.Data {
			xs.Data[i] *= scale
		}
		n.Forward(xs)
		if step == 0 {
			first = pen.Value()
		}
		dx := n.Backward(nn.New(xs.Shape...))
		var ds float64
		for i, g := range dx.Data {
			ds += g * x.Data[i]
		}
		scale -= 0.01 * ds
	}
	xs := x.Clone()
	for i := range xs.Data {
		xs.Data[i] *= scale
	}
	n.Forward(xs)
	st := pen.Stats()
	require.GreaterOrEqual(t, st.Min, 0.5, "scale %g: %+v", scale, st)
	require.LessOrEqual(t, st.Max, 2.0, "scale %g: %+v", scale, st)
	// the rows' own spread of mean(x^2) keeps a little of the penalty
	require.Less(t, st.Value, first/100, "first %g", first)
}
