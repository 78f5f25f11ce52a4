package nn

import (
	"fmt"
	"math"
	"sync"
)

// RangePenalty is a training regularizer that keeps the inputs of one
// non-linearity site inside a target interval [Lo, Hi] fixed before training
// ends, so that the polynomial the encrypted circuit evaluates can be fitted
// on a known, modest interval (ciphertexts cannot be clamped: a value outside
// the interval is a real failure).
//
// For each input x of the site in one forward pass, the excess is
//
//	e(x) = (Lo - x) / sLo   if x < Lo,
//	e(x) = (x - Hi) / sHi   if x > Hi,
//	e(x) = 0                otherwise,
//
// with sLo = |Lo| and sHi = |Hi| (Hi - Lo when the bound is 0), so the
// excess is relative to the bound, and the penalty is
// Value = Weight * mean over the pass's inputs of e(x)^2. Its gradient is
// added to the input gradient of the wrapped module or kernel (see
// PenalizeModule and PenalizeKernel), so it flows through the whole network.
// The penalty is evaluated in every mode (exact, calibration, poly), on the
// values the site receives.
type RangePenalty struct {
	// Site is the name of the penalized site.
	Site string
	// Lo and Hi bound the target interval.
	Lo, Hi float64
	// Weight multiplies the mean squared excess.
	Weight float64

	mu      sync.Mutex
	sum     float64 // sum of e^2 over the last pass
	n       int     // inputs of the last pass
	outside int     // inputs outside [Lo, Hi] in the last pass
	lo, hi  float64 // extreme inputs of the last pass
}

// NewRangePenalty validates and returns a penalty for the named site.
func NewRangePenalty(site string, lo, hi, weight float64) (*RangePenalty, error) {
	if !(lo < hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return nil, fmt.Errorf("range penalty %s: target interval [%g, %g] must be finite with lo < hi", site, lo, hi)
	}
	if !(weight >= 0) || math.IsInf(weight, 0) {
		return nil, fmt.Errorf("range penalty %s: weight %g must be finite and >= 0", site, weight)
	}
	return &RangePenalty{Site: site, Lo: lo, Hi: hi, Weight: weight}, nil
}

func (p *RangePenalty) scales() (sLo, sHi float64) {
	w := p.Hi - p.Lo
	sLo, sHi = math.Abs(p.Lo), math.Abs(p.Hi)
	if sLo == 0 {
		sLo = w
	}
	if sHi == 0 {
		sHi = w
	}
	return sLo, sHi
}

// excess returns e(x) and de/dx.
func (p *RangePenalty) excess(x, sLo, sHi float64) (float64, float64) {
	switch {
	case x < p.Lo:
		return (p.Lo - x) / sLo, -1 / sLo
	case x > p.Hi:
		return (x - p.Hi) / sHi, 1 / sHi
	case math.IsNaN(x):
		return math.NaN(), 0
	}
	return 0, 0
}

// begin starts a forward pass of n inputs.
func (p *RangePenalty) begin(n int) {
	p.mu.Lock()
	p.sum, p.n, p.outside = 0, n, 0
	p.lo, p.hi = math.Inf(1), math.Inf(-1)
	p.mu.Unlock()
}

// observe adds the inputs xs of the current pass (safe for concurrent use).
func (p *RangePenalty) observe(xs []float64) {
	sLo, sHi := p.scales()
	var sum float64
	out := 0
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, x := range xs {
		e, _ := p.excess(x, sLo, sHi)
		if e != 0 || math.IsNaN(x) {
			out++
			sum += e * e
		}
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	p.mu.Lock()
	p.sum += sum
	p.outside += out
	p.lo, p.hi = math.Min(p.lo, lo), math.Max(p.hi, hi)
	p.mu.Unlock()
}

// grad returns dValue/dx for one input of the current pass.
func (p *RangePenalty) grad(x, sLo, sHi float64) float64 {
	if p.n == 0 || p.Weight == 0 {
		return 0
	}
	e, de := p.excess(x, sLo, sHi)
	return p.Weight * 2 * e * de / float64(p.n)
}

// ObservePass starts a forward pass whose site inputs are xs and records
// them (for a penalty held by a layer that computes the site's input itself,
// such as a norm's variance).
func (p *RangePenalty) ObservePass(xs []float64) {
	p.begin(len(xs))
	p.observe(xs)
}

// Grad returns dValue/dx for the input x of the pass last given to
// ObservePass (0 inside the target).
func (p *RangePenalty) Grad(x float64) float64 {
	if x >= p.Lo && x <= p.Hi {
		return 0
	}
	sLo, sHi := p.scales()
	return p.grad(x, sLo, sHi)
}

// Value returns Weight * mean e^2 over the last forward pass (0 before any).
func (p *RangePenalty) Value() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n == 0 {
		return 0
	}
	return p.Weight * p.sum / float64(p.n)
}

