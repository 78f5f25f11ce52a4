package train

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/dataset"
	"github.com/polyformer/polyformer/model/nn"
)

// RangeOptions configure range regularization: a penalty (nn.RangePenalty)
// on the inputs of every non-linearity outside a target interval fixed in
// advance, so that the intervals of the polynomial forms are known before
// training ends and stay modest (an encrypted circuit cannot clamp).
// Calibration then fits every penalized site on the hull of its target and
// its observed range (see Calibrate), so when the penalty holds, the fitted
// interval is the target widened by the fit margin.
type RangeOptions struct {
	// Weight of the penalty (Weight * mean squared relative excess, per
	// site, summed over sites); 0 disables range regularization.
	Weight float64 `json:"weight"`
	// ActBound is B of the target [-B, B] of the FFN activation inputs
	// (GELU, ReLU); 0: not penalized.
	ActBound float64 `json:"act_bound,omitempty"`
	// RecipHi is the upper end of the target of the Power-Softmax row
	// normalizer z = eps + sum (or mean) x^p, the input of the reciprocal;
	// 0: not penalized.
	RecipHi float64 `json:"recip_hi,omitempty"`
	// RecipLo is the lower end of that target (0: the attention eps, which
	// z never goes below).
	RecipLo float64 `json:"recip_lo,omitempty"`
	// ShiftHi > 0 keeps the shifted scores x + c of power-shifted attention
	// inside [0, ShiftHi]: non-negative, which odd powers need (a negative
	// x + c gives a negative attention weight and can make a row's normalizer
	// non-positive), and bounded, which keeps (x + c)^p modest.
	ShiftHi float64 `json:"shift_hi,omitempty"`
	// VarLo and VarHi (VarHi > 0: penalized) are the target of every
	// LayerNorm's and RMSNorm's inverse-square-root input
	// mean(xc^2) + eps: a narrow interval lets calibration fit a cheap
	// inverse square root (see norm.CostOf and docs/normalization.md).
	VarLo float64 `json:"var_lo,omitempty"`
	VarHi float64 `json:"var_hi,omitempty"`
}

// Enabled says whether any penalty is configured.
func (r RangeOptions) Enabled() bool {
	return r.Weight > 0 && (r.ActBound > 0 || r.RecipHi > 0 || r.ShiftHi > 0 || r.VarHi > 0)
}

func (r RangeOptions) validate() error {
	if r.Weight < 0 || r.ActBound < 0 || r.RecipHi < 0 || r.RecipLo < 0 || r.ShiftHi < 0 ||
		math.IsNaN(r.Weight+r.ActBound+r.RecipHi+r.RecipLo+r.ShiftHi) || math.IsInf(r.ShiftHi, 0) {
		return fmt.Errorf("range options: weight %g, act_bound %g, recip_lo %g, recip_hi %g, shift_hi %g must be finite and >= 0", r.Weight, r.ActBound, r.RecipLo, r.RecipHi, r.ShiftHi)
	}
	if r.RecipHi > 0 && r.RecipLo >= r.RecipHi {
		return fmt.Errorf("range options: recip_lo %g must be below recip_hi %g", r.RecipLo, r.RecipHi)
	}
	if r.VarLo < 0 || r.VarHi < 0 || math.IsNaN(r.VarLo+r.VarHi) || math.IsInf(r.VarHi, 0) {
		return fmt.Errorf("range options: var_lo %g and var_hi %g must be finite and >= 0", r.VarLo, r.VarHi)
	}
	if r.VarHi > 0 && r.VarLo >= r.VarHi {
		return fmt.Errorf("range options: var_lo %g must be below var_hi %g", r.VarLo, r.VarHi)
	}
	if r.VarHi == 0 && r.VarLo > 0 {
		return fmt.Errorf("range options: var_lo %g needs var_hi", r.VarLo)
	}
	if r.VarHi > 0 && r.VarLo == 0 {
		return fmt.Errorf("range options: var_hi %g needs var_lo > 0 (the inverse square root's interval must stay away from 0)", r.VarHi)
	}
	return nil
}

// Penalties are the range penalties attached to a model.
type Penalties struct {
	List []*nn.RangePenalty
	// Targets maps site names to their target interval.
	Targets map[string]model.Target
	detach  []func()
}

// Value is the sum of the penalties' values in the last forward pass.
func (p *Penalties) Value() float64 {
	if p == nil {
		return 0
	}
	var v float64
	for _, r := range p.List {
		v += r.Value()
	}
	return v
}

// Stats returns every penalty's statistics of the last forward pass.
func (p *Penalties) Stats() []nn.RangeStats {
	if p == nil {
		return nil
	}
	out := make([]nn.RangeStats, len(p.List))
	for i, r := range p.List {
		out[i] = r.Stats()
	}
	return out
}

// Outside is the number of site inputs outside their targets in the last pass.
func (p *Penalties) Outside() int {
	n := 0
	for _, s := range p.Stats() {
		n += s.Outside
	}
	return n
}

// Detach removes the penalties from the model (restores the wrapped modules).
func (p *Penalties) Detach() {
	if p == nil {
		return
	}
	for i := len(p.detach) - 1; i >= 0; i-- {
		p.detach[i]()
	}
	p.detach = nil
}

