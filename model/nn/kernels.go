package nn

import (
	"fmt"
	"math"
)

// AttentionKernel maps one head's T x T score matrix S (row i = query i) to
// attention weights A. Masked entries (j > i when causal) are multiplied by 0:
// they contribute nothing and their weight is 0.
//
// Forward and Backward are called concurrently for different (batch, head)
// pairs; they must not write shared state. Backward overwrites ds with dL/dS
// given da = dL/dA and adds parameter gradients into pgrad, which is laid out
// like Params() (one slice per parameter, owned by the calling worker).
type AttentionKernel interface {
	Name() string
	Forward(head, t int, causal bool, s, a []float64)
	Backward(head, t int, causal bool, s, a, da, ds []float64, pgrad [][]float64)
	Params() []*Param
	Sites() []*Site
}

// batchPreparer is implemented by kernels that look at a whole batch of
// scores before the per-head forward (data-dependent initialization).
type batchPreparer interface {
	prepare(scores []float64, b, heads, t int, causal bool)
}

func rowLen(i, t int, causal bool) int {
	if causal {
		return i + 1
	}
	return t
}

// Softmax is the baseline kernel a_ij = exp(s_ij) / sum_k exp(s_ik). In
// exact mode it subtracts the row maximum; in calibration and poly mode it
// evaluates exp and the reciprocal of the row sum through sites (the form an
// encrypted circuit would compute, without the maximum).
type Softmax struct {
	exp, recip *Site
}

// NewSoftmax returns a softmax kernel whose sites are named after prefix.
func NewSoftmax(prefix string) *Softmax {
	return &Softmax{exp: NewSite(prefix+".softmax.exp", FnExp), recip: NewSite(prefix+".softmax.recip", FnRecip)}
}

// Name returns "softmax".
func (k *Softmax) Name() string { return "softmax" }

// Forward computes the softmax of each row.
func (k *Softmax) Forward(_, t int, causal bool, s, a []float64) {
	for i := 0; i < t; i++ {
		n := rowLen(i, t, causal)
		row, out := s[i*t:i*t+n], a[i*t:(i+1)*t]
		for j := n; j < t; j++ {
			out[j] = 0
		}
		if k.exp.Mode() == ModeExact {
			m := math.Inf(-1)
			for _, v := range row {
				m = math.Max(m, v)
			}
			var z float64
			for j, v := range row {
				out[j] = math.Exp(v - m)
				z += out[j]
			}
			for j := range row {
				out[j] /= z
			}
			continue
		}
		k.exp.Apply(out[:n], row)
		var z float64
		for _, v := range out[:n] {
			z += v
		}
		r := k.recip.Eval1(z)
		for j := 0; j < n; j++ {
			out[j] *= r
		}
	}
}

// Backward computes ds_ij = a_ij (da_ij - sum_k a_ik da_ik) in exact mode,
// and differentiates exp and the reciprocal as the sites compute them
// otherwise.
func (k *Softmax) Backward(_, t int, causal bool, s, a, da, ds []float64, _ [][]float64) {
	if k.exp.Mode() != ModeExact {
		k.backwardSites(t, causal, s, da, ds)
		return
	}
	for i := 0; i < t; i++ {
		n := rowLen(i, t, causal)
		var dot float64
		for j := 0; j < n; j++ {
			dot += a[i*t+j] * da[i*t+j]
		}
		for j := 0; j < t; j++ {
			if j < n {
				ds[i*t+j] = a[i*t+j] * (da[i*t+j] - dot)
			} else {
				ds[i*t+j] = 0
			}
		}
	}
}

// backwardSites differentiates a_j = E(s_j) R(sum_k E(s_k)).
func (k *Softmax) backwardSites(t int, causal bool, s, da, ds []float64) {
	e := make([]float64, t)
	for i := 0; i < t; i++ {
		n := rowLen(i, t, causal)
		var z, se float64
		for j := 0; j < n; j++ {
			e[j] = k.exp.Peek(s[i*t+j])
			z += e[j]
			se += da[i*t+j] * e[j]
		}
		r, dz := k.recip.Peek(z), k.recip.Deriv(z)*se
		for j := 0; j < t; j++ {
			if j < n {
				ds[i*t+j] = (da[i*t+j]*r + dz) * k.exp.Deriv(s[i*t+j])
			} else {
				ds[i*t+j] = 0
			}
		}
	}
}

// Params returns nothing.
func (k *Softmax) Params() []*Param { return nil }

// Sites returns the exp and reciprocal sites.
func (k *Softmax) Sites() []*Site { return []*Site{k.exp, k.recip} }

