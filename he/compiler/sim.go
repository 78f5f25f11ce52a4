package compiler

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// Values holds the plaintext value of some ops of one simulated ciphertext,
// keyed by op id.
type Values map[int][]float64

// SimOptions control Simulate.
type SimOptions struct {
	// Keep selects the op ids whose values are returned (nil: none besides the output).
	Keep func(id int) bool
	// Noise, when > 0, adds uniform noise in [-Noise, Noise] to the result of
	// every op that rescales or switches keys, a crude model of CKKS noise
	// used to predict the output precision.
	Noise float64
	// BootstrapNoise, when > 0, adds uniform noise in [-e, e] to every slot
	// after every bootstrap op, with e = BootstrapNoise·max(1, m)² and m the
	// largest magnitude in the ciphertext (bootstrapping works on the
	// coefficients, which mix all slots; its error grows with the message).
	BootstrapNoise float64
	// Seed seeds the noise.
	Seed uint64
}

// Simulate executes the circuit in float64 on one virtual ciphertext (the
// slot vector of Layout.Slots() values made by EncodeImages) and returns the
// output slot vector and the kept values. Bootstrap and match-scale ops are
// the identity. It executes exactly the op graph that Execute evaluates
// under encryption, with the same packing and polynomials.
func (c *Circuit) Simulate(input []float64, opt SimOptions) ([]float64, Values, error) {
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	S := c.Layout.Slots()
	if len(input) != S {
		return nil, nil, fmt.Errorf("simulate: input has %d slots, layout has %d", len(input), S)
	}
	uses := make([]int, len(c.Ops))
	for _, op := range c.Ops {
		for _, in := range op.In {
			uses[in]++
		}
	}
	var rng *rand.Rand
	if opt.Noise > 0 || opt.BootstrapNoise > 0 {
		rng = rand.New(rand.NewPCG(opt.Seed, 77))
	}
	vals := make([][]float64, len(c.Ops))
	kept := Values{}
	var out []float64
	for id, op := range c.Ops {
		v, err := c.simOp(op, vals, input)
		if err != nil {
			return nil, nil, fmt.Errorf("simulate op %d (%s, %s): %w", id, op.Kind, op.Label, err)
		}
		if rng != nil && opt.Noise > 0 && (levelsOf(op) > 0 || op.Kind == KindRotate || op.Kind == KindRotSum) {
			v = append([]float64(nil), v...)
			for i := range v {
				v[i] += opt.Noise * (2*rng.Float64() - 1)
			}
		}
		if rng != nil && opt.BootstrapNoise > 0 && op.Kind == KindBootstrap {
			v = append([]float64(nil), v...)
			m := 1.0
			for _, x := range v {
				m = math.Max(m, math.Abs(x))
			}
			for i := range v {
				v[i] += opt.BootstrapNoise * m * m * (2*rng.Float64() - 1)
			}
		}
		vals[id] = v
		if opt.Keep != nil && opt.Keep(id) {
			kept[id] = v
		}
		if op.Kind == KindOutput {
			out = v
		}
		for _, in := range op.In {
			if uses[in]--; uses[in] == 0 {
				vals[in] = nil
			}
		}
	}
	if out == nil {
		return nil, nil, errors.New("simulate: no output")
	}
	return out, kept, nil
}

func (c *Circuit) expand(p []float64) []float64 {
	L := c.Layout
	S := L.Slots()
	v := make([]float64, S)
	R := L.RowStride()
	for s := range v {
		t := (s / R) % L.Tokens
		v[s] = p[t*L.Block+s%L.Block]
	}
	return v
}

func rotate(x []float64, k int) []float64 {
	n := len(x)
	k %= n
	if k < 0 {
		k += n
	}
	y := make([]float64, n)
	copy(y, x[k:])
	copy(y[n-k:], x[:k])
	return y
}

