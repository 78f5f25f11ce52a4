package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Linear is y = x W + b on the last dimension: W is [In, Out], b is [Out].
type Linear struct {
	In, Out int
	W, B    *Param
	x       *Tensor
}

// NewLinear returns a linear layer with weights N(0, 1/In) and zero bias.
// Parameters are named name+".weight" and name+".bias".
func NewLinear(name string, in, out int, rng *rand.Rand) *Linear {
	l := &Linear{In: in, Out: out, W: NewParam(name+".weight", in, out), B: NewParam(name+".bias", out)}
	l.W.Value.FillNormal(rng, 1/math.Sqrt(float64(in)))
	l.B.NoDecay = true
	return l
}

// Forward computes x W + b for x of shape [..., In].
func (l *Linear) Forward(x *Tensor) *Tensor {
	if x.Cols() != l.In {
		panic(fmt.Sprintf("nn: linear %s: input width %d, want %d", l.W.Name, x.Cols(), l.In))
	}
	l.x = x
	shape := append(append([]int(nil), x.Shape[:len(x.Shape)-1]...), l.Out)
	y := New(shape...)
	n := x.Rows()
	for i := 0; i < n; i++ {
		copy(y.Data[i*l.Out:(i+1)*l.Out], l.B.Value.Data)
	}
	Gemm(false, false, n, l.Out, l.In, 1, x.Data, l.In, l.W.Value.Data, l.Out, 1, y.Data, l.Out)
	return y
}

// Backward accumulates dW = x^T dy and db = sum dy, and returns dy W^T.
func (l *Linear) Backward(dy *Tensor) *Tensor {
	n := l.x.Rows()
	Gemm(true, false, l.In, l.Out, n, 1, l.x.Data, l.In, dy.Data, l.Out, 1, l.W.Grad.Data, l.Out)
	gb := l.B.Grad.Data
	for i := 0; i < n; i++ {
		row := dy.Data[i*l.Out : (i+1)*l.Out]
		for j, v := range row {
			gb[j] += v
		}
	}
	dx := New(l.x.Shape...)
	Gemm(false, true, n, l.In, l.Out, 1, dy.Data, l.Out, l.W.Value.Data, l.Out, 0, dx.Data, l.In)
	return dx
}

// Params returns W and b.
func (l *Linear) Params() []*Param { return []*Param{l.W, l.B} }

// Embedding maps token ids to rows of a [Vocab, Dim] table.
type Embedding struct {
	Vocab, Dim int
	Table      *Param
	ids        []int
}

// NewEmbedding returns an embedding with N(0, 1/Dim) entries.
func NewEmbedding(name string, vocab, dim int, rng *rand.Rand) *Embedding {
	e := &Embedding{Vocab: vocab, Dim: dim, Table: NewParam(name+".weight", vocab, dim)}
	e.Table.Value.FillNormal(rng, 1/math.Sqrt(float64(dim)))
	return e
}

// ForwardIDs returns the embeddings of ids as a [B, T, Dim] tensor
// (len(ids) == B*T). It returns an error for an id outside [0, Vocab).
func (e *Embedding) ForwardIDs(ids []int, b, t int) (*Tensor, error) {
	if len(ids) != b*t {
		return nil, fmt.Errorf("embedding: %d ids for shape [%d, %d]", len(ids), b, t)
	}
	y := New(b, t, e.Dim)
	for i, id := range ids {
		if id < 0 || id >= e.Vocab {
			return nil, fmt.Errorf("embedding: token id %d outside vocabulary [0, %d)", id, e.Vocab)
		}
		copy(y.Data[i*e.Dim:(i+1)*e.Dim], e.Table.Value.Data[id*e.Dim:(id+1)*e.Dim])
	}
	e.ids = ids
	return y, nil
}

// Backward accumulates the gradient of the table rows used by the last ForwardIDs.
func (e *Embedding) Backward(dy *Tensor) {
	g := e.Table.Grad.Data
	for i, id := range e.ids {
		row := dy.Data[i*e.Dim : (i+1)*e.Dim]
		dst := g[id*e.Dim : (id+1)*e.Dim]
		for j, v := range row {
			dst[j] += v
		}
	}
}

// Params returns the table.
func (e *Embedding) Params() []*Param { return []*Param{e.Table} }

// PosEmbedding adds a learned [MaxLen, Dim] positional table to [B, T, Dim]
// inputs (T <= MaxLen).
type PosEmbedding struct {
	MaxLen, Dim int
	Table       *Param
}

// NewPosEmbedding returns a positional embedding with N(0, 0.02^2) entries.
func NewPosEmbedding(name string, maxLen, dim int, rng *rand.Rand) *PosEmbedding {
	p := &PosEmbedding{MaxLen: maxLen, Dim: dim, Table: NewParam(name+".weight", maxLen, dim)}
	p.Table.Value.FillNormal(rng, 0.02)
	p.Table.NoDecay = true
	return p
}

