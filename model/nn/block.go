package nn

import (
	"fmt"
	"math"
)

// Norm placements of a block (Block.Placement).
const (
	PlacementPre  = "pre"  // x + F(N(x)) (default)
	PlacementPost = "post" // N(x + F(x))
	PlacementPeri = "peri" // x + N_out(F(N_in(x)))
)

// Trainable is implemented by layers whose forward differs between training
// (batch statistics) and inference (running statistics); the model switches
// them on for Model.Step only.
type Trainable interface {
	SetTraining(on bool)
}

// StepEnder is implemented by layers with state that advances once per
// training step (running statistics, schedules): EndStep runs after the
// backward pass of every training step.
type StepEnder interface {
	EndStep()
}

// BlockOptions select the norm placement of a block (zero value: pre-norm,
// no scaling).
type BlockOptions struct {
	// Placement is pre (or empty), post or peri.
	Placement string
	// Norm1Out and Norm2Out are the output norms of the peri placement.
	Norm1Out, Norm2Out Norm
	// NormScale multiplies the norm outputs feeding the sublayers in the pre
	// and peri placements (LayerNorm Scaling: 1/sqrt(layer index)); 0 means 1.
	NormScale float64
	// ResidScale multiplies the skip path of both residuals (DeepNorm
	// alpha); 0 means 1.
	ResidScale float64
}

// Block is a transformer block. With the default pre-norm placement:
//
//	h   = x + Attn(Norm1(x))
//	out = h + FFN(Norm2(h))                         (plain residual)
//	out = Beta * h + (1/Alpha) * FFN(Norm2(h))      (scaled residual)
//
// The scaled residual with an activation-free FFN (activation "none") is the
// activation-free fused FFN X_out = beta X + (1/alpha) FFN(X) with learnable
// per-layer scalars Beta and Alpha (initialized to 1).
//
// Other placements (NewBlockWith): post, h = Norm1(c x + Attn(x)) and
// out = Norm2(c h + FFN(h)); peri, h = c x + Norm1Out(Attn(Norm1(x))) and
// likewise for the FFN; c is ResidScale (DeepNorm) and the pre/peri norm
// outputs feeding a sublayer are multiplied by NormScale (LayerNorm
// Scaling). The scaled residual multiplies the skip path by Beta and the
// FFN branch by 1/Alpha in every placement.
type Block struct {
	Norm1, Norm2 Norm
	Attn         *MultiHeadAttention
	FFN          *FFN
	Beta, Alpha  *Param
	// Placement is pre (empty), post or peri; see BlockOptions for the rest.
	Placement          string
	Norm1Out, Norm2Out Norm
	NormScale          float64
	ResidScale         float64

	h, f *Tensor
}

// NewBlock assembles a pre-norm block; scaled adds the Beta and Alpha
// scalars named name+".beta" and name+".alpha".
func NewBlock(name string, norm1, norm2 Norm, attn *MultiHeadAttention, ffn *FFN, scaled bool) *Block {
	b := &Block{Norm1: norm1, Norm2: norm2, Attn: attn, FFN: ffn}
	if scaled {
		b.Beta, b.Alpha = NewParam(name+".beta", 1), NewParam(name+".alpha", 1)
		b.Beta.Value.Data[0], b.Alpha.Value.Data[0] = 1, 1
		b.Beta.NoDecay, b.Alpha.NoDecay = true, true
	}
	return b
}

// NewBlockWith assembles a block with the placement of o.
func NewBlockWith(name string, norm1, norm2 Norm, attn *MultiHeadAttention, ffn *FFN, scaled bool, o BlockOptions) (*Block, error) {
	b := NewBlock(name, norm1, norm2, attn, ffn, scaled)
	switch o.Placement {
	case "", PlacementPre, PlacementPost:
	case PlacementPeri:
		if o.Norm1Out == nil || o.Norm2Out == nil {
			return nil, fmt.Errorf("block %s: the peri placement needs output norms", name)
		}
	default:
		return nil, fmt.Errorf("block %s: unknown placement %q (want pre, post or peri)", name, o.Placement)
	}
	if o.NormScale < 0 || o.ResidScale < 0 || math.IsNaN(o.NormScale) || math.IsNaN(o.ResidScale) {
		return nil, fmt.Errorf("block %s: norm scale %g and residual scale %g must be >= 0", name, o.NormScale, o.ResidScale)
	}
	b.Placement, b.NormScale, b.ResidScale = o.Placement, o.NormScale, o.ResidScale
	if o.Placement == PlacementPeri {
		b.Norm1Out, b.Norm2Out = o.Norm1Out, o.Norm2Out
	}
	return b, nil
}

func (b *Block) post() bool { return b.Placement == PlacementPost }
func (b *Block) peri() bool { return b.Placement == PlacementPeri }

func scaleOr1(s float64) float64 {
	if s == 0 {
		return 1
	}
	return s
}

func scaled(t *Tensor, s float64) *Tensor {
	if s == 1 {
		return t
	}
	u := New(t.Shape...)
	for i, v := range t.Data {
		u.Data[i] = v * s
	}
	return u
}

// sublayerIn is the input of a sublayer: its norm (scaled) in pre/peri, x in post.
func (b *Block) sublayerIn(n Norm, x *Tensor) *Tensor {
	if b.post() {
		return x
	}
	return scaled(n.Forward(x), scaleOr1(b.NormScale))
}

// sublayerInBackward returns the gradient reaching x through sublayerIn.
func (b *Block) sublayerInBackward(n Norm, du *Tensor) *Tensor {
	if b.post() {
		return du
	}
	return n.Backward(scaled(du, scaleOr1(b.NormScale)))
}