func (c *Circuit) simOp(op Op, vals [][]float64, input []float64) ([]float64, error) {
	in := func(i int) []float64 { return vals[op.In[i]] }
	zip := func(a, b []float64, f func(x, y float64) float64) []float64 {
		y := make([]float64, len(a))
		for i := range a {
			y[i] = f(a[i], b[i])
		}
		return y
	}
	switch op.Kind {
	case KindInput:
		return append([]float64(nil), input...), nil
	case KindLinear:
		return c.applyLinear(c.Mats[op.Mat], in(0)), nil
	case KindAdd:
		return zip(in(0), in(1), func(x, y float64) float64 { return x + y }), nil
	case KindSub:
		return zip(in(0), in(1), func(x, y float64) float64 { return x - y }), nil
	case KindAddPlain:
		return zip(in(0), c.expand(c.Vecs[op.Vec]), func(x, y float64) float64 { return x + y }), nil
	case KindMulPlain:
		return zip(in(0), c.expand(c.Vecs[op.Vec]), func(x, y float64) float64 { return x * y }), nil
	case KindAddConst:
		return zip(in(0), in(0), func(x, _ float64) float64 { return x + op.Const }), nil
	case KindMulConst:
		return zip(in(0), in(0), func(x, _ float64) float64 { return x * op.Const }), nil
	case KindMul:
		return zip(in(0), in(1), func(x, y float64) float64 { return x * y }), nil
	case KindRotate:
		return rotate(in(0), op.Rot[0]), nil
	case KindRotSum:
		x := in(0)
		for _, k := range op.Rot {
			x = zip(x, rotate(x, k), func(a, b float64) float64 { return a + b })
		}
		return x, nil
	case KindPoly:
		x := in(0)
		y := make([]float64, len(x))
		for i, v := range x {
			y[i] = op.Poly.Evaluate(v)
		}
		return y, nil
	case KindBootstrap, KindMatchScale, KindDropLevel, KindOutput:
		return in(0), nil
	}
	return nil, fmt.Errorf("unknown op kind %q", op.Kind)
}

func (c *Circuit) applyLinear(m Matrix, x []float64) []float64 {
	L := c.Layout
	D := L.Block
	y := make([]float64, len(x))
	for k := 0; k < len(x)/D; k++ {
		blk := m.Blocks[0]
		if len(m.Blocks) > 1 {
			blk = m.Blocks[(k/L.Batch)%L.Tokens]
		}
		xs := x[k*D : (k+1)*D]
		for i := 0; i < D; i++ {
			row := blk[i*D : (i+1)*D]
			var s float64
			for j, w := range row {
				s += w * xs[j]
			}
			y[k*D+i] = s
		}
	}
	return y
}

// imageDims returns the patch size of the image task the circuit was compiled for.
func imageDims(c *Circuit) (patch int, err error) {
	p := int(math.Round(math.Sqrt(float64(c.Layout.InputWidth))))
	if p*p != c.Layout.InputWidth {
		return 0, fmt.Errorf("input width %d is not a square patch", c.Layout.InputWidth)
	}
	return p, nil
}