// AttachRangePenalties wraps the FFN activation of every block (target
// [-ActBound, ActBound]) and its Power-Softmax kernel (target [RecipLo or
// eps, RecipHi]) with range penalties. Kinds it cannot penalize (softmax
// attention, polynomial or quadratic activations, which have no site) are
// skipped when their bound is set; an error is returned only for invalid
// options or when nothing at all could be penalized.
func AttachRangePenalties(m *model.Model, r RangeOptions) (*Penalties, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	p := &Penalties{Targets: map[string]model.Target{}}
	if !r.Enabled() {
		return p, nil
	}
	for _, blk := range m.Blocks {
		if sp, ok := blk.Attn.Kernel.(*nn.ShiftedPower); ok && (r.RecipHi > 0 || r.ShiftHi > 0) {
			var norm, shifted *nn.RangePenalty
			site := sp.Sites()[0].Name
			lo := r.RecipLo
			if lo == 0 {
				lo = sp.Eps
			}
			if r.RecipHi > 0 {
				pen, err := nn.NewRangePenalty(site, lo, r.RecipHi, r.Weight)
				if err != nil {
					return nil, err
				}
				norm = pen
			}
			if r.ShiftHi > 0 {
				// named like the kernel's sites: <attn>.shifted.scores
				pen, err := nn.NewRangePenalty(strings.TrimSuffix(site, ".recip")+".scores", 0, r.ShiftHi, r.Weight)
				if err != nil {
					return nil, err
				}
				shifted = pen
			}
			k, err := nn.PenalizeShiftedKernel(sp, norm, shifted)
			if err != nil {
				return nil, err
			}
			attn := blk.Attn
			attn.Kernel = k
			p.detach = append(p.detach, func() { attn.Kernel = sp })
			if norm != nil {
				p.List = append(p.List, norm)
				// with x + c >= 0 (even p, or odd p kept there by the shift
				// penalty) z >= eps, but only the penalty enforces it for odd p
				p.Targets[site] = model.Target{Lo: lo, Hi: r.RecipHi, Floor: r.RecipLo == 0 && sp.Eps > 0 && sp.P%2 == 0}
			}
			if shifted != nil {
				p.List = append(p.List, shifted)
			}
		}
		if r.RecipHi > 0 {
			if ps, ok := blk.Attn.Kernel.(*nn.PowerSoftmax); ok {
				site := ps.Sites()[0].Name
				lo := r.RecipLo
				if lo == 0 {
					lo = ps.Eps
				}
				pen, err := nn.NewRangePenalty(site, lo, r.RecipHi, r.Weight)
				if err != nil {
					return nil, err
				}
				k, err := nn.PenalizeKernel(ps, pen)
				if err != nil {
					return nil, err
				}
				attn := blk.Attn
				attn.Kernel = k
				p.detach = append(p.detach, func() { attn.Kernel = ps })
				p.List = append(p.List, pen)
				// z = eps + (mean) sum x^p >= eps exactly: a hard floor when no
				// higher lower target is asked for
				p.Targets[site] = model.Target{Lo: lo, Hi: r.RecipHi, Floor: r.RecipLo == 0 && ps.Eps > 0}
			}
		}
		if r.ActBound > 0 {
			act := blk.FFN.Act
			sh, ok := act.(nn.SiteHolder)
			if !ok || len(sh.Sites()) != 1 {
				continue
			}
			site := sh.Sites()[0]
			if site.Kind != nn.FnGELU && site.Kind != nn.FnReLU {
				continue
			}
			pen, err := nn.NewRangePenalty(site.Name, -r.ActBound, r.ActBound, r.Weight)
			if err != nil {
				return nil, err
			}
			ffn := blk.FFN
			ffn.Act = nn.PenalizeModule(act, pen)
			p.detach = append(p.detach, func() { ffn.Act = act })
			p.List = append(p.List, pen)
			p.Targets[site.Name] = model.Target{Lo: -r.ActBound, Hi: r.ActBound}
		}
	}
	if r.VarHi > 0 {
		if err := p.attachVar(m, r); err != nil {
			return nil, err
		}
	}
	if len(p.List) == 0 {
		return nil, errors.New("range penalties: the model has no power-softmax or power-shifted normalizer, shifted score, activation or layernorm/rmsnorm variance site to penalize")
	}
	return p, nil
}

// varPenalized is a norm whose inverse-square-root input can be penalized
// (norm.LayerNorm, norm.RMSNorm).
type varPenalized interface {
	nn.Norm
	SetVarPenalty(*nn.RangePenalty)
}

// attachVar puts a variance penalty with target [VarLo, VarHi] on every
// LayerNorm and RMSNorm of m (blocks and final norm); other norms are skipped.
func (p *Penalties) attachVar(m *model.Model, r RangeOptions) error {
	for _, n := range m.Norms() {
		vn, ok := n.(varPenalized)
		if !ok || len(vn.Sites()) != 1 {
			continue
		}
		site := vn.Sites()[0].Name
		pen, err := nn.NewRangePenalty(site, r.VarLo, r.VarHi, r.Weight)
		if err != nil {
			return err
		}
		vn.SetVarPenalty(pen)
		p.detach = append(p.detach, func() { vn.SetVarPenalty(nil) })
		p.List = append(p.List, pen)
		p.Targets[site] = model.Target{Lo: r.VarLo, Hi: r.VarHi}
	}
	return nil
}

// CalibrateOn is model.Model.Calibrate on the first n training batches of ds (the
// training batches of steps 0..n-1, fetched one at a time); n < 0 means one
// epoch of the training set (datasets with a TrainSize method).
func CalibrateOn(m *model.Model, ds dataset.Dataset, n, batchSize int, fit nn.FitOptions, targets map[string]model.Target) error {
	if n < 0 {
		s, ok := ds.(interface{ TrainSize() int })
		if !ok {
			return errors.New("calibrate: the whole training set needs a dataset with a known size")
		}
		n = (s.TrainSize() + batchSize - 1) / batchSize
	}
	return m.CalibrateFunc(n, func(i int) (model.Batch, error) { return ds.TrainBatch(i, batchSize) }, fit, targets)
}
