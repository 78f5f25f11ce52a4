package nn

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestShiftedPowerAttentionGrad(t *testing.T) {
	for _, p := range []int{1, 2, 3, 4, 5, 6, 8} {
		for _, mode := range []string{ShiftLearned, ShiftCalibrated} {
			for _, causal := range []bool{false, true} {
				for _, scope := range []string{TempNone, TempPosition, TempHead} {
					name := fmt.Sprintf("p=%d %s causal=%v temp=%q", p, mode, causal, scope)
					// eps > 0 and the length norm for half the cases: with eps = 0 the
					// weights do not depend on a row's overall scale (for odd p the
					// normalizer may also cross 0, where eps does not help: the scores
					// below stay well inside x + c > 0 for the default shift)
					eps, ln := 0.05, p%2 == 1
					k, err := NewShiftedPower("a", p, 2, eps, ln, mode, float64(p)+1, 0.1)
					require.NoError(t, err)
					m, err := NewMultiHeadAttentionScoped("attn", 6, 2, 5, causal, k, scope, rng(1))
					require.NoError(t, err)
					if m.Temp != nil {
						m.Temp.Value.FillNormal(rng(4), 0.5)
						for i := range m.Temp.Value.Data {
							m.Temp.Value.Data[i] += 1
						}
					}
					if mode == ShiftLearned {
						k.Shift.Value.Data[1] += 0.7 // distinct heads
					}
					x := randT(2, 1, 2, 4, 6)
					res := CheckModule(m, x, false, nil, nil, 1e-6, 0, 3)
					checkedShift := false
					for _, r := range res {
						require.Less(t, r.AggRelErr, gradTol, "%s: %s", name, r)
						checkedShift = checkedShift || r.Name == k.Shift.Name
					}
					require.Equal(t, mode == ShiftLearned, checkedShift, name)
					if mode == ShiftCalibrated {
						require.Equal(t, 1.0, k.Ready.Value.Data[0], name)
					} else {
						require.Zero(t, k.Ready.Value.Data[0], name)
					}
				}
			}
		}
	}
}

// The learned shift's gradient must be non-trivial (the check above would
// pass on a gradient that is zero both ways).
func TestShiftedPowerShiftGradientNonZero(t *testing.T) {
	k, err := NewShiftedPower("a", 3, 2, 0.05, false, ShiftLearned, 3, 0)
	require.NoError(t, err)
	m, err := NewMultiHeadAttention("attn", 6, 2, 5, true, k, false, rng(1))
	require.NoError(t, err)
	x := randT(2, 1, 2, 4, 6)
	y := m.Forward(x)
	for _, p := range m.Params() {
		p.Grad.Zero()
	}
	m.Backward(randT(5, 1, y.Shape...))
	require.Greater(t, math.Abs(k.Shift.Grad.Data[0])+math.Abs(k.Shift.Grad.Data[1]), 1e-6)
}

func TestShiftedPowerPolyModeGrad(t *testing.T) {
	for _, p := range []int{3, 4} {
		k, err := NewShiftedPower("a", p, 2, 0.05, true, ShiftLearned, float64(p), 0)
		require.NoError(t, err)
		m, err := NewMultiHeadAttention("attn", 6, 2, 5, true, k, true, rng(1))
		require.NoError(t, err)
		x := randT(2, 1, 2, 4, 6)
		toPoly(t, m, m.Sites(), x, DefaultFitOptions())
		require.Equal(t, ModePoly, k.Sites()[0].Mode())
		res := CheckModule(m, x, false, nil, nil, 1e-6, 0, 3)
		for _, r := range res {
			require.Less(t, r.AggRelErr, gradTol, "p=%d poly: %s", p, r)
		}
	}
}

