package nn

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
)

// Shift modes of ShiftedPower.
const (
	// ShiftLearned starts the shifts at the init value and trains them.
	ShiftLearned = "learned"
	// ShiftCalibrated sets the shifts on the first batch seen and freezes them.
	ShiftCalibrated = "calibrated"
)

// ShiftedPower is sign-preserving ("shifted") power attention:
//
//	a_ij = (x_ij + c_h)^P / (Eps + N_i),  N_i = sum_k (x_ik + c_h)^P
//
// over the row's unmasked entries (N_i is the mean instead of the sum when
// LengthNorm is set), where x are the (temperature-scaled) scores the kernel
// receives and c_h is a per-head shift. P is any integer in [1, 16]: with an
// odd P the weights keep the sign of x + c_h, so large negative scores are
// not turned into large weights as x^P with an even P would do.
//
// Because (x + c)^P is proportional to (1 + x/c)^P ~ exp(P x / c), the shift
// c = P makes the kernel approximate softmax (the larger P, the closer); the
// default init is therefore c_h = P.
//
// The shift is either learned (Mode ShiftLearned: c_h starts at Init and is
// trained) or calibrated (Mode ShiftCalibrated): on the first batch seen
// (Ready = 0), per head,
//
//	c_h = max(Init, (1 + Margin) * max(0, -min x))
//
// with the minimum over every unmasked score of the head in the batch, so
// that x + c_h >= 0 on that batch (and c_h is at least the softmax-like
// init); then Ready = 1 and c_h is frozen (a constant of the circuit, like
// PowerFixed's G).
//
// The reciprocal 1/(Eps + N_i) goes through a site of kind FnRecip exactly
// like PowerSoftmax's (calibration, poly mode and the Goldschmidt plan work
// the same); Backward differentiates through the reciprocal as the site
// computes it and accumulates dL/dc_h.
//
// With an odd P, x + c_h < 0 gives a negative weight; the kernel counts the
// unmasked inputs with x + c_h < 0 (see ShiftStats) so training runs can
// report them, and PenalizedShiftedPower can penalize them.
type ShiftedPower struct {
	P          int
	Eps        float64
	LengthNorm bool
	Mode       string
	Init       float64
	Margin     float64
	Shift      *Param // [heads] shifts c_h
	Ready      *Param // [1]; 1 once a calibrated shift has been set from data

	recip *Site
	// statistics of the unmasked shifted scores (see ShiftStats)
	negLast, totLast, negCum, totCum atomic.Int64
	// largest term (x + c)^P seen in calibration mode (see MaxTerm)
	termMu  sync.Mutex
	termMax float64
}

// ShiftStats counts the unmasked shifted scores x + c_h a ShiftedPower
// received: Negative of Total had x + c_h < 0 (a negative weight for odd P,
// a sign flip for even P). Last is the last forward batch (since the last
// batch preparation of MultiHeadAttention), Cumulative everything since
// construction or the last ResetShiftStats.
type ShiftStats struct {
	LastNegative       int64 `json:"last_negative"`
	LastTotal          int64 `json:"last_total"`
	CumulativeNegative int64 `json:"cumulative_negative"`
	CumulativeTotal    int64 `json:"cumulative_total"`
}

// NegativeFraction returns LastNegative / LastTotal (0 when nothing was seen).
func (s ShiftStats) NegativeFraction() float64 {
	if s.LastTotal == 0 {
		return 0
	}
	return float64(s.LastNegative) / float64(s.LastTotal)
}