// RangeStats describes the inputs of a penalized site in the last forward pass.
type RangeStats struct {
	Site    string     `json:"site"`
	Target  [2]float64 `json:"target"`
	Min     float64    `json:"min"`
	Max     float64    `json:"max"`
	Outside int        `json:"outside"`
	Total   int        `json:"total"`
	Value   float64    `json:"value"`
}

// Stats returns the statistics of the last forward pass.
func (p *RangePenalty) Stats() RangeStats {
	v := p.Value()
	p.mu.Lock()
	defer p.mu.Unlock()
	return RangeStats{Site: p.Site, Target: [2]float64{p.Lo, p.Hi}, Min: p.lo, Max: p.hi, Outside: p.outside, Total: p.n, Value: v}
}

// PenalizedModule wraps a module whose input is the input of a site (an FFN
// activation): Forward records the range penalty of its input, Backward adds
// the penalty's gradient to the input gradient. It is otherwise the wrapped
// module (same parameters and sites).
type PenalizedModule struct {
	Inner   Module
	Penalty *RangePenalty
	x       *Tensor
}

// PenalizeModule wraps m with the penalty p.
func PenalizeModule(m Module, p *RangePenalty) *PenalizedModule {
	return &PenalizedModule{Inner: m, Penalty: p}
}

// Forward records the penalty of x and applies the wrapped module.
func (w *PenalizedModule) Forward(x *Tensor) *Tensor {
	w.x = x
	w.Penalty.begin(len(x.Data))
	w.Penalty.observe(x.Data)
	return w.Inner.Forward(x)
}

// Backward returns the wrapped module's input gradient plus the penalty's.
func (w *PenalizedModule) Backward(dy *Tensor) *Tensor {
	dx := w.Inner.Backward(dy)
	sLo, sHi := w.Penalty.scales()
	for i, x := range w.x.Data {
		if x < w.Penalty.Lo || x > w.Penalty.Hi {
			dx.Data[i] += w.Penalty.grad(x, sLo, sHi)
		}
	}
	return dx
}

// Params returns the wrapped module's parameters.
func (w *PenalizedModule) Params() []*Param { return w.Inner.Params() }

// Sites returns the wrapped module's sites.
func (w *PenalizedModule) Sites() []*Site { return CollectSites(w.Inner) }

// PenalizedPowerSoftmax wraps an unscaled Power-Softmax kernel and penalizes
// its row normalizers z_i = Eps + N_i (the input of the reciprocal site)
// outside the penalty's interval. Its parameters, sites and attention
// weights are those of the wrapped kernel.
type PenalizedPowerSoftmax struct {
	*PowerSoftmax
	Penalty *RangePenalty
}

// PenalizeKernel wraps k with the penalty p. Only the unscaled Power-Softmax
// is supported: its reciprocal input is the same function in every mode.
func PenalizeKernel(k AttentionKernel, p *RangePenalty) (*PenalizedPowerSoftmax, error) {
	ps, ok := k.(*PowerSoftmax)
	if !ok {
		return nil, fmt.Errorf("range penalty %s: attention kernel %s is not power-softmax", p.Site, k.Name())
	}
	if ps.Scaled {
		return nil, fmt.Errorf("range penalty %s: the max-scaled power-softmax has a different reciprocal input in exact and poly mode; use scaled = false", p.Site)
	}
	return &PenalizedPowerSoftmax{PowerSoftmax: ps, Penalty: p}, nil
}

// prepare starts the penalty of a forward pass of b*heads*t rows.
func (k *PenalizedPowerSoftmax) prepare(_ []float64, b, heads, t int, _ bool) {
	k.Penalty.begin(b * heads * t)
}

// normalizer returns z = Eps + N for row i and the factor dN/d(sum x^p).
func (k *PenalizedPowerSoftmax) normalizer(row []float64) (z, norm float64) {
	var sum float64
	for _, v := range row {
		sum += ipow(v, k.P)
	}
	norm = 1
	if k.LengthNorm {
		norm = 1 / float64(len(row))
	}
	return k.Eps + sum*norm, norm
}

// Forward computes the weights and records the normalizers' penalty.
func (k *PenalizedPowerSoftmax) Forward(h, t int, causal bool, s, a []float64) {
	k.PowerSoftmax.Forward(h, t, causal, s, a)
	zs := make([]float64, t)
	for i := 0; i < t; i++ {
		zs[i], _ = k.normalizer(s[i*t : i*t+rowLen(i, t, causal)])
	}
	k.Penalty.observe(zs)
}

