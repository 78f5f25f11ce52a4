package circuit

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/tuneinsight/lattigo/v5/he/hefloat"

	"github.com/polyformer/polyformer/he"
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
	if opt.Noise > 0 || opt.Bootstrap != nil {
		rng = rand.New(rand.NewPCG(opt.Seed, 77))
	}
	vals := make([][]float64, len(c.Ops))
	var btpSigns []float64
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

// BootstrapModel predicts the error a real (Lattigo) bootstrap adds to a
// ciphertext, from the bootstrapping parameters. Two parts:
//
//   - Systematic: Lattigo's EvalMod replaces each plaintext coefficient c (in
//     message units) by 2^R·sin(2π·c·2^-R)/(2π) (with R = LogMessageRatio;
//     the arcsine correction when Mod1InvDegree > 0), a cubic error of about
//     (2π)²·2^-2R·c³/6 per coefficient. The coefficients are the inverse
//     canonical embedding of the slots, so the error depends on the whole
//     slot vector: spread values have small coefficients and little error,
//     while a nearly constant vector puts its mean in coefficient 0 (a
//     vector of ones loses 2^-13.3 at R = 8). The model computes it exactly
//     with Lattigo's encoding FFT.
//   - Random: the rest (DFT rounding, sine-approximation and key-switch
//     noise), bounded by Floor whatever the message (measured: the same
//     for U[-1,1] and U[-8,8]). The simulator adds ±Floor per slot with
//     one random sign pattern shared by all bootstraps of a run: the
//     worst case where successive bootstraps add their errors coherently
//     (independent errors would add as √n). Floor = 2^(R + logN/2 - 39.8)
//     (the usual √N growth of rounding noise, times the message ratio
//     through which EvalMod's errors reach the message): the largest
//     measured random errors were 2^-22.5 at test-boot-n13 (R = 11,
//     logN = 13; Floor 2^-22.3) and 2^-24.6 at n16-boot (R = 8,
//     logN = 16; Floor 2^-23.8), see
//     benchmarks/compiler/bootstrap-precision.md.
//
// The model assumes inputs at the bootstrapper's exact input scale, as
// Execute makes them (see bootstrapScaled).
//
// A bootstrap op with Const = s in (0, 1) (set by Plan) scales the message
// by s before the bootstrap and by 1/s after it: the systematic error
// shrinks by s² relative to the message, the random part grows by 1/s.
// A BootstrapModel is not safe for concurrent use.
type BootstrapModel struct {
	logSlots int
	ratio    float64 // 2^R
	invDeg   int     // arcsine Taylor degree (0: none)
	floor    float64
	ecd      *hefloat.Encoder
	buf      []complex128
}

// bootstrapFloorLog2Base is the fitted constant of the random bootstrap
// error: Floor = 2^(R + logN/2 - bootstrapFloorLog2Base).
const bootstrapFloorLog2Base = 39.8

// NewBootstrapModel returns the error model of p's bootstrapping circuit.
func NewBootstrapModel(p *he.Parameters) (*BootstrapModel, error) {
	if p == nil || !p.HasBootstrapping() {
		return nil, errors.New("bootstrap model: parameters have no bootstrapping")
	}
	bp := p.BootstrappingParameters()
	lit := bp.Mod1ParametersLiteral
	hp := p.HE()
	logSlots := hp.LogMaxSlots()
	r := float64(lit.LogMessageRatio)
	return &BootstrapModel{
		logSlots: logSlots,
		ratio:    math.Exp2(r),
		invDeg:   lit.Mod1InvDegree,
		floor:    math.Exp2(r + float64(hp.LogN())/2 - bootstrapFloorLog2Base),
		ecd:      hefloat.NewEncoder(hp),
		buf:      make([]complex128, 1<<logSlots),
	}, nil
}

// Floor returns the amplitude of the random part of the bootstrap error
// (message units, for a message not scaled before the bootstrap).
func (m *BootstrapModel) Floor() float64 { return m.floor }