func TestShiftedPowerMaskCalibrationAndNegatives(t *testing.T) {
	const T = 5
	s := randT(7, 2, T, T).Data
	// calibrated: shift = max(init, (1+margin) * -min over the unmasked scores)
	k, err := NewShiftedPower("a", 3, 1, 0, false, ShiftCalibrated, 0.5, 0.25)
	require.NoError(t, err)
	lo := math.Inf(1)
	for i := 0; i < T; i++ {
		for j := 0; j <= i; j++ {
			lo = math.Min(lo, s[i*T+j])
		}
	}
	require.Less(t, lo, -0.5, "the test scores must need more than the init")
	k.prepare(s, 1, 1, T, true)
	require.InDelta(t, 1.25*-lo, k.Shift.Value.Data[0], 1e-15)
	require.Equal(t, 1.0, k.Ready.Value.Data[0])
	a := make([]float64, T*T)
	k.Forward(0, T, true, s, a)
	for i := 0; i < T; i++ {
		var sum float64
		for j := 0; j < T; j++ {
			if j > i {
				require.Zero(t, a[i*T+j], "masked weight (%d, %d)", i, j)
			}
			require.GreaterOrEqual(t, a[i*T+j], 0.0)
			sum += a[i*T+j]
		}
		require.InDelta(t, 1, sum, 1e-12)
	}
	st := k.ShiftStats()
	require.Equal(t, ShiftStats{LastNegative: 0, LastTotal: T * (T + 1) / 2, CumulativeNegative: 0, CumulativeTotal: T * (T + 1) / 2}, st)
	// frozen: a second batch does not move the shift
	s2 := randT(8, 10, T, T).Data
	k.prepare(s2, 1, 1, T, false)
	require.InDelta(t, 1.25*-lo, k.Shift.Value.Data[0], 1e-15)
	// with a small shift and odd p, some weights are negative and counted
	k.Shift.Value.Data[0] = 0.1
	k.Forward(0, T, false, s2, a)
	neg, negW := 0, 0
	for i := range s2 {
		if s2[i]+0.1 < 0 {
			neg++
		}
		if a[i] < 0 {
			negW++
		}
	}
	require.Positive(t, neg)
	st = k.ShiftStats()
	require.Equal(t, int64(neg), st.LastNegative)
	require.Equal(t, int64(T*T), st.LastTotal)
	require.InDelta(t, float64(neg)/float64(T*T), k.NegativeFraction(), 1e-15)
	require.Equal(t, int64(T*(T+1)/2+T*T), st.CumulativeTotal)
	require.Positive(t, negW, "odd p with x + c < 0 gives negative weights")
	k.ResetShiftStats()
	require.Zero(t, k.ShiftStats().CumulativeTotal)

	for _, bad := range []struct {
		p         int
		mode      string
		eps, init float64
	}{{0, ShiftLearned, 0, 1}, {17, ShiftLearned, 0, 1}, {3, "fixed", 0, 1}, {3, ShiftLearned, -1, 1}, {3, ShiftLearned, 0, math.NaN()}} {
		_, err := NewShiftedPower("a", bad.p, 1, bad.eps, false, bad.mode, bad.init, 0)
		require.Error(t, err, "%+v", bad)
	}
}

// With c = p the kernel is (1 + x/p)^p / sum ~ exp(x) / sum: the distance to
// softmax must shrink as p grows and be small at p = 16.
func TestShiftedPowerApproachesSoftmax(t *testing.T) {
	const T = 6
	s := randT(9, 1, T, T).Data
	want := make([]float64, T*T)
	NewSoftmax("a").Forward(0, T, true, s, want)
	dist := func(p int) float64 {
		k, err := NewShiftedPower("a", p, 1, 0, false, ShiftLearned, float64(p), 0)
		require.NoError(t, err)
		a := make([]float64, T*T)
		k.Forward(0, T, true, s, a)
		var d float64
		for i := range a {
			d = math.Max(d, math.Abs(a[i]-want[i]))
		}
		return d
	}
	d4, d8, d16 := dist(4), dist(8), dist(16)
	require.Less(t, d8, d4)
	require.Less(t, d16, d8)
	require.Less(t, d16, 0.02, "p = 16, c = 16 vs softmax")
	require.Greater(t, d4, 1e-3, "p = 4 is visibly not softmax (the comparison can fail)")
}