// PowerSoftmax is a_ij = x_ij^p / (Eps + N_i) with N_i = sum_k x_ik^p, or
// N_i = mean_k x_ik^p over the row's unmasked entries when LengthNorm is set.
// P must be even (2, 4, 6, 8), so x^p >= 0.
//
// Scaled selects the training-stable form x_ij = s_ij / (max_k |s_ik| + Delta)
// instead of x = s. With Eps = 0 the scaled and unscaled forms are the same
// function (the factor (max+Delta)^-p cancels between numerator and
// denominator); with Eps > 0 they differ (the scaled form behaves like the
// unscaled one with a row-dependent eps * (max+Delta)^p). The maximum is
// differentiated (gradient through the argmax entry) unless StopGradMax is
// set, in which case it is treated as a constant; with Eps = 0 both give the
// same, exact gradient because the function does not depend on the scale.
//
// An encrypted circuit cannot take a maximum, so calibration and poly mode
// evaluate the unscaled form with the reciprocal 1/(Eps + N_i) through a site:
// poly mode reproduces the trained function exactly only when Eps = 0 or
// Scaled is false.
type PowerSoftmax struct {
	P           int
	Eps, Delta  float64
	Scaled      bool
	StopGradMax bool
	LengthNorm  bool
	recip       *Site
}

// NewPowerSoftmax validates the options and returns the kernel.
func NewPowerSoftmax(prefix string, p int, eps, delta float64, scaled, stopGradMax, lengthNorm bool) (*PowerSoftmax, error) {
	if p < 2 || p%2 != 0 || p > 16 {
		return nil, fmt.Errorf("power-softmax: p = %d must be even in [2, 16]", p)
	}
	if eps < 0 || delta < 0 || (scaled && delta == 0 && eps == 0) {
		return nil, fmt.Errorf("power-softmax: need eps >= 0, delta >= 0 (delta > 0 when scaled with eps = 0), got eps %g delta %g", eps, delta)
	}
	return &PowerSoftmax{P: p, Eps: eps, Delta: delta, Scaled: scaled, StopGradMax: stopGradMax, LengthNorm: lengthNorm,
		recip: NewSite(prefix+".powersoftmax.recip", FnRecip)}, nil
}

// Name returns "power-softmax".
func (k *PowerSoftmax) Name() string { return "power-softmax" }

func ipow(x float64, p int) float64 {
	r := 1.0
	for ; p > 0; p-- {
		r *= x
	}
	return r
}

func (k *PowerSoftmax) scaled() bool { return k.Scaled && k.recip.Mode() == ModeExact }

// rowScale returns c = 1/(max|s|+Delta) and the argmax (or 1, -1 when unscaled).
func (k *PowerSoftmax) rowScale(row []float64) (float64, int) {
	if !k.scaled() {
		return 1, -1
	}
	m, arg := -1.0, 0
	for j, v := range row {
		if math.Abs(v) > m {
			m, arg = math.Abs(v), j
		}
	}
	return 1 / (m + k.Delta), arg
}

// Forward computes the weights row by row.
func (k *PowerSoftmax) Forward(_, t int, causal bool, s, a []float64) {
	for i := 0; i < t; i++ {
		n := rowLen(i, t, causal)
		row, out := s[i*t:i*t+n], a[i*t:(i+1)*t]
		c, _ := k.rowScale(row)
		var sum float64
		for j, v := range row {
			out[j] = ipow(c*v, k.P)
			sum += out[j]
		}
		if k.LengthNorm {
			sum /= float64(n)
		}
		normalizeRow(out, n, k.Eps+sum, k.recip)
	}
}

// normalizeRow finishes a row of power-attention weights: the n unmasked
// numerators in out[:n] are multiplied by recip(z), z the row normalizer
// (the whole row is 0 when z is), and the masked tail out[n:] is zeroed.
func normalizeRow(out []float64, n int, z float64, recip *Site) {
	for j := n; j < len(out); j++ {
		out[j] = 0
	}
	if z == 0 {
		for j := range out[:n] {
			out[j] = 0
		}
		return
	}
	r := recip.Eval1(z)
	for j := range out[:n] {
		out[j] *= r
	}
}