// mod1 is what EvalMod computes for a coefficient c (message units).
func (m *BootstrapModel) mod1(c float64) float64 {
	t := math.Sin(2 * math.Pi * c / m.ratio)
	if m.invDeg > 0 {
		// Lattigo's arcsine Taylor series: sum_k (2k)!/(4^k (k!)^2 (2k+1)) t^(2k+1)
		sum, coef, pow := 0.0, 1.0, t
		for k := 0; 2*k+1 <= m.invDeg; k++ {
			sum += coef / float64(2*k+1) * pow
			coef *= float64((2*k+1)*(2*k+2)) / float64(4*(k+1)*(k+1))
			pow *= t * t
		}
		t = sum
	}
	return m.ratio * t / (2 * math.Pi)
}

// Systematic returns the systematic slot error of bootstrapping the
// virtual slot vector v (replicated over all slots of the parameters)
// scaled by s before and by 1/s after the bootstrap.
func (m *BootstrapModel) Systematic(v []float64, s float64) ([]float64, error) {
	n := len(m.buf)
	if len(v) == 0 || n%len(v) != 0 {
		return nil, fmt.Errorf("bootstrap model: %d values do not tile %d slots", len(v), n)
	}
	if !(s > 0) {
		s = 1
	}
	for i := range m.buf {
		m.buf[i] = complex(s*v[i%len(v)], 0)
	}
	if err := m.ecd.IFFT(m.buf, m.logSlots); err != nil {
		return nil, fmt.Errorf("bootstrap model: %w", err)
	}
	for i, c := range m.buf {
		re, im := real(c), imag(c)
		m.buf[i] = complex(m.mod1(re)-re, m.mod1(im)-im)
	}
	if err := m.ecd.FFT(m.buf, m.logSlots); err != nil {
		return nil, fmt.Errorf("bootstrap model: %w", err)
	}
	out := make([]float64, len(v))
	for i := range out {
		out[i] = real(m.buf[i]) / s
	}
	return out, nil
}

// RandomBound returns the bound of the random part of the error of
// bootstrapping a message of largest magnitude mag (after any
// pre-scaling). Measured, it does not depend on the message (U[-1,1] and
// U[-8,8] gave the same): it is Floor.
func (m *BootstrapModel) RandomBound(mag float64) float64 { return m.floor }

// BootstrapPart selects parts of the modeled bootstrap error.
type BootstrapPart int

// The parts of the bootstrap error (see BootstrapModel).
const (
	BootstrapSystematic BootstrapPart = 1 << iota // the modular reduction's deterministic error
	BootstrapRandom                               // uniform noise of the measured floor
)

// apply returns v plus the modeled error of bootstrapping it with
// pre-scale s (0: none): the systematic error if sys, and, with signs (±1
// per slot), the random part at its bound with those signs.
func (m *BootstrapModel) apply(v []float64, s float64, sys bool, signs []float64) ([]float64, error) {
	if s == 0 {
		s = 1
	}
	e := make([]float64, len(v))
	if sys {
		var err error
		if e, err = m.Systematic(v, s); err != nil {
			return nil, err
		}
	}
	mag := 0.0
	for _, x := range v {
		mag = math.Max(mag, math.Abs(x))
	}
	r := m.RandomBound(mag*s) / s
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = x + e[i]
		if signs != nil {
			out[i] += r * signs[i]
		}
	}
	return out, nil
}

// UnitPreScale returns the pre-scale 2^-k (k >= 0) that minimizes the
// modeled error of bootstrapping a vector of ones, the worst case for a
// message of magnitude 1 (its mean lands in one coefficient): about
// argmin_s A·s² + Floor/s with A the systematic error at s = 1. Plan uses
// it for every real bootstrap.
func (m *BootstrapModel) UnitPreScale() float64 {
	best, bestErr := 1.0, math.Inf(1)
	for k := 0; k <= 12; k++ {
		s := math.Exp2(-float64(k))
		e := math.Abs(m.mod1(s)-s)/s + m.floor/s
		if e < bestErr {
			best, bestErr = s, e
		}
	}
	return best
}