func TestTemperatureScopes(t *testing.T) {
	k := NewSoftmax("a")
	for _, c := range []struct {
		scope string
		shape []int
	}{{TempNone, nil}, {TempPosition, []int{2, 5}}, {TempHead, []int{2, 1}}} {
		m, err := NewMultiHeadAttentionScoped("attn", 6, 2, 5, false, k, c.scope, rng(1))
		require.NoError(t, err)
		require.Equal(t, c.scope, m.TemperatureScope())
		if c.shape == nil {
			require.Nil(t, m.Temp)
			require.Equal(t, 1.0, m.Temperature(1, 3))
			continue
		}
		require.Equal(t, c.shape, m.Temp.Value.Shape)
		for i := range m.Temp.Value.Data {
			m.Temp.Value.Data[i] = float64(i + 2)
		}
		for h := 0; h < 2; h++ {
			for p := 0; p < 5; p++ {
				want := float64(h*5 + p + 2)
				if c.scope == TempHead {
					want = float64(h + 2)
				}
				require.Equal(t, want, m.Temperature(h, p))
			}
		}
	}
	_, err := NewMultiHeadAttentionScoped("attn", 6, 2, 5, false, k, "token", rng(1))
	require.ErrorContains(t, err, "temperature scope")
	// the boolean constructor is the per-position scope
	m, err := NewMultiHeadAttention("attn", 6, 2, 5, false, k, true, rng(1))
	require.NoError(t, err)
	require.Equal(t, TempPosition, m.TemperatureScope())
	// a per-head temperature gives the same function as a per-position one
	// with equal columns
	mh, err := NewMultiHeadAttentionScoped("attn", 6, 2, 5, true, k, TempHead, rng(1))
	require.NoError(t, err)
	mp, err := NewMultiHeadAttentionScoped("attn", 6, 2, 5, true, k, TempPosition, rng(1))
	require.NoError(t, err)
	mh.Temp.Value.Data[0], mh.Temp.Value.Data[1] = 0.5, 1.7
	for p := 0; p < 5; p++ {
		mp.Temp.Value.Data[p], mp.Temp.Value.Data[5+p] = 0.5, 1.7
	}
	x := randT(2, 1, 2, 4, 6)
	require.InDeltaSlice(t, mp.Forward(x).Data, mh.Forward(x).Data, 1e-14)
}

func TestPenalizedShiftedPowerGrad(t *testing.T) {
	for _, p := range []int{3, 4} {
		for _, causal := range []bool{false, true} {
			for _, mode := range []Mode{ModeExact, ModePoly} {
				// a small shift gives negative shifted scores; in poly mode the
				// normalizers must stay positive for the reciprocal fit
				shift, std := 1.0, 1.5
				if mode == ModePoly {
					shift, std = 2, 1
				}
				k, err := NewShiftedPower("a", p, 2, 0.05, true, ShiftLearned, shift, 0)
				require.NoError(t, err)
				norm, err := NewRangePenalty("a.shifted.recip", 0.3, 2, 2)
				require.NoError(t, err)
				shifted, err := NewRangePenalty("a.shifted.scores", 0, 2.5, 3)
				require.NoError(t, err)
				pk, err := PenalizeShiftedKernel(k, norm, shifted)
				require.NoError(t, err)
				m, err := NewMultiHeadAttention("attn", 6, 2, 5, causal, pk, false, rng(1))
				require.NoError(t, err)
				require.Equal(t, k.Sites(), m.Sites())
				x := randT(2, std, 2, 4, 6)
				if mode == ModePoly {
					toPoly(t, m, m.Sites(), x, DefaultFitOptions())
				}
				m.Forward(x)
				per := 4 * 4
				if causal {
					per = 4 * 5 / 2
				}
				sn, ss := norm.Stats(), shifted.Stats()
				require.Equal(t, 2*2*4, sn.Total)
				require.Equal(t, 2*2*per, ss.Total)
				require.Positive(t, sn.Outside, "normalizers outside the target")
				require.Less(t, ss.Min, 0.0, "shifted scores below 0")
				require.Positive(t, k.ShiftStats().LastNegative)
				require.Greater(t, norm.Value(), 0.0)
				require.Greater(t, shifted.Value(), 0.0)
				total := func() float64 { return norm.Value() + shifted.Value() }
				res := CheckModule(m, x, false, total, nil, 1e-6, 0, 3)
				for _, r := range res {
					require.Less(t, r.AggRelErr, gradTol, "p=%d causal=%v mode=%v: %s", p, causal, mode, r)
				}
			}
		}
	}
	// a single penalty, and the rejections
	k, err := NewShiftedPower("a", 3, 2, 0, false, ShiftLearned, 3, 0)
	require.NoError(t, err)
	shifted, err := NewRangePenalty("s", 0, 10, 1)
	require.NoError(t, err)
	_, err = PenalizeShiftedKernel(k, nil, shifted)
	require.NoError(t, err)
	got, ok := AsShiftedPower(k)
	require.True(t, ok)
	require.Same(t, k, got)
	pk, err := PenalizeShiftedKernel(k, shifted, nil)
	require.NoError(t, err)
	got, ok = AsShiftedPower(pk)
	require.True(t, ok)
	require.Same(t, k, got)
	_, ok = AsShiftedPower(NewSoftmax("a"))
	require.False(t, ok)
	_, err = PenalizeShiftedKernel(k, nil, nil)
	require.Error(t, err)
	_, err = PenalizeShiftedKernel(NewSoftmax("a"), nil, shifted)
	require.ErrorContains(t, err, "not power-shifted")
}

