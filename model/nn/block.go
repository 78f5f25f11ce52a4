package nn

// Block is a pre-norm transformer block:
//
//	h   = x + Attn(Norm1(x))
//	out = h + FFN(Norm2(h))                         (plain residual)
//	out = Beta * h + (1/Alpha) * FFN(Norm2(h))      (scaled residual)
//
// The scaled residual with an activation-free FFN (activation "none") is the
// activation-free fused FFN X_out = beta X + (1/alpha) FFN(X) with learnable
// per-layer scalars Beta and Alpha (initialized to 1).
type Block struct {
	Norm1, Norm2 Norm
	Attn         *MultiHeadAttention
	FFN          *FFN
	Beta, Alpha  *Param

	h, f *Tensor
}

// NewBlock assembles a block; scaled adds the Beta and Alpha scalars named
// name+".beta" and name+".alpha".
func NewBlock(name string, norm1, norm2 Norm, attn *MultiHeadAttention, ffn *FFN, scaled bool) *Block {
	b := &Block{Norm1: norm1, Norm2: norm2, Attn: attn, FFN: ffn}
	if scaled {
		b.Beta, b.Alpha = NewParam(name+".beta", 1), NewParam(name+".alpha", 1)
		b.Beta.Value.Data[0], b.Alpha.Value.Data[0] = 1, 1
		b.Beta.NoDecay, b.Alpha.NoDecay = true, true
	}
	return b
}

// Forward applies the block.
func (b *Block) Forward(x *Tensor) *Tensor {
	a := b.Attn.Forward(b.Norm1.Forward(x))
	h := x.Clone()
	for i, v := range a.Data {
		h.Data[i] += v
	}
	b.h = h
	f := b.FFN.Forward(b.Norm2.Forward(h))
	b.f = f
	out := New(h.Shape...)
	if b.Beta == nil {
		for i, v := range h.Data {
			out.Data[i] = v + f.Data[i]
		}
		return out
	}
	beta, inv := b.Beta.Value.Data[0], 1/b.Alpha.Value.Data[0]
	for i, v := range h.Data {
		out.Data[i] = beta*v + inv*f.Data[i]
	}
	return out
}

// Backward back-propagates through the block.
func (b *Block) Backward(dy *Tensor) *Tensor {
	df := dy
	dh := dy.Clone()
	if b.Beta != nil {
		beta, alpha := b.Beta.Value.Data[0], b.Alpha.Value.Data[0]
		inv := 1 / alpha
		df = New(dy.Shape...)
		var gb, ga float64
		for i, g := range dy.Data {
			gb += g * b.h.Data[i]
			ga -= g * b.f.Data[i] / (alpha * alpha)
			df.Data[i] = g * inv
			dh.Data[i] = g * beta
		}
		b.Beta.Grad.Data[0] += gb
		b.Alpha.Grad.Data[0] += ga
	}
	g2 := b.Norm2.Backward(b.FFN.Backward(df))
	for i, v := range g2.Data {
		dh.Data[i] += v
	}
	g1 := b.Norm1.Backward(b.Attn.Backward(dh))
	dx := dh
	for i, v := range g1.Data {
		dx.Data[i] += v
	}
	return dx
}

// Params returns every parameter of the block.
func (b *Block) Params() []*Param {
	ps := append(append([]*Param(nil), b.Norm1.Params()...), b.Attn.Params()...)
	ps = append(append(ps, b.Norm2.Params()...), b.FFN.Params()...)
	if b.Beta != nil {
		ps = append(ps, b.Beta, b.Alpha)
	}
	return ps
}

// Sites returns the non-linearity sites of the norms, attention and FFN.
func (b *Block) Sites() []*Site {
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