// EncodeImages packs n images (rows×cols pixels each, row-major, n*rows*cols
// values) into ceil(n/Batch) virtual ciphertext slot vectors: token t of
// image b gets the pixels of patch t (row-major patch order, row-major
// pixels in a patch) in channels 0..patch²-1. Missing images of the last
// ciphertext are zero. This is all the client computes: the embedding is
// applied by the server.
func (c *Circuit) EncodeImages(pixels []float64, n, rows, cols int) ([][]float64, error) {
	if c.Task != "mnist" {
		return nil, fmt.Errorf("encode images: circuit is for task %q", c.Task)
	}
	P, err := imageDims(c)
	if err != nil {
		return nil, err
	}
	L := c.Layout
	if n < 1 || rows <= 0 || cols <= 0 || rows%P != 0 || cols%P != 0 || (rows/P)*(cols/P) != L.Tokens {
		return nil, fmt.Errorf("encode images: %d images of %dx%d do not make %d patches of %dx%d", n, rows, cols, L.Tokens, P, P)
	}
	if len(pixels) != n*rows*cols {
		return nil, fmt.Errorf("encode images: %d pixels for %d images of %dx%d", len(pixels), n, rows, cols)
	}
	for i, v := range pixels {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("encode images: pixel %d is %g", i, v)
		}
	}
	pw := cols / P
	nct := (n + L.Batch - 1) / L.Batch
	out := make([][]float64, nct)
	for k := range out {
		out[k] = make([]float64, L.Slots())
	}
	for i := 0; i < n; i++ {
		v := out[i/L.Batch]
		b := i % L.Batch
		img := pixels[i*rows*cols:]
		for t := 0; t < L.Tokens; t++ {
			ty, tx := t/pw, t%pw
			for dy := 0; dy < P; dy++ {
				for dx := 0; dx < P; dx++ {
					v[L.Slot(t, b, dy*P+dx)] = img[(ty*P+dy)*cols+tx*P+dx]
				}
			}
		}
	}
	return out, nil
}

// EncodeBytes packs n byte sequences of length seqLen (ids row-major, each
// in [0, 256)) as one-hot vectors into ceil(n/Batch) virtual ciphertext slot
// vectors: token t of sequence b has a 1 in channel ids[b*seqLen+t].
// Sequences shorter than the context are padded with zero vectors at the
// end; causal attention makes the results of the real tokens exact.
func (c *Circuit) EncodeBytes(ids []int, n, seqLen int) ([][]float64, error) {
	if c.Task != "text" {
		return nil, fmt.Errorf("encode bytes: circuit is for task %q", c.Task)
	}
	L := c.Layout
	if n < 1 || seqLen < 1 || seqLen > L.Tokens {
		return nil, fmt.Errorf("encode bytes: %d sequences of length %d (context %d)", n, seqLen, L.Tokens)
	}
	if len(ids) != n*seqLen {
		return nil, fmt.Errorf("encode bytes: %d ids for %d sequences of length %d", len(ids), n, seqLen)
	}
	out := make([][]float64, (n+L.Batch-1)/L.Batch)
	for k := range out {
		out[k] = make([]float64, L.Slots())
	}
	for i := 0; i < n; i++ {
		for t := 0; t < seqLen; t++ {
			id := ids[i*seqLen+t]
			if id < 0 || id >= L.InputWidth {
				return nil, fmt.Errorf("encode bytes: id %d outside [0, %d)", id, L.InputWidth)
			}
			out[i/L.Batch][L.Slot(t, i%L.Batch, id)] = 1
		}
	}
	return out, nil
}

// DecodeLogits extracts the per-input results from output slot vectors (as
// simulated, or decrypted: only the first Layout.Slots() values are read):
// for each of n inputs, OutputTokens×Outputs values, token-major
// (classifier: the logits of token 0; LM: the next-byte logits of every
// token).
func (c *Circuit) DecodeLogits(outs [][]float64, n int) ([][]float64, error) {
	L := c.Layout
	if n < 0 || n > len(outs)*L.Batch {
		return nil, fmt.Errorf("decode: %d inputs from %d ciphertexts of %d", n, len(outs), L.Batch)
	}
	res := make([][]float64, n)
	for i := range res {
		v := outs[i/L.Batch]
		if len(v) < L.Slots() {
			return nil, fmt.Errorf("decode: output %d has %d slots, want >= %d", i/L.Batch, len(v), L.Slots())
		}
		res[i] = make([]float64, L.OutputTokens*L.Outputs)
		for t := 0; t < L.OutputTokens; t++ {
			for j := 0; j < L.Outputs; j++ {
				res[i][t*L.Outputs+j] = v[L.Slot(t, i%L.Batch, j)]
			}
		}
	}
	return res, nil
}