// TestEntropyWithNegativeWeights: an odd power with a shift below the
// scores' minimum gives negative attention weights; the attention entropy
// stays finite, in [0, log T] per row (positive part), and the entropy
// regularizer's gradient is exact.
func TestEntropyWithNegativeWeights(t *testing.T) {
	k, err := NewShiftedPower("a", 3, 2, 1e-2, false, ShiftLearned, 0.2, 0)
	require.NoError(t, err)
	m, err := NewMultiHeadAttention("attn", 6, 2, 5, true, k, false, rng(1))
	require.NoError(t, err)
	x := randT(2, 1, 2, 5, 6)
	m.Forward(x)
	var neg int
	for _, a := range m.Weights() {
		if a < 0 {
			neg++
		}
	}
	require.Positive(t, neg, "some weights must be negative for this test")
	for h, e := range m.Entropy() {
		require.False(t, math.IsNaN(e) || math.IsInf(e, 0), "head %d", h)
		require.GreaterOrEqual(t, e, 0.0, "head %d", h)
		require.LessOrEqual(t, e, math.Log(5)+1e-12, "head %d", h)
	}
	reg := NewEntropyRegularizer("ent", 1, 2, 0.05, 1, 0.5)
	copy(reg.Theta.Value.Data, []float64{0.1, 0.9})
	extra := func() float64 {
		l, _ := reg.Loss([][]float64{m.Entropy()}, 5)
		return l
	}
	hook := func() {
		_, de := reg.Loss([][]float64{m.Entropy()}, 5)
		m.SetEntropyGrad(de[0])
	}
	requireGrads(t, CheckModule(m, x, false, extra, hook, 1e-6, 0, 13))
}

// MaxTerm is the largest (x + c)^P of the rows evaluated in calibration
// mode only (the unmasked entries of a causal row), until ResetMaxTerm.
func TestShiftedPowerMaxTerm(t *testing.T) {
	k, err := NewShiftedPower("a", 4, 1, 0.01, false, ShiftLearned, 1, 0)
	require.NoError(t, err)
	s := []float64{1, 9, 2, 0.5} // t = 2, causal: row 0 is [1], row 1 is [2, 0.5]
	a := make([]float64, 4)
	k.Forward(0, 2, true, s, a)
	require.Zero(t, k.MaxTerm(), "exact mode records nothing")
	require.NoError(t, k.Sites()[0].SetMode(ModeCalibrate))
	k.Forward(0, 2, true, s, a)
	require.Equal(t, 81.0, k.MaxTerm(), "(2 + 1)^4; the masked 9 is not a term")
	k.ResetMaxTerm()
	require.Zero(t, k.MaxTerm())
}
