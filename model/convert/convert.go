// Package convert rewrites trained models exactly: the Pre-LN to
// Pre-RMSNorm conversion (re-centred embeddings, zero-mean output
// projections of every residual branch, LayerNorm affine parameters folded
// into the next linear layer) and the folding of every foldable norm (and of
// weight-side reparameterizations) into the adjacent linear layers. It
// imports model and model/norm, so it sits above both (model/nn < model/norm
// < model < model/convert).
package convert

import (
	"errors"
	"fmt"

	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/nn"
	"github.com/polyformer/polyformer/model/norm"
)

// rebuild builds a model of cfg (whose poly specs are restricted to the
// sites it has) and copies every parameter of the new model from m by name.
func rebuild(m *model.Model, cfg model.Config) (*model.Model, error) {
	poly := cfg.Poly
	cfg.Poly = nil
	n, err := model.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	for _, p := range n.Params() {
		q := m.Reg.Get(p.Name)
		if q == nil || !q.Value.SameShape(p.Value) {
			return nil, fmt.Errorf("convert: parameter %s %v has no counterpart in the source model", p.Name, p.Value.Shape)
		}
		copy(p.Value.Data, q.Value.Data)
	}
	if poly != nil {
		have := map[string]bool{}
		for _, s := range n.Sites() {
			have[s.Name] = true
		}
		pc := &model.PolyConfig{Fit: poly.Fit}
		for _, s := range poly.Specs {
			if have[s.Site] {
				pc.Specs = append(pc.Specs, s)
			}
		}
		if err := n.InstallPoly(pc.Specs); err != nil {
			return nil, fmt.Errorf("convert: %w", err)
		}
		n.Cfg.Poly = pc
	}
	return n, nil
}

// PreLNToRMSNorm returns a model with RMSNorm in place of every LayerNorm
// that computes the same function as m, a Pre-LN model (placement pre or
// lns). The residual stream is made zero-mean everywhere: every row of the
// token (or patch projection) and positional embeddings is re-centred, and
// the output projections of every residual branch (attention output, FFN
// down) are made zero-mean (W C, b - mean b with C = I - 11^T/D). On a
// zero-mean stream LayerNorm's mean is 0, so LayerNorm equals RMSNorm
// exactly; the LayerNorm gain and bias are folded into the linear layer
// that follows each norm (QKV, FFN up, head) and the RMSNorm gains are 1.
// The result has no mean computation left. Polynomial specs carry over:
// the inverse square roots see the same inputs.
func PreLNToRMSNorm(m *model.Model) (*model.Model, error) {
	cfg := m.Cfg
	no := cfg.NormOpts()
	if cfg.Norm != norm.MethodLayerNorm {
		return nil, fmt.Errorf("convert: model norm is %q, want layernorm", cfg.Norm)
	}
	if no.Placement != norm.PlacePre && no.Placement != norm.PlaceLNScaling {
		return nil, fmt.Errorf("convert: placement %q: only pre-norm (pre, lns) models convert exactly (a post norm's output is the residual stream itself)", no.Placement)
	}
	cfg.Norm = norm.MethodRMSNorm
	n, err := rebuild(m, cfg)
	if err != nil {
		return nil, err
	}
	if n.Embed != nil {
		norm.CenterTable(n.Embed.Table)
	} else {
		norm.CenterOutputs(n.Patch.Proj)
	}
	norm.CenterTable(n.Pos.Table)
	type pair struct {
		ln    nn.Norm
		rms   nn.Norm
		next  *nn.Linear
		scale float64
	}
	var pairs []pair
	for l, b := range n.Blocks {
		norm.CenterOutputs(b.Attn.Out)
		norm.CenterOutputs(b.FFN.Down)
		ob := m.Blocks[l]
		k := b.NormScale
		if k == 0 {
			k = 1
		}
		pairs = append(pairs, pair{ob.Norm1, b.Norm1, b.Attn.QKV, k}, pair{ob.Norm2, b.Norm2, b.FFN.Up, k})
	}
	pairs = append(pairs, pair{m.FinalNorm, n.FinalNorm, n.Head, 1})
	for _, p := range pairs {
		ln, ok := p.ln.(*norm.LayerNorm)
		if !ok {
			return nil, fmt.Errorf("convert: norm of method %s is not a LayerNorm", p.ln.Method())
		}
		rms, ok := p.rms.(*norm.RMSNorm)
		if !ok {
			return nil, fmt.Errorf("convert: norm of method %s is not an RMSNorm", p.rms.Method())
		}
		// the block multiplies the norm output by scale before the linear:
		// scale (g xhat + b) W + c = (scale xhat) diag(g) W + scale b W + c
		f := norm.AffineForm{Scale: append([]float64(nil), ln.Gain.Value.Data...), Shift: make([]float64, ln.Dim)}
		for j, v := range ln.Bias.Value.Data {
			f.Shift[j] = p.scale * v
		}
		if err := norm.FoldIntoLinear(f, p.next); err != nil {
			return nil, fmt.Errorf("convert: %w", err)
		}
		for _, g := range rms.Params() {
			for i := range g.Value.Data {
				g.Value.Data[i] = 1
			}
		}
	}
	return n, nil
}