// Forward applies the block.
func (b *Block) Forward(x *Tensor) *Tensor {
	c := scaleOr1(b.ResidScale)
	a := b.Attn.Forward(b.sublayerIn(b.Norm1, x))
	if b.peri() {
		a = b.Norm1Out.Forward(a)
	}
	h := scaled(x, c).Clone()
	for i, v := range a.Data {
		h.Data[i] += v
	}
	if b.post() {
		h = b.Norm1.Forward(h)
	}
	b.h = h
	f := b.FFN.Forward(b.sublayerIn(b.Norm2, h))
	if b.peri() {
		f = b.Norm2Out.Forward(f)
	}
	b.f = f
	out := New(h.Shape...)
	if b.Beta == nil {
		for i, v := range h.Data {
			out.Data[i] = c*v + f.Data[i]
		}
	} else {
		beta, inv := b.Beta.Value.Data[0], 1/b.Alpha.Value.Data[0]
		for i, v := range h.Data {
			out.Data[i] = beta*(c*v) + inv*f.Data[i]
		}
	}
	if b.post() {
		out = b.Norm2.Forward(out)
	}
	return out
}

// Backward back-propagates through the block.
func (b *Block) Backward(dy *Tensor) *Tensor {
	c := scaleOr1(b.ResidScale)
	if b.post() {
		dy = b.Norm2.Backward(dy)
	}
	df := dy
	dh := scaled(dy, c).Clone()
	if b.Beta != nil {
		beta, alpha := b.Beta.Value.Data[0], b.Alpha.Value.Data[0]
		inv := 1 / alpha
		df = New(dy.Shape...)
		var gb, ga float64
		for i, g := range dy.Data {
			gb += g * c * b.h.Data[i]
			ga -= g * b.f.Data[i] / (alpha * alpha)
			df.Data[i] = g * inv
			dh.Data[i] = g * c * beta
		}
		b.Beta.Grad.Data[0] += gb
		b.Alpha.Grad.Data[0] += ga
	}
	if b.peri() {
		df = b.Norm2Out.Backward(df)
	}
	g2 := b.sublayerInBackward(b.Norm2, b.FFN.Backward(df))
	for i, v := range g2.Data {
		dh.Data[i] += v
	}
	if b.post() {
		dh = b.Norm1.Backward(dh)
	}
	da := dh
	if b.peri() {
		da = b.Norm1Out.Backward(da)
	}
	g1 := b.sublayerInBackward(b.Norm1, b.Attn.Backward(da))
	dx := scaled(dh, c).Clone()
	for i, v := range g1.Data {
		dx.Data[i] += v
	}
	return dx
}

// Norms returns the block's norms (two, or four with the peri placement).
func (b *Block) Norms() []Norm {
	ns := []Norm{b.Norm1, b.Norm2}
	if b.Norm1Out != nil {
		ns = append(ns, b.Norm1Out, b.Norm2Out)
	}
	return ns
}

// Params returns every parameter of the block.
func (b *Block) Params() []*Param {
	ps := append(append([]*Param(nil), b.Norm1.Params()...), b.Attn.Params()...)
	ps = append(append(ps, b.Norm2.Params()...), b.FFN.Params()...)
	if b.Beta != nil {
		ps = append(ps, b.Beta, b.Alpha)
	}
	if b.Norm1Out != nil {
		ps = append(append(ps, b.Norm1Out.Params()...), b.Norm2Out.Params()...)
	}
	return ps
}

// Sites returns the non-linearity sites of the norms, attention and FFN.
func (b *Block) Sites() []*Site {
	if b.Norm1Out != nil {
		return CollectSites(b.Norm1, b.Attn, b.Norm1Out, b.Norm2, b.FFN, b.Norm2Out)
	}
	return CollectSites(b.Norm1, b.Attn, b.Norm2, b.FFN)
}

// MeanPool averages [B, T, D] over T to [B, D].
type MeanPool struct{ shape []int }

// Forward averages over tokens.
func (m *MeanPool) Forward(x *Tensor) *Tensor {
	m.shape = append(m.shape[:0], x.Shape...)
	b, t, d := x.Shape[0], x.Shape[1], x.Shape[2]
	y := New(b, d)
	for i := 0; i < b; i++ {
		for k := 0; k < t; k++ {
			row := x.Data[(i*t+k)*d : (i*t+k+1)*d]
			for j, v := range row {
				y.Data[i*d+j] += v / float64(t)
			}
		}
	}
	return y
}

// Backward spreads the gradient evenly over tokens.
func (m *MeanPool) Backward(dy *Tensor) *Tensor {
	b, t, d := m.shape[0], m.shape[1], m.shape[2]
	dx := New(m.shape...)
	for i := 0; i < b; i++ {
		for k := 0; k < t; k++ {
			for j := 0; j < d; j++ {
				dx.Data[(i*t+k)*d+j] = dy.Data[i*d+j] / float64(t)
			}
		}
	}
	return dx
}

// Params returns nothing.
func (m *MeanPool) Params() []*Param { return nil }

// Sequential chains modules.
type Sequential []Module

// Forward applies the modules in order.
func (s Sequential) Forward(x *Tensor) *Tensor {
	for _, m := range s {
		x = m.Forward(x)
	}
	return x
}

// Backward applies the modules' backward passes in reverse order.
func (s Sequential) Backward(dy *Tensor) *Tensor {
	for i := len(s) - 1; i >= 0; i-- {
		dy = s[i].Backward(dy)
	}
	return dy
}

// Params returns the parameters of every module.
func (s Sequential) Params() []*Param {
	var ps []*Param
	for _, m := range s {
		ps = append(ps, m.Params()...)
	}
	return ps
}

// Sites returns the sites of every module.
func (s Sequential) Sites() []*Site {
	ms := make([]any, len(s))
	for i, m := range s {
		ms[i] = m
	}
	return CollectSites(ms...)
}