// Backward adds the penalty's gradient to the wrapped kernel's ds.
func (k *PenalizedPowerSoftmax) Backward(h, t int, causal bool, s, a, da, ds []float64, pgrad [][]float64) {
	k.PowerSoftmax.Backward(h, t, causal, s, a, da, ds, pgrad)
	sLo, sHi := k.Penalty.scales()
	for i := 0; i < t; i++ {
		row := s[i*t : i*t+rowLen(i, t, causal)]
		z, norm := k.normalizer(row)
		if z >= k.Penalty.Lo && z <= k.Penalty.Hi {
			continue
		}
		gz := k.Penalty.grad(z, sLo, sHi) * norm * float64(k.P)
		for j, v := range row {
			ds[i*t+j] += gz * ipow(v, k.P-1)
		}
	}
}

// PenalizedShiftedPower wraps a ShiftedPower kernel with up to two range
// penalties: Penalty (may be nil) on its row normalizers z_i = Eps + N_i
// (the input of the reciprocal site), like PenalizedPowerSoftmax, and
// Shifted (may be nil) on its unmasked shifted scores u = x + c_h. For an odd
// P, Shifted should have Lo = 0 (a lower target 0 keeps the weights
// non-negative: (x + c)^P < 0 when x + c < 0); its Hi bounds the shifted
// scores from above (and so the size of u^P). The Shifted penalty's gradient
// flows into the scores and, when the shift is learned, into c_h. Its
// parameters, sites and attention weights are those of the wrapped kernel.
type PenalizedShiftedPower struct {
	*ShiftedPower
	Penalty *RangePenalty
	Shifted *RangePenalty
}

// PenalizeShiftedKernel wraps k with a normalizer penalty norm and a
// shifted-score penalty shifted; either may be nil, not both.
func PenalizeShiftedKernel(k AttentionKernel, norm, shifted *RangePenalty) (*PenalizedShiftedPower, error) {
	if norm == nil && shifted == nil {
		return nil, fmt.Errorf("range penalty: no penalty given for the shifted power kernel")
	}
	sp, ok := k.(*ShiftedPower)
	if !ok {
		var name string
		if norm != nil {
			name = norm.Site
		} else {
			name = shifted.Site
		}
		return nil, fmt.Errorf("range penalty %s: attention kernel %s is not power-shifted", name, k.Name())
	}
	return &PenalizedShiftedPower{ShiftedPower: sp, Penalty: norm, Shifted: shifted}, nil
}

// prepare prepares the wrapped kernel and starts the penalties of a forward
// pass of b*heads*t rows.
func (k *PenalizedShiftedPower) prepare(scores []float64, b, heads, t int, causal bool) {
	k.ShiftedPower.prepare(scores, b, heads, t, causal)
	if k.Penalty != nil {
		k.Penalty.begin(b * heads * t)
	}
	if k.Shifted != nil {
		per := t * t
		if causal {
			per = t * (t + 1) / 2
		}
		k.Shifted.begin(b * heads * per)
	}
}

// Forward computes the weights and records the penalties.
func (k *PenalizedShiftedPower) Forward(h, t int, causal bool, s, a []float64) {
	k.ShiftedPower.Forward(h, t, causal, s, a)
	c := k.Shift.Value.Data[h]
	zs := make([]float64, t)
	y := make([]float64, t)
	var us []float64
	for i := 0; i < t; i++ {
		row := s[i*t : i*t+rowLen(i, t, causal)]
		zs[i], _, _ = k.row(row, c, y[:len(row)])
		if k.Shifted != nil {
			for _, v := range row {
				us = append(us, v+c)
			}
		}
	}
	if k.Penalty != nil {
		k.Penalty.observe(zs)
	}
	if k.Shifted != nil {
		k.Shifted.observe(us)
	}
}

// Backward adds the penalties' gradients to the wrapped kernel's ds (and to
// dL/dc_h).
func (k *PenalizedShiftedPower) Backward(h, t int, causal bool, s, a, da, ds []float64, pgrad [][]float64) {
	k.ShiftedPower.Backward(h, t, causal, s, a, da, ds, pgrad)
	c := k.Shift.Value.Data[h]
	y := make([]float64, t)
	var dc float64
	for i := 0; i < t; i++ {
		row := s[i*t : i*t+rowLen(i, t, causal)]
		if k.Penalty != nil {
			sLo, sHi := k.Penalty.scales()
			z, norm, _ := k.row(row, c, y[:len(row)])
			if z < k.Penalty.Lo || z > k.Penalty.Hi {
				gz := k.Penalty.grad(z, sLo, sHi) * norm * float64(k.P)
				for j, v := range row {
					g := gz * ipow(v+c, k.P-1)
					ds[i*t+j] += g
					dc += g
				}
			}
		}
		if k.Shifted != nil {
			sLo, sHi := k.Shifted.scales()
			for j, v := range row {
				if u := v + c; u < k.Shifted.Lo || u > k.Shifted.Hi {
					g := k.Shifted.grad(u, sLo, sHi)
					ds[i*t+j] += g
					dc += g
				}
			}
		}
	}
	pgrad[0][h] += dc
}