// NewShiftedPower validates the options and returns the kernel for the
// given number of heads: p in [1, 16], eps >= 0, mode ShiftLearned or
// ShiftCalibrated, a finite init (the learned start value, or the calibrated
// lower bound; the usual choice is p) and margin >= 0.
func NewShiftedPower(prefix string, p, heads int, eps float64, lengthNorm bool, mode string, init, margin float64) (*ShiftedPower, error) {
	if p < 1 || p > 16 {
		return nil, fmt.Errorf("shifted power attention: p = %d must be in [1, 16]", p)
	}
	if heads <= 0 {
		return nil, fmt.Errorf("shifted power attention: %d heads", heads)
	}
	if !(eps >= 0) || math.IsInf(eps, 0) {
		return nil, fmt.Errorf("shifted power attention: eps %g must be finite and >= 0", eps)
	}
	if mode != ShiftLearned && mode != ShiftCalibrated {
		return nil, fmt.Errorf("shifted power attention: shift mode %q (want %s or %s)", mode, ShiftLearned, ShiftCalibrated)
	}
	if math.IsNaN(init) || math.IsInf(init, 0) || !(margin >= 0) || math.IsInf(margin, 0) {
		return nil, fmt.Errorf("shifted power attention: shift init %g must be finite and margin %g finite and >= 0", init, margin)
	}
	k := &ShiftedPower{P: p, Eps: eps, LengthNorm: lengthNorm, Mode: mode, Init: init, Margin: margin,
		Shift: NewParam(prefix+".shifted.shift", heads), Ready: NewParam(prefix+".shifted.ready", 1),
		recip: NewSite(prefix+".shifted.recip", FnRecip)}
	for h := range k.Shift.Value.Data {
		k.Shift.Value.Data[h] = init
	}
	k.Shift.NoDecay, k.Shift.Frozen = true, mode != ShiftLearned
	k.Ready.NoDecay, k.Ready.Frozen = true, true
	return k, nil
}

// Name returns "power-shifted".
func (k *ShiftedPower) Name() string { return "power-shifted" }

// Learned reports whether the shifts are trained.
func (k *ShiftedPower) Learned() bool { return k.Mode == ShiftLearned }

// ShiftStats returns the counts of negative shifted scores.
func (k *ShiftedPower) ShiftStats() ShiftStats {
	return ShiftStats{LastNegative: k.negLast.Load(), LastTotal: k.totLast.Load(),
		CumulativeNegative: k.negCum.Load(), CumulativeTotal: k.totCum.Load()}
}

// NegativeFraction is ShiftStats().NegativeFraction(): the share of the last
// batch's unmasked shifted scores with x + c_h < 0.
func (k *ShiftedPower) NegativeFraction() float64 { return k.ShiftStats().NegativeFraction() }

// ResetShiftStats zeroes the cumulative counts.
func (k *ShiftedPower) ResetShiftStats() {
	k.negCum.Store(0)
	k.totCum.Store(0)
}

// prepare resets the last-batch counts and calibrates the shifts on the
// first batch when the mode is calibrated.
func (k *ShiftedPower) prepare(scores []float64, b, heads, t int, causal bool) {
	k.negLast.Store(0)
	k.totLast.Store(0)
	if k.Mode != ShiftCalibrated || k.Ready.Value.Data[0] != 0 {
		return
	}
	for h := 0; h < heads && h < k.Shift.Value.Len(); h++ {
		lo := math.Inf(1)
		for bi := 0; bi < b; bi++ {
			s := scores[(bi*heads+h)*t*t:]
			for i := 0; i < t; i++ {
				for _, v := range s[i*t : i*t+rowLen(i, t, causal)] {
					lo = math.Min(lo, v)
				}
			}
		}
		c := k.Init
		if need := (1 + k.Margin) * math.Max(0, -lo); need > c && !math.IsInf(need, 0) {
			c = need
		}
		k.Shift.Value.Data[h] = c
	}
	k.Ready.Value.Data[0] = 1
}

// row returns y_j = (x_j + c)^P into y, the normalizer z = Eps + norm * sum y
// and norm (1 or 1/n), and the number of negative shifted scores.
func (k *ShiftedPower) row(xs []float64, c float64, y []float64) (z, norm float64, neg int) {
	var sum float64
	for j, v := range xs {
		u := v + c
		if u < 0 {
			neg++
		}
		y[j] = ipow(u, k.P)
		sum += y[j]
	}
	norm = 1
	if k.LengthNorm {
		norm = 1 / float64(len(xs))
	}
	return k.Eps + sum*norm, norm, neg
}