// Backward computes dL/ds, differentiating the reciprocal as the site
// computes it (1/z, or its plan in poly mode).
func (k *PowerSoftmax) Backward(_, t int, causal bool, s, a, da, ds []float64, _ [][]float64) {
	for i := 0; i < t; i++ {
		n := rowLen(i, t, causal)
		row := s[i*t : i*t+n]
		out := ds[i*t : (i+1)*t]
		for j := range out {
			out[j] = 0
		}
		c, arg := k.rowScale(row)
		var sum float64
		for _, v := range row {
			sum += ipow(c*v, k.P)
		}
		norm := 1.0
		if k.LengthNorm {
			norm = 1 / float64(n)
		}
		z := k.Eps + sum*norm
		if z == 0 {
			continue
		}
		// a_j = y_j R(z) with R the reciprocal as the site computes it (1/z, or
		// its polynomial plan in poly mode): dy_j = da_j R(z) + dz * norm with
		// dz = R'(z) sum_j da_j y_j.
		r, rp := k.recip.Peek(z), k.recip.Deriv(z)
		var sy float64
		for j, v := range row {
			sy += da[i*t+j] * ipow(c*v, k.P)
		}
		dz := rp * sy
		var dc float64
		for j, v := range row {
			x := c * v
			dy := da[i*t+j]*r + dz*norm
			dx := dy * float64(k.P) * ipow(x, k.P-1)
			out[j] = c * dx
			dc += dx * v
		}
		if arg >= 0 && !k.StopGradMax {
			// c = 1/(m + Delta), dm = -c^2 dc, dm/ds_arg = sign(s_arg).
			dm := -c * c * dc
			if row[arg] >= 0 {
				out[arg] += dm
			} else {
				out[arg] -= dm
			}
		}
	}
}

// Params returns nothing.
func (k *PowerSoftmax) Params() []*Param { return nil }

// Sites returns the row-normalizer reciprocal site.
func (k *PowerSoftmax) Sites() []*Site { return []*Site{k.recip} }

// PowerFixed is power attention with a fixed normalizer per head:
// a_ij = s_ij^p * exp(-G_h). It needs no division at all under encryption.
// G is initialized from the first batch seen (G_h = log of the mean row sum
// of s^p), then either learned (Learned) or frozen (a calibrated constant).
type PowerFixed struct {
	P       int
	Learned bool
	G       *Param // [heads] log-normalizers
	Ready   *Param // [1]; 1 once G has been initialized from data (frozen)
}

// NewPowerFixed returns the kernel for the given number of heads.
func NewPowerFixed(prefix string, p, heads int, learned bool) (*PowerFixed, error) {
	if p < 2 || p%2 != 0 || p > 16 {
		return nil, fmt.Errorf("power attention: p = %d must be even in [2, 16]", p)
	}
	k := &PowerFixed{P: p, Learned: learned, G: NewParam(prefix+".power.lognorm", heads), Ready: NewParam(prefix+".power.ready", 1)}
	k.G.NoDecay, k.G.Frozen = true, !learned
	k.Ready.NoDecay, k.Ready.Frozen = true, true
	return k, nil
}

// Name returns "power-fixed".
func (k *PowerFixed) Name() string { return "power-fixed" }

func (k *PowerFixed) prepare(scores []float64, b, heads, t int, causal bool) {
	if k.Ready.Value.Data[0] != 0 {
		return
	}
	for h := 0; h < heads; h++ {
		var tot float64
		for bi := 0; bi < b; bi++ {
			s := scores[(bi*heads+h)*t*t:]
			for i := 0; i < t; i++ {
				for j := 0; j < rowLen(i, t, causal); j++ {
					tot += ipow(s[i*t+j], k.P)
				}
			}
		}
		mean := tot / float64(b*t)
		if mean <= 0 || math.IsNaN(mean) || math.IsInf(mean, 0) {
			mean = 1
		}
		k.G.Value.Data[h] = math.Log(mean)
	}
	k.Ready.Value.Data[0] = 1
}

// Forward computes s^p exp(-G_h).
func (k *PowerFixed) Forward(h, t int, causal bool, s, a []float64) {
	w := math.Exp(-k.G.Value.Data[h])
	for i := 0; i < t; i++ {
		n := rowLen(i, t, causal)
		for j := 0; j < t; j++ {
			if j < n {
				a[i*t+j] = ipow(s[i*t+j], k.P) * w
			} else {
				a[i*t+j] = 0
			}
		}
	}
}

// Backward computes ds and, when learned, dG_h = -sum da * a.
func (k *PowerFixed) Backward(h, t int, causal bool, s, a, da, ds []float64, pgrad [][]float64) {
	w := math.Exp(-k.G.Value.Data[h])
	var dg float64
	for i := 0; i < t; i++ {
		n := rowLen(i, t, causal)
		for j := 0; j < t; j++ {
			idx := i*t + j
			if j < n {
				ds[idx] = da[idx] * float64(k.P) * ipow(s[idx], k.P-1) * w
				dg -= da[idx] * a[idx]
			} else {
				ds[idx] = 0
			}
		}
	}
	pgrad[0][h] += dg
}

// Params returns the log-normalizers and the initialization flag.
func (k *PowerFixed) Params() []*Param { return []*Param{k.G, k.Ready} }

// Sites returns nothing: the kernel is a polynomial.
func (k *PowerFixed) Sites() []*Site { return nil }