// ErrNotFoldable is wrapped by Fold when a norm has no exact affine inference form.
var ErrNotFoldable = errors.New("norm does not fold")

// Fold returns a model with norm method none that computes the same function
// as m at inference: every norm's inference form (an affine map, see
// norm.Foldable) is folded into the linear layer that consumes it (QKV,
// FFN up, head through the mean pool), including the LayerNorm-Scaling
// factor; for weight-side methods the materialized weights are copied. It
// needs a pre-norm placement (pre or lns): a post or peri norm acts on the
// residual stream, which no single linear layer consumes. LayerNorm,
// RMSNorm, PRepBN before lambda reaches 0 and PowerNorm with group scaling
// do not fold (errors wrap ErrNotFoldable).
func Fold(m *model.Model) (*model.Model, error) {
	cfg := m.Cfg
	no := cfg.NormOpts()
	if no.Placement != norm.PlacePre && no.Placement != norm.PlaceLNScaling {
		return nil, fmt.Errorf("convert: fold: placement %q: %w (only pre-norm placements fold into one linear layer)", no.Placement, ErrNotFoldable)
	}
	m.Materialize()
	type pair struct {
		norm  nn.Norm
		next  *nn.Linear
		scale float64
	}
	cfg.Norm = norm.MethodNone
	cfg.NormOptions = nil
	n, err := rebuild(m, cfg)
	if err != nil {
		return nil, err
	}
	var pairs []pair
	for l, b := range m.Blocks {
		k := b.NormScale
		if k == 0 {
			k = 1
		}
		nb := n.Blocks[l]
		pairs = append(pairs, pair{b.Norm1, nb.Attn.QKV, k}, pair{b.Norm2, nb.FFN.Up, k})
	}
	pairs = append(pairs, pair{m.FinalNorm, n.Head, 1})
	for _, p := range pairs {
		if p.norm.Method() == norm.MethodNone {
			if p.scale != 1 {
				one := norm.AffineForm{Scale: make([]float64, p.next.In), Shift: make([]float64, p.next.In)}
				for j := range one.Scale {
					one.Scale[j] = 1
				}
				if err := norm.FoldIntoLinear(one.Scaled(p.scale), p.next); err != nil {
					return nil, fmt.Errorf("convert: fold: %w", err)
				}
			}
			continue
		}
		f, ok := p.norm.(norm.Foldable)
		if !ok {
			return nil, fmt.Errorf("convert: fold: %s: %w (a per-token inverse square root)", p.norm.Method(), ErrNotFoldable)
		}
		a, err := f.Affine()
		if err != nil {
			return nil, fmt.Errorf("convert: fold: %w: %w", ErrNotFoldable, err)
		}
		if err := norm.FoldIntoLinear(a.Scaled(p.scale), p.next); err != nil {
			return nil, fmt.Errorf("convert: fold: %w", err)
		}
	}
	return n, nil
}