// MaxTerm returns the largest term (x + c_h)^P of any row normalizer
// evaluated while the reciprocal site was in calibration mode since the last
// ResetMaxTerm (0 before any). A row of n terms has a normalizer of at most
// Eps + n * MaxTerm (times 1/n with LengthNorm) whatever its composition; a
// row of one repeated token reaches it.
func (k *ShiftedPower) MaxTerm() float64 {
	k.termMu.Lock()
	defer k.termMu.Unlock()
	return k.termMax
}

// ResetMaxTerm clears MaxTerm.
func (k *ShiftedPower) ResetMaxTerm() {
	k.termMu.Lock()
	k.termMax = 0
	k.termMu.Unlock()
}

// Forward computes the weights row by row.
func (k *ShiftedPower) Forward(h, t int, causal bool, s, a []float64) {
	c := k.Shift.Value.Data[h]
	var neg, tot int
	calibrating := k.recip.Mode() == ModeCalibrate
	term := 0.0
	for i := 0; i < t; i++ {
		n := rowLen(i, t, causal)
		out := a[i*t : (i+1)*t]
		z, _, ng := k.row(s[i*t:i*t+n], c, out[:n])
		neg, tot = neg+ng, tot+n
		if calibrating {
			for _, y := range out[:n] {
				term = math.Max(term, y)
			}
		}
		normalizeRow(out, n, z, k.recip)
	}
	if calibrating {
		k.termMu.Lock()
		k.termMax = math.Max(k.termMax, term)
		k.termMu.Unlock()
	}
	k.negLast.Add(int64(neg))
	k.totLast.Add(int64(tot))
	k.negCum.Add(int64(neg))
	k.totCum.Add(int64(tot))
}

// Backward computes dL/ds, differentiating the reciprocal as the site
// computes it, and adds dL/dc_h into pgrad[0][h].
func (k *ShiftedPower) Backward(h, t int, causal bool, s, _, da, ds []float64, pgrad [][]float64) {
	c := k.Shift.Value.Data[h]
	y := make([]float64, t)
	var dc float64
	for i := 0; i < t; i++ {
		n := rowLen(i, t, causal)
		row := s[i*t : i*t+n]
		out := ds[i*t : (i+1)*t]
		for j := range out {
			out[j] = 0
		}
		z, norm, _ := k.row(row, c, y[:n])
		if z == 0 {
			continue
		}
		// a_j = y_j R(z): dy_j = da_j R(z) + dz * norm with dz = R'(z) sum_j da_j y_j.
		r, rp := k.recip.Peek(z), k.recip.Deriv(z)
		var sy float64
		for j := 0; j < n; j++ {
			sy += da[i*t+j] * y[j]
		}
		dz := rp * sy
		for j, v := range row {
			dy := da[i*t+j]*r + dz*norm
			dx := dy * float64(k.P) * ipow(v+c, k.P-1)
			out[j] = dx
			dc += dx
		}
	}
	pgrad[0][h] += dc
}

// Params returns the shifts and the calibration flag.
func (k *ShiftedPower) Params() []*Param { return []*Param{k.Shift, k.Ready} }

// Sites returns the row-normalizer reciprocal site.
func (k *ShiftedPower) Sites() []*Site { return []*Site{k.recip} }

// AsShiftedPower returns the ShiftedPower behind k (k itself, or the kernel
// a PenalizedShiftedPower wraps), e.g. to read its ShiftStats in training.
func AsShiftedPower(k AttentionKernel) (*ShiftedPower, bool) {
	switch v := k.(type) {
	case *ShiftedPower:
		return v, true
	case *PenalizedShiftedPower:
		return v.ShiftedPower, true
	}
	return nil, false
}