// Forward returns x + P[t] for each position t.
func (p *PosEmbedding) Forward(x *Tensor) *Tensor {
	t := x.Shape[len(x.Shape)-2]
	if t > p.MaxLen || x.Cols() != p.Dim {
		panic(fmt.Sprintf("nn: positional embedding %s: input %v exceeds [%d, %d]", p.Table.Name, x.Shape, p.MaxLen, p.Dim))
	}
	y := x.Clone()
	rows := x.Rows()
	for r := 0; r < rows; r++ {
		pos := r % t
		dst := y.Data[r*p.Dim : (r+1)*p.Dim]
		for j, v := range p.Table.Value.Data[pos*p.Dim : (pos+1)*p.Dim] {
			dst[j] += v
		}
	}
	return y
}

// Backward accumulates the table gradient and returns dy.
func (p *PosEmbedding) Backward(dy *Tensor) *Tensor {
	t := dy.Shape[len(dy.Shape)-2]
	rows := dy.Rows()
	for r := 0; r < rows; r++ {
		pos := r % t
		dst := p.Table.Grad.Data[pos*p.Dim : (pos+1)*p.Dim]
		for j, v := range dy.Data[r*p.Dim : (r+1)*p.Dim] {
			dst[j] += v
		}
	}
	return dy.Clone()
}

// Params returns the table.
func (p *PosEmbedding) Params() []*Param { return []*Param{p.Table} }

// PatchEmbedding cuts [B, H, W] single-channel images into non-overlapping
// Patch x Patch tiles (row-major tile order, row-major pixels inside a tile)
// and projects each to Dim: the output is [B, (H/Patch)*(W/Patch), Dim].
type PatchEmbedding struct {
	H, W, Patch, Dim int
	Proj             *Linear
}

// NewPatchEmbedding returns a patch embedding; H and W must be multiples of Patch.
func NewPatchEmbedding(name string, h, w, patch, dim int, rng *rand.Rand) (*PatchEmbedding, error) {
	if patch <= 0 || h%patch != 0 || w%patch != 0 {
		return nil, fmt.Errorf("patch embedding: image %dx%d is not divisible into %dx%d patches", h, w, patch, patch)
	}
	return &PatchEmbedding{H: h, W: w, Patch: patch, Dim: dim, Proj: NewLinear(name, patch*patch, dim, rng)}, nil
}

// Tokens is the number of patches per image.
func (p *PatchEmbedding) Tokens() int { return (p.H / p.Patch) * (p.W / p.Patch) }

func (p *PatchEmbedding) patchIndex(fn func(img, tok, k, pix int)) {
	ph, pw := p.H/p.Patch, p.W/p.Patch
	for ty := 0; ty < ph; ty++ {
		for tx := 0; tx < pw; tx++ {
			tok := ty*pw + tx
			for dy := 0; dy < p.Patch; dy++ {
				for dx := 0; dx < p.Patch; dx++ {
					fn(0, tok, dy*p.Patch+dx, (ty*p.Patch+dy)*p.W+tx*p.Patch+dx)
				}
			}
		}
	}
}

// Forward maps images [B, H, W] to patch tokens [B, Tokens, Dim].
func (p *PatchEmbedding) Forward(x *Tensor) *Tensor {
	b := x.Len() / (p.H * p.W)
	if b*p.H*p.W != x.Len() {
		panic(fmt.Sprintf("nn: patch embedding: input %v is not a batch of %dx%d images", x.Shape, p.H, p.W))
	}
	t, pp := p.Tokens(), p.Patch*p.Patch
	patches := New(b, t, pp)
	for i := 0; i < b; i++ {
		img := x.Data[i*p.H*p.W:]
		out := patches.Data[i*t*pp:]
		p.patchIndex(func(_, tok, k, pix int) { out[tok*pp+k] = img[pix] })
	}
	return p.Proj.Forward(patches)
}

// Backward accumulates the projection gradients and returns d(images).
func (p *PatchEmbedding) Backward(dy *Tensor) *Tensor {
	dp := p.Proj.Backward(dy)
	b := dp.Shape[0]
	t, pp := p.Tokens(), p.Patch*p.Patch
	dx := New(b, p.H, p.W)
	for i := 0; i < b; i++ {
		img := dx.Data[i*p.H*p.W:]
		in := dp.Data[i*t*pp:]
		p.patchIndex(func(_, tok, k, pix int) { img[pix] = in[tok*pp+k] })
	}
	return dx
}

// Params returns the projection parameters.
func (p *PatchEmbedding) Params() []*Param { return p.Proj.Params() }
