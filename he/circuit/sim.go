package circuit

import (
	"errors"
	"fmt"
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
	// Bootstrap, when non-nil, adds the error of a real bootstrap to the
	// value of every bootstrap op: the model's systematic error for that
	// value and the op's pre-scale (Op.Const), and uniform noise in
	// ±RandomBound/s with one random sign pattern over the slots shared by
	// all bootstraps of the run (see BootstrapModel).
	Bootstrap *BootstrapModel
	// BootstrapParts selects the parts of the bootstrap error that are
	// added (0: both).
	BootstrapParts BootstrapPart
	// Seed seeds the noise.
	Seed uint64
}

// Simulate executes the circuit in float64 on the slot vector of one batch
// of inputs (Layout.InputSlots() values made by EncodeImages or
// EncodeBytes: its token blocks' ciphertexts one after the other) and
// returns the result slot vector (Layout.OutputSlots() values: the output
// ops' ciphertexts one after the other) and the kept values (one
// ciphertext's Layout.Slots() values each). Bootstrap and match-scale ops
// are the identity. It executes exactly the op graph that Execute
// evaluates under encryption, with the same packing and polynomials.
func (c *Circuit) Simulate(input []float64, opt SimOptions) ([]float64, Values, error) {
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	S := c.Layout.Slots()
	if len(input) != c.Layout.InputSlots() {
		return nil, nil, fmt.Errorf("simulate: input has %d slots, layout has %d (%d token blocks of %d)", len(input), c.Layout.InputSlots(), c.Layout.NumTokenBlocks(), S)
	}
	uses := make([]int, len(c.Ops))
	for _, op := range c.Ops {
		for _, in := range op.In {
			uses[in]++
		}
	}
	var rng *rand.Rand
	if opt.Noise > 0 || opt.Bootstrap != nil {
		rng = rand.New(rand.NewPCG(opt.Seed, 77))
	}
	vals := make([][]float64, len(c.Ops))
	var btpSigns []float64
	kept := Values{}
	var out []float64
	for id, op := range c.Ops {
		var block []float64
		if op.Kind == KindInput { // input op id reads token block id
			block = input[id*S : (id+1)*S]
		}
		v, err := c.simOp(op, vals, block)
		if err != nil {
			return nil, nil, fmt.Errorf("simulate op %d (%s, %s): %w", id, op.Kind, op.Label, err)
		}
		if rng != nil && opt.Noise > 0 && opTable[op.Kind].Noise {
			v = append([]float64(nil), v...)
			for i := range v {
				v[i] += opt.Noise * (2*rng.Float64() - 1)
			}
		}
		if opt.Bootstrap != nil && op.Kind == KindBootstrap {
			parts := opt.BootstrapParts
			if parts == 0 {
				parts = BootstrapSystematic | BootstrapRandom
			}
			var signs []float64
			if parts&BootstrapRandom != 0 {
				if btpSigns == nil { // one pattern for all bootstraps of this run
					btpSigns = make([]float64, S)
					for i := range btpSigns {
						btpSigns[i] = float64(2*rng.IntN(2) - 1)
					}
				}
				signs = btpSigns
			}
			if v, err = opt.Bootstrap.apply(v, op.Const, parts&BootstrapSystematic != 0, signs); err != nil {
				return nil, nil, fmt.Errorf("simulate op %d (%s, %s): %w", id, op.Kind, op.Label, err)
			}
		}
		vals[id] = v
		if opt.Keep != nil && opt.Keep(id) {
			kept[id] = v
		}
		if op.Kind == KindOutput {
			out = append(out, v...)
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
		t := (s / R) % L.BlockTokens()
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
			blk = m.Blocks[(k/L.Batch)%L.BlockTokens()]
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
