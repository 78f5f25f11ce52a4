package compiler

import (
	"errors"
	"fmt"
	"math"

	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/nn"
	"github.com/polyformer/polyformer/model/norm"
	"github.com/polyformer/polyformer/polyapprox"
)

// feed is a value whose true meaning is diag(G)·stored + Beta on the first
// Width channels (the affine map folded into the consumer's linear layer).
type feed struct {
	id   int
	g    []float64
	beta []float64
	// rep: the value is replicated with period builder.P over the token
	// block (the residual stream and its norms): a consumer reads channel c
	// from whichever copy keeps its diagonals in [0, P) (or [-P, 0)).
	rep bool
}

type builder struct {
	c          *circuit.Circuit
	m          *model.Model
	L          circuit.Layout
	d          int // model width
	dh         int // head width
	dhp        int // padded head width
	heads      int
	group      int
	causal     bool
	noPack     bool
	compact    bool // CompileOptions.CompactAttention
	legacyAttn bool // CompileOptions.LegacyPackedAttention
	maxCopies  int
	// P > 0: the residual stream is replicated with period P = nextpow2(width)
	// over the D channels of a token block (D >= 2P), so that a linear layer
	// reading it needs P diagonals (one cyclic window) instead of up to
	// 2P-1; its producers pay log2(D/P) rotations to replicate.
	P int
	// tb is the token block being lowered (the token-block split,
	// tokensplit.go): its rows are model tokens tb·Tb .. tb·Tb+Tb-1.
	tb int
	// shared: with a token-block split, the matrices ([0]) and patterns
	// ([1]) the blocks have in common are stored once (content hash -> ids).
	shared [2]map[uint64][]int
}

// inCol returns the input column (slot within the token block) from which
// output row row reads channel c of feed f: c itself, or, for a replicated
// feed, the copy of c in the window [row, row+P) (or [row-P, row) for the
// last rows), so that all rows use diagonals in [0, P) (or [-P, 0)).
func (b *builder) inCol(f feed, row, c int) int {
	if !f.rep || b.P == 0 {
		return c
	}
	P, D := b.P, b.L.Block
	if row+P <= D {
		j := c
		for j < row {
			j += P
		}
		return j
	}
	return c + ((row-1-c)/P)*P
}

// real reports whether channel c of a stream-shaped value holds a model
// channel (and not padding).
func (b *builder) real(c int) bool {
	if b.P > 0 {
		return c%b.P < b.d
	}
	return c < b.d
}

// replicate copies the first P channels of each token block (the rest must
// be zero) over the whole block: log2(D/P) rotations.
func (b *builder) replicate(label string, x int) int {
	if b.P == 0 {
		return x
	}
	var rots []int
	for s := b.P; s < b.L.Block; s <<= 1 {
		rots = append(rots, -s)
	}
	return b.op(circuit.Op{Kind: circuit.KindRotSum, In: []int{x}, Rot: rots, Label: label})
}

func (b *builder) op(o circuit.Op) int {
	o.Ref = -1
	b.c.Ops = append(b.c.Ops, o)
	return len(b.c.Ops) - 1
}

func (b *builder) vec(v []float64) int {
	if id, ok := b.sharedVec(v); ok {
		return id
	}
	b.c.Vecs = append(b.c.Vecs, v)
	return len(b.c.Vecs) - 1
}

func (b *builder) newGroup() int { b.group++; return b.group }

// pattern returns a zero Tb×D pattern (the rows of one token block).
func (b *builder) pattern() []float64 { return make([]float64, b.L.BlockTokens()*b.L.Block) }

// tok returns the model token of row t of the token block being lowered.
func (b *builder) tok(t int) int { return b.tb*b.L.BlockTokens() + t }

// mat adds a matrix whose blocks are built by fill(t, M): one block (t = 0)
// when perToken is false, else one per row of the token block being
// lowered, t its model token.
func (b *builder) mat(name string, perToken bool, fill func(t int, m []float64)) int {
	n := 1
	if perToken {
		n = b.L.BlockTokens()
	}
	mt := circuit.Matrix{Name: name, Blocks: make([][]float64, n)}
	D := b.L.Block
	for t := 0; t < n; t++ {
		mt.Blocks[t] = make([]float64, D*D)
		if perToken {
			fill(b.tok(t), mt.Blocks[t])
		} else {
			fill(0, mt.Blocks[t])
		}
	}
	if id, ok := b.sharedMat(mt); ok {
		return id
	}
	b.c.Mats = append(b.c.Mats, mt)
	return len(b.c.Mats) - 1
}

// linearFromModel returns the matrix of y = (diag(g) x + beta) W + bias as a
// D×D block M (out × in) with input channel map inMap and output channel map
// outMap, times outScale (per token t), and the bias pattern (per token).
func (b *builder) linearFromModel(name string, l *nn.Linear, colLo, cols int, f feed, inMap, outMap func(int) int,
	outScale func(t int) float64, perToken bool, biasExtra func(t, o int) float64) (int, []float64) {
	D := b.L.Block
	W := l.W.Value.Data
	out := l.Out
	id := b.mat(name, perToken, func(t int, m []float64) {
		s := outScale(t)
		for i := 0; i < l.In; i++ {
			for o := 0; o < cols; o++ {
				r := outMap(o)
				m[r*D+b.inCol(f, r, inMap(i))] = s * f.g[i] * W[i*out+colLo+o]
			}
		}
	})
	bias := b.pattern()
	for t := 0; t < b.L.BlockTokens(); t++ {
		s := outScale(b.tok(t))
		for o := 0; o < cols; o++ {
			v := l.B.Value.Data[colLo+o]
			for i := 0; i < l.In; i++ {
				v += f.beta[i] * W[i*out+colLo+o]
			}
			v *= s
			if biasExtra != nil {
				v += biasExtra(b.tok(t), o)
			}
			bias[t*D+outMap(o)] = v
		}
	}
	return id, bias
}

func ident(i int) int { return i }

// embed lowers the patch (or one-hot byte) embedding and the positional
// embedding: the client sends raw pixels or one-hot bytes only.
func (b *builder) embed(in int) (int, error) {
	m := b.m
	var lin *nn.Linear
	switch {
	case m.Patch != nil:
		lin = m.Patch.Proj
	case m.Embed != nil:
		// one-hot(id) · Table is a linear layer with weight Table [Vocab, Dim] and no bias
		lin = &nn.Linear{In: m.Embed.Vocab, Out: m.Embed.Dim, W: m.Embed.Table, B: nn.NewParam("embed.zero_bias", m.Embed.Dim)}
	default:
		return 0, errors.New("compile: model without patch or token embedding")
	}
	f := feed{g: ones(lin.In), beta: make([]float64, lin.In)}
	id, bias := b.linearFromModel("embed", lin, 0, lin.Out, f, ident, ident, func(int) float64 { return 1 }, false, nil)
	D := b.L.Block
	for t := 0; t < b.L.BlockTokens(); t++ {
		for j := 0; j < b.d; j++ {
			bias[t*D+j] += m.Pos.Table.Value.Data[b.tok(t)*b.d+j]
		}
	}
	x := b.op(circuit.Op{Kind: circuit.KindLinear, In: []int{in}, Mat: id, Label: "embed"})
	x = b.op(circuit.Op{Kind: circuit.KindAddPlain, In: []int{x}, Vec: b.vec(bias), Label: "embed"})
	return b.replicate("embed", x), nil
}

func ones(n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = 1
	}
	return v
}

func fill(n int, x float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = x
	}
	return v
}

// unitPoly returns the polynomial on [-1, 1] with the same coefficients and
// the affine map (scalar, constant) of its interval, to be folded into the
// producing linear layer.
func unitPoly(p polyapprox.Chebyshev) (polyapprox.Chebyshev, float64, float64) {
	s, c := p.Interval.ChangeOfBasis()
	return polyapprox.Chebyshev{Interval: polyapprox.Interval{A: -1, B: 1}, Coeffs: append([]float64(nil), p.Coeffs...)}, s, c
}

// norm lowers a normalization of the stream (stored x, true value sigma·x).
func (b *builder) norm(name string, n nn.Norm, x int, sigma float64) (feed, error) {
	d := b.d
	switch nm := n.(type) {
	case norm.None:
		return feed{id: x, g: fill(d, sigma), beta: make([]float64, d), rep: b.P > 0}, nil
	case *norm.LayerNorm:
		y, err := b.invSqrtNorm(name, x, sigma, nm.Eps, true, nm.Sites())
		if err != nil {
			return feed{}, err
		}
		g := make([]float64, d)
		beta := make([]float64, d)
		for j := range g {
			g[j] = sigma * nm.Gain.Value.Data[j]
			if nm.Bias != nil {
				beta[j] = nm.Bias.Value.Data[j]
			}
		}
		return feed{id: y, g: g, beta: beta, rep: b.P > 0}, nil
	case *norm.RMSNorm:
		y, err := b.invSqrtNorm(name, x, sigma, norm.DefaultEps, false, nm.Sites())
		if err != nil {
			return feed{}, err
		}
		gain := nm.Params()[0].Value.Data
		g := make([]float64, d)
		for j := range g {
			g[j] = sigma * gain[j]
		}
		return feed{id: y, g: g, beta: make([]float64, d), rep: b.P > 0}, nil
	}
	return feed{}, fmt.Errorf("compile: normalization %q (%T) is not supported", n.Method(), n)
}

// invSqrtNorm lowers y = xc · invsqrt(mean(xc²)·σ² + eps) with xc the
// (centered, when center) stored stream; it returns y (true norm output
// before gain/bias is σ·y). The Newton plan of the site is evaluated op by
// op: h = 0.5 v and the unit-interval argument of the initial guess are two
// hoisted linear transforms of xc², folding the 1/d mean, σ², eps, 0.5 and
// the change of basis.
func (b *builder) invSqrtNorm(name string, x int, sigma, eps float64, center bool, sites []*nn.Site) (int, error) {
	if len(sites) != 1 || sites[0].Spec() == nil {
		return 0, fmt.Errorf("compile: %s: norm without calibrated inverse square root", name)
	}
	spec := *sites[0].Spec()
	if spec.Method != polyapprox.PlanNewton {
		return 0, fmt.Errorf("compile: %s: inverse square root method %q, want newton", name, spec.Method)
	}
	plan, err := spec.Newton()
	if err != nil {
		return 0, fmt.Errorf("compile: %s: %w", name, err)
	}
	D, d := b.L.Block, b.d
	xc := x
	if center {
		sf := feed{rep: b.P > 0}
		id := b.mat(name+".center", false, func(_ int, m []float64) {
			for r := 0; r < D; r++ {
				if !b.real(r) || (b.P == 0 && r >= d) {
					continue
				}
				i := r
				if b.P > 0 {
					i = r % b.P
				}
				for j := 0; j < d; j++ {
					v := -1 / float64(d)
					if i == j {
						v++
					}
					m[r*D+b.inCol(sf, r, j)] = v
				}
			}
		})
		xc = b.op(circuit.Op{Kind: circuit.KindLinear, In: []int{x}, Mat: id, Label: name})
	}
	sq := b.op(circuit.Op{Kind: circuit.KindMul, In: []int{xc, xc}, Label: name})
	unit, scalar, constant := unitPoly(plan.Init)
	mid := 0.5 * (spec.Interval[0] + spec.Interval[1])
	sf := feed{rep: b.P > 0}
	meanMat := func(f float64) func(int, []float64) {
		return func(_ int, m []float64) {
			for r := 0; r < D; r++ {
				if !b.real(r) {
					continue
				}
				for j := 0; j < d; j++ {
					m[r*D+b.inCol(sf, r, j)] = f * sigma * sigma / float64(d)
				}
			}
		}
	}
	g := b.newGroup()
	hm := b.mat(name+".half_var", false, meanMat(0.5))
	um := b.mat(name+".var_unit", false, meanMat(scalar))
	h := b.op(circuit.Op{Kind: circuit.KindLinear, In: []int{sq}, Mat: hm, Group: g, Label: name})
	u := b.op(circuit.Op{Kind: circuit.KindLinear, In: []int{sq}, Mat: um, Group: g, Label: name})
	hv, uv := b.pattern(), b.pattern()
	for t := 0; t < b.L.BlockTokens(); t++ {
		for c := 0; c < D; c++ {
			e := eps
			if !b.real(c) {
				e = mid // padded channels: keep the plan inside its interval (y there is multiplied by 0)
			}
			hv[t*D+c] = 0.5 * e
			uv[t*D+c] = scalar*e + constant
		}
	}
	h = b.op(circuit.Op{Kind: circuit.KindAddPlain, In: []int{h}, Vec: b.vec(hv), Label: name})
	u = b.op(circuit.Op{Kind: circuit.KindAddPlain, In: []int{u}, Vec: b.vec(uv), Label: name})
	ob := opBuilder{b: b, Label: name}
	y := polyapprox.NewtonIterations[int](ob, h, ob.Poly(u, unit), plan.Iterations)
	return b.op(circuit.Op{Kind: circuit.KindMul, In: []int{xc, y}, Label: name}), nil
}

// headMap maps model channel j (head h = j/dh, k = j%dh) to its padded slot.
func (b *builder) headMap(j int) int { return (j/b.dh)*b.dhp + j%b.dh }

// block lowers one transformer block on the stream xs (one value per token
// block); it returns the new stream and its scale.
func (b *builder) block(name string, blk *nn.Block, xs []int, sigma float64) ([]int, float64, error) {
	fs := make([]feed, len(xs))
	if _, err := b.perBlock(func(i int) (int, error) {
		var err error
		fs[i], err = b.norm(name+".norm1", blk.Norm1, xs[i], sigma)
		return 0, err
	}); err != nil {
		return nil, 0, err
	}
	attn, err := b.attention(name+".attn", blk.Attn, fs, sigma)
	if err != nil {
		return nil, 0, err
	}
	newSigma, downScale, err := residualScales(name, blk, sigma)
	if err != nil {
		return nil, 0, err
	}
	out, err := b.perBlock(func(i int) (int, error) {
		h := b.op(circuit.Op{Kind: circuit.KindAdd, In: []int{xs[i], attn[i]}, Label: name + ".residual1"})
		f2, err := b.norm(name+".norm2", blk.Norm2, h, sigma)
		if err != nil {
			return 0, err
		}
		ffn, err := b.ffn(name+".ffn", blk.FFN, f2, downScale)
		if err != nil {
			return 0, err
		}
		return b.op(circuit.Op{Kind: circuit.KindAdd, In: []int{h, ffn}, Label: name + ".residual2"}), nil
	})
	return out, newSigma, err
}

// residualScales returns the stream's scale after blk (its scaled
// residual's beta times sigma) and the factor of the FFN's output.
func residualScales(name string, blk *nn.Block, sigma float64) (newSigma, downScale float64, err error) {
	newSigma = sigma
	downScale = 1 / sigma
	if blk.Beta != nil {
		beta, alpha := blk.Beta.Value.Data[0], blk.Alpha.Value.Data[0]
		if beta == 0 || alpha == 0 || math.IsNaN(beta) || math.IsNaN(alpha) {
			return 0, 0, fmt.Errorf("compile: %s: scaled residual with beta %g, alpha %g", name, beta, alpha)
		}
		newSigma = beta * sigma
		downScale = 1 / (alpha * newSigma)
	}
	return newSigma, downScale, nil
}

// ffn lowers Down(Act(Up(x))), with outScale multiplying the output.
func (b *builder) ffn(name string, f *nn.FFN, in feed, outScale float64) (int, error) {
	var poly *polyapprox.Chebyshev
	scalar, constant := 1.0, 0.0
	act := f.Act
	if pm, ok := act.(*nn.PenalizedModule); ok { // training-time range penalty: same function
		act = pm.Inner
	}
	switch a := act.(type) {
	case *nn.Elementwise:
		sites := a.Sites()
		if len(sites) == 1 {
			sp := sites[0].Spec()
			if sp == nil || sp.Method != polyapprox.PlanChebyshev {
				return 0, fmt.Errorf("compile: %s: activation site without a Chebyshev polynomial", name)
			}
			p, err := sp.Chebyshev()
			if err != nil {
				return 0, fmt.Errorf("compile: %s: %w", name, err)
			}
			u, s, c := unitPoly(p)
			poly, scalar, constant = &u, s, c
		} else if len(sites) != 0 {
			return 0, fmt.Errorf("compile: %s: activation with %d sites", name, len(sites))
		}
	case *nn.Quadratic:
		qa, qb, qc := a.Coef.Value.Data[0], a.Coef.Value.Data[1], a.Coef.Value.Data[2]
		poly = &polyapprox.Chebyshev{Interval: polyapprox.Interval{A: -1, B: 1}, Coeffs: []float64{qc + qa/2, qb, qa / 2}}
	case *nn.PolyActivation:
		u, s, c := unitPoly(a.P)
		poly, scalar, constant = &u, s, c
	default:
		return 0, fmt.Errorf("compile: %s: activation %T is not supported", name, f.Act)
	}
	// the channel-block split (docs/packing.md): the hidden activation is
	// k values of Block channels; block j holds hidden channels
	// j·Block..j·Block+Block-1. Up is k block-row transforms of the one
	// input, hoisted together (one decomposition); the activation runs per
	// block; Down is k block-column transforms, summed, with the bias added
	// once. With k = 1 these are exactly the ops of the unsplit layout.
	D := b.L.Block
	k := channelBlocks(f.Up.Out, D)
	grp := 0
	if k > 1 {
		grp = b.newGroup()
	}
	ys := make([]int, k)
	var dnBias []float64
	for j := range ys {
		lo, n := j*D, min(D, f.Up.Out-j*D)
		upID, upBias := b.linearFromModel(blockName(name+".up", j, k), f.Up, lo, n, in, ident, ident,
			func(int) float64 { return scalar }, false, func(int, int) float64 { return constant })
		u := b.op(circuit.Op{Kind: circuit.KindLinear, In: []int{in.id}, Mat: upID, Group: grp, Label: name + ".up"})
		u = b.op(circuit.Op{Kind: circuit.KindAddPlain, In: []int{u}, Vec: b.vec(upBias), Label: name + ".up"})
		if poly != nil {
			if poly.Degree() < 1 {
				return 0, fmt.Errorf("compile: %s: constant activation polynomial", name)
			}
			u = b.op(circuit.Op{Kind: circuit.KindPoly, In: []int{u}, Poly: poly, Label: name + ".act"})
		}
		down := rowBlock(f.Down, lo, n, j == 0)
		hf := feed{g: ones(n), beta: make([]float64, n)}
		dnID, bias := b.linearFromModel(blockName(name+".down", j, k), down, 0, down.Out, hf, ident, ident,
			func(int) float64 { return outScale }, false, nil)
		if j == 0 {
			dnBias = bias
		}
		ys[j] = b.op(circuit.Op{Kind: circuit.KindLinear, In: []int{u}, Mat: dnID, Label: name + ".down"})
		if k == 1 {
			break
		}
	}
	y := b.sumTree(name+".down", ys)
	y = b.op(circuit.Op{Kind: circuit.KindAddPlain, In: []int{y}, Vec: b.vec(dnBias), Label: name + ".down"})
	return b.replicate(name+".down", y), nil
}

// blockName names block j of k of a split matrix: name itself when k = 1,
// else name[j].
func blockName(name string, j, k int) string {
	if k == 1 {
		return name
	}
	return fmt.Sprintf("%s[%d]", name, j)
}

// rowBlock returns the linear layer of input rows lo..lo+n-1 of l (its
// bias when withBias, else a zero bias); l itself when that is all of l.
func rowBlock(l *nn.Linear, lo, n int, withBias bool) *nn.Linear {
	if lo == 0 && n == l.In && withBias {
		return l
	}
	w := &nn.Param{Name: l.W.Name, Value: &nn.Tensor{Shape: []int{n, l.Out}, Data: l.W.Value.Data[lo*l.Out : (lo+n)*l.Out]}}
	bias := nn.NewParam(l.B.Name, l.Out)
	if withBias {
		bias = l.B
	}
	return &nn.Linear{In: n, Out: l.Out, W: w, B: bias}
}

// attention lowers multi-head attention of the token blocks ins (one feed
// each); the result is the attention output divided by sigma (the
// stream's scale), one value per token block. One block uses the packed
// layouts where they apply, else the diagonal method; several use the
// diagonal method across blocks (attentionTokenSplit).
func (b *builder) attention(name string, a *nn.MultiHeadAttention, ins []feed, sigma float64) ([]int, error) {
	kp, err := b.attentionKernel(name, a)
	if err != nil {
		return nil, err
	}
	if len(ins) > 1 {
		return b.attentionTokenSplit(name, a, ins, sigma, kp), nil
	}
	b.tb = 0
	y, err := b.attentionBlock(name, a, ins[0], sigma, kp)
	return []int{y}, err
}

// attentionBlock lowers the attention of one ciphertext's tokens (no
// token-block split).
func (b *builder) attentionBlock(name string, a *nn.MultiHeadAttention, in feed, sigma float64, kp attnKernel) (int, error) {
	if w := nextPow2(b.heads * b.dhp); kp.expSpec == nil && !b.noPack && b.L.Block/w >= 2 {
		if b.useCompact() {
			return b.attentionCompact(name, a, in, sigma, kp.packedKernel)
		}
		return b.attentionPacked(name, a, in, sigma, kp.packedKernel)
	}
	q, kr, vr := b.diagonalQKV(name, a, in)
	pw := make([]int, b.L.Tokens)
	for r := range pw {
		pw[r] = b.diagonalScores(name, a, kp, q, kr[r], r, 0)
	}
	weights := pw
	if kp.gold != nil {
		weights = b.normalizeDiagonals(name, kp, pw)
	}
	return b.mixDiagonals(name, a, kp, weights, vr, sigma), nil
}

// attnKernel is an attention kernel as lowered: the folded scales of
// packedKernel and, for softmax, the exp polynomial and its constants.
type attnKernel struct {
	packedKernel
	expSpec *nn.PolySpec // softmax only
	expPoly polyapprox.Chebyshev
	// softmax: u = expScalar*s + expConst, e = exp(u) times expNorm (Goldschmidt's c) and the causal mask
	expScalar, expConst, expNorm float64
}

// attentionKernel reads a's kernel (unwrapping training-time range
// penalties): its power, its Goldschmidt plan, and the scales folded into
// the scores (per row, per head, power-shifted's shift) and into Wo.
func (b *builder) attentionKernel(name string, a *nn.MultiHeadAttention) (attnKernel, error) {
	T := b.L.Tokens
	var kp attnKernel
	rowLen := func(t int) float64 {
		if b.causal {
			return float64(t + 1)
		}
		return float64(T)
	}
	kp.headW = func(int) float64 { return 1 }
	kernel := a.Kernel
	switch pk := kernel.(type) { // training-time range penalties: same function
	case *nn.PenalizedPowerSoftmax:
		kernel = pk.PowerSoftmax
	case *nn.PenalizedShiftedPower:
		kernel = pk.ShiftedPower
	}
	// powerNormalized sets up x^p / (eps + N) (N the sum or, lengthNorm, the
	// mean of x^p): the Goldschmidt normalizer c and the length norm 1/n are
	// folded into the scores as (c/n)^(1/p), the -n of the negated
	// Goldschmidt output into Wo.
	powerNormalized := func(kind string, power int, site *nn.Site, eps float64, lengthNorm bool) error {
		kp.p = power
		kp.gold = site.Spec()
		if kp.gold == nil || kp.gold.Method != polyapprox.PlanGoldschmidt {
			return fmt.Errorf("compile: %s: %s reciprocal must be a Goldschmidt plan", name, kind)
		}
		g, err := kp.gold.Goldschmidt()
		if err != nil {
			return fmt.Errorf("compile: %s: %w", name, err)
		}
		c := g.Normalizer()
		kp.epsC = c * eps
		n := func(t int) float64 {
			if lengthNorm {
				return rowLen(t)
			}
			return 1
		}
		kp.rowScale = func(t int) float64 { return math.Pow(c/n(t), 1/float64(kp.p)) }
		kp.outRow = func(t int) float64 { return -n(t) }
		return nil
	}
	switch k := kernel.(type) {
	case *nn.PowerSoftmax:
		if err := powerNormalized("power-softmax", k.P, k.Sites()[0], k.Eps, k.LengthNorm); err != nil {
			return kp, err
		}
	case *nn.ShiftedPower:
		if err := powerNormalized("power-shifted", k.P, k.Sites()[0], k.Eps, k.LengthNorm); err != nil {
			return kp, err
		}
		if len(k.Shift.Value.Data) < b.heads {
			return kp, fmt.Errorf("compile: %s: %d shifts for %d heads", name, len(k.Shift.Value.Data), b.heads)
		}
		kp.shift = func(h int) float64 { return k.Shift.Value.Data[h] }
	case *nn.PowerFixed:
		kp.p = k.P
		kp.rowScale = func(int) float64 { return 1 }
		kp.headW = func(h int) float64 { return math.Exp(-k.G.Value.Data[h] / float64(kp.p)) }
		kp.outRow = func(int) float64 { return 1 }
	case *nn.Softmax:
		sites := k.Sites()
		kp.expSpec, kp.gold = sites[0].Spec(), sites[1].Spec()
		if kp.expSpec == nil || kp.expSpec.Method != polyapprox.PlanChebyshev || kp.gold == nil || kp.gold.Method != polyapprox.PlanGoldschmidt {
			return kp, fmt.Errorf("compile: %s: softmax needs a Chebyshev exp and a Goldschmidt reciprocal", name)
		}
		g, err := kp.gold.Goldschmidt()
		if err != nil {
			return kp, fmt.Errorf("compile: %s: %w", name, err)
		}
		if kp.expPoly, err = kp.expSpec.Chebyshev(); err != nil || kp.expPoly.Degree() < 1 {
			return kp, fmt.Errorf("compile: %s: invalid exp polynomial", name)
		}
		kp.expScalar, kp.expConst = kp.expPoly.Interval.ChangeOfBasis()
		kp.expNorm = g.Normalizer()
		kp.rowScale = func(int) float64 { return kp.expScalar }
		kp.outRow = func(int) float64 { return -1 }
	default:
		return kp, fmt.Errorf("compile: %s: attention kernel %T is not supported", name, a.Kernel)
	}
	return kp, nil
}

// headRots returns the rotations of a butterfly over a head's dhp
// channels: +1, +2, ... (sum into the head's first slot) or, with sign -1,
// -1, -2, ... (broadcast from it).
func (b *builder) headRots(sign int) []int {
	var rots []int
	for k := 1; k < b.dhp; k <<= 1 {
		rots = append(rots, sign*k)
	}
	return rots
}

// diagonalQKV lowers Q, K and V (one hoisted decomposition, 1/sqrt(dh)
// folded into Q) and the hoisted token rotations of K and V: kr[r] and
// vr[r] are K and V rotated by r tokens (kr[0] = K, vr[0] = V), r < Tb (the
// tokens of a ciphertext).
func (b *builder) diagonalQKV(name string, a *nn.MultiHeadAttention, in feed) (q int, kr, vr []int) {
	T, R := b.L.BlockTokens(), b.L.RowStride()
	qs := 1 / math.Sqrt(float64(b.dh))
	grp := b.newGroup()
	var qkv [3]int
	var biases [3][]float64
	for i := 0; i < 3; i++ {
		s := 1.0
		if i == 0 {
			s = qs
		}
		id, bias := b.linearFromModel(fmt.Sprintf("%s.%s", name, []string{"q", "k", "v"}[i]), a.QKV, i*b.d, b.d, in,
			ident, b.headMap, func(int) float64 { return s }, false, nil)
		qkv[i] = b.op(circuit.Op{Kind: circuit.KindLinear, In: []int{in.id}, Mat: id, Group: grp, Label: name + ".qkv"})
		biases[i] = bias
	}
	for i := 0; i < 3; i++ {
		qkv[i] = b.op(circuit.Op{Kind: circuit.KindAddPlain, In: []int{qkv[i]}, Vec: b.vec(biases[i]), Label: name + ".qkv"})
	}
	q, kk, v := qkv[0], qkv[1], qkv[2]
	// hoisted token rotations of K and V
	kr, vr = make([]int, T), make([]int, T)
	kr[0], vr[0] = kk, v
	gk, gv := b.newGroup(), b.newGroup()
	for r := 1; r < T; r++ {
		kr[r] = b.op(circuit.Op{Kind: circuit.KindRotate, In: []int{kk}, Rot: []int{r * R}, Group: gk, Label: name + ".rotk"})
	}
	for r := 1; r < T; r++ {
		vr[r] = b.op(circuit.Op{Kind: circuit.KindRotate, In: []int{v}, Rot: []int{r * R}, Group: gv, Label: name + ".rotv"})
	}
	return q, kr, vr
}

// diagonalScores lowers the scores of diagonal r (q, of token block b.tb,
// against kr, K of token block kb rotated by r tokens): the head sums, the
// mask with the folded row and head scales (and power-shifted's shift),
// then x^p, or for softmax the exp polynomial masked and scaled by
// Goldschmidt's normalizer.
func (b *builder) diagonalScores(name string, a *nn.MultiHeadAttention, kp attnKernel, q, kr, r, kb int) int {
	T, D := b.L.BlockTokens(), b.L.Block
	sumRots := b.headRots(1)
	temp := a.Temperature
	prod := b.op(circuit.Op{Kind: circuit.KindMul, In: []int{q, kr}, Label: name + ".scores"})
	s := prod
	if len(sumRots) > 0 {
		s = b.op(circuit.Op{Kind: circuit.KindRotSum, In: []int{prod}, Rot: sumRots, Label: name + ".scores"})
	}
	mask := b.pattern()
	for t := 0; t < T; t++ {
		if b.masked(t, r, kb) && kp.expSpec == nil {
			continue // softmax masks after exp instead
		}
		for h := 0; h < b.heads; h++ {
			mask[t*D+h*b.dhp] = temp(h, b.tok(t)) * kp.rowScale(b.tok(t)) * kp.headW(h)
		}
	}
	xs := b.op(circuit.Op{Kind: circuit.KindMulPlain, In: []int{s}, Vec: b.vec(mask), Label: name + ".scores"})
	if kp.shift != nil {
		// s_t (x + c_h) = s_t x + s_t c_h on the unmasked heads' first
		// slots only: masked slots stay 0, so their power is 0
		sv := b.pattern()
		for t := 0; t < T; t++ {
			if b.masked(t, r, kb) {
				continue
			}
			for h := 0; h < b.heads; h++ {
				sv[t*D+h*b.dhp] = kp.shift(h) * kp.rowScale(b.tok(t)) * kp.headW(h)
			}
		}
		xs = b.op(circuit.Op{Kind: circuit.KindAddPlain, In: []int{xs}, Vec: b.vec(sv), Label: name + ".scores"})
	}
	if kp.expSpec == nil {
		return b.power(name+".power", xs, kp.p)
	}
	// softmax: u = scalar*s + constant, exp on the unit interval, then the
	// causal mask and Goldschmidt's normalizer c (which also zeroes the
	// other slots' junk before the broadcast)
	cst, m2 := b.pattern(), b.pattern()
	for t := 0; t < T; t++ {
		for h := 0; h < b.heads; h++ {
			cst[t*D+h*b.dhp] = kp.expConst
			if !b.masked(t, r, kb) {
				m2[t*D+h*b.dhp] = kp.expNorm
			}
		}
	}
	u := b.op(circuit.Op{Kind: circuit.KindAddPlain, In: []int{xs}, Vec: b.vec(cst), Label: name + ".scores"})
	unit := polyapprox.Chebyshev{Interval: polyapprox.Interval{A: -1, B: 1}, Coeffs: append([]float64(nil), kp.expPoly.Coeffs...)}
	e := b.op(circuit.Op{Kind: circuit.KindPoly, In: []int{u}, Poly: &unit, Label: name + ".exp"})
	return b.op(circuit.Op{Kind: circuit.KindMulPlain, In: []int{e}, Vec: b.vec(m2), Label: name + ".exp"})
}

// normalizeDiagonals divides the diagonals' powers pw by their row sum:
// the normalizer (plus eps, times Goldschmidt's c) and its Goldschmidt
// reciprocal, multiplied into each diagonal.
func (b *builder) normalizeDiagonals(name string, kp attnKernel, pw []int) []int {
	T, D := b.L.BlockTokens(), b.L.Block
	nsum := b.sumTree(name+".normalizer", pw)
	// xn = c·(eps + N) in the heads' first slots; 1 elsewhere (N is 0
	// there), where Goldschmidt then stays at a = 1: no junk growing like
	// 2^iterations, which would break a real bootstrap of a or b.
	shift := b.pattern()
	for t := 0; t < T; t++ {
		for c := 0; c < D; c++ {
			shift[t*D+c] = 1
		}
		for h := 0; h < b.heads; h++ {
			shift[t*D+h*b.dhp] = kp.epsC
		}
	}
	xn := b.op(circuit.Op{Kind: circuit.KindAddPlain, In: []int{nsum}, Vec: b.vec(shift), Label: name + ".normalizer"})
	// Goldschmidt with a' = xn - 2 = -a and b' = xn - 1 (b'^2 = b^2).
	ga := b.goldschmidt(name+".recip", xn, kp.gold.Iterations)
	weights := make([]int, len(pw))
	for r := range weights {
		weights[r] = b.op(circuit.Op{Kind: circuit.KindMul, In: []int{pw[r], ga}, Label: name + ".weights"})
	}
	return weights
}

// mixDiagonals broadcasts each diagonal's weights over its head, multiplies
// them with V rotated alike (vr), sums the diagonals and lowers the out
// projection (the row factors of the kernel and 1/sigma folded into Wo).
func (b *builder) mixDiagonals(name string, a *nn.MultiHeadAttention, kp attnKernel, weights, vr []int, sigma float64) int {
	T, D := b.L.BlockTokens(), b.L.Block
	bcastRots := b.headRots(-1)
	outs := make([]int, len(weights))
	for r := range outs {
		w := weights[r]
		if len(bcastRots) > 0 {
			w = b.op(circuit.Op{Kind: circuit.KindRotSum, In: []int{w}, Rot: bcastRots, Label: name + ".weights"})
		}
		outs[r] = b.op(circuit.Op{Kind: circuit.KindMul, In: []int{w, vr[r]}, Label: name + ".mix"})
	}
	o := b.sumTree(name+".mix", outs)
	perToken := b.causal
	hf := feed{g: ones(b.d), beta: make([]float64, b.d)}
	oid, obias := b.linearFromModel(name+".out", a.Out, 0, b.d, hf, b.headMap, ident,
		func(t int) float64 { return kp.outRow(t) / sigma }, perToken, nil)
	// the out bias is not multiplied by outRow: it is added after the mixing.
	for t := 0; t < T; t++ {
		for j := 0; j < b.d; j++ {
			obias[t*D+j] = a.Out.B.Value.Data[j] / sigma
		}
	}
	y := b.op(circuit.Op{Kind: circuit.KindLinear, In: []int{o}, Mat: oid, Label: name + ".out"})
	y = b.op(circuit.Op{Kind: circuit.KindAddPlain, In: []int{y}, Vec: b.vec(obias), Label: name + ".out"})
	return b.replicate(name+".out", y)
}

// power lowers x^p by binary exponentiation (ceil(log2 p) levels).
func (b *builder) power(label string, x, p int) int {
	result := -1
	base := x
	for q := p; q > 0; q >>= 1 {
		if q&1 == 1 {
			if result < 0 {
				result = base
			} else {
				result = b.op(circuit.Op{Kind: circuit.KindMul, In: []int{result, base}, Label: label})
			}
		}
		if q > 1 {
			base = b.op(circuit.Op{Kind: circuit.KindMul, In: []int{base, base}, Label: label})
		}
	}
	return result
}

// sumTree adds values pairwise (balanced tree).
func (b *builder) sumTree(label string, ids []int) int {
	for len(ids) > 1 {
		var next []int
		for i := 0; i+1 < len(ids); i += 2 {
			next = append(next, b.op(circuit.Op{Kind: circuit.KindAdd, In: []int{ids[i], ids[i+1]}, Label: label}))
		}
		if len(ids)%2 == 1 {
			next = append(next, ids[len(ids)-1])
		}
		ids = next
	}
	return ids[0]
}

// packedCopies returns the width W of the heads' channels (a power of two)
// and the number k of diagonal copies per ciphertext of the packed layouts.
func (b *builder) packedCopies() (int, int) {
	D, T := b.L.Block, b.L.Tokens
	W := nextPow2(b.heads * b.dhp)
	k := D / W
	if T%k != 0 {
		k = T // fewer diagonals than copies: use T copies (W | D, T | D/W)
		for D/W%k != 0 {
			k /= 2
		}
	}
	if b.maxCopies > 0 && k > b.maxCopies {
		k = b.maxCopies
	}
	return W, k
}

// packedInputs lowers Q, K and V (one hoisted group; every per-row and
// per-head score factor folded into Q's per-token blocks) and their copies
// for the packed layouts: Q in copy j (qc[j]), K and V of diagonal r = g·k + j
// rotated by r tokens into copy j (kr[r], vr[r]; only copy j is non-zero).
func (b *builder) packedInputs(name string, a *nn.MultiHeadAttention, in feed, kp packedKernel, W, k, n1 int, sumCopies bool) ([][]int, []int, []int) {
	D, T := b.L.Block, b.L.Tokens
	R := b.L.RowStride()
	qs := 1 / math.Sqrt(float64(b.dh))
	temp := a.Temperature
	grp := b.newGroup()
	var qkv [3]int
	var biases [3][]float64
	for i := 0; i < 3; i++ {
		perToken := i == 0
		id, bias := b.linearFromModel(fmt.Sprintf("%s.%s", name, []string{"q", "k", "v"}[i]), a.QKV, i*b.d, b.d, in,
			ident, b.headMap, func(int) float64 { return 1 }, perToken, nil)
		if i == 0 { // fold every per-row and per-head score factor into Q
			for t := 0; t < T; t++ {
				for o := 0; o < b.d; o++ {
					h := o / b.dh
					f := qs * temp(h, t) * kp.rowScale(t) * kp.headW(h)
					row := b.headMap(o)
					blk := b.c.Mats[id].Blocks[t]
					for c := 0; c < D; c++ {
						blk[row*D+c] *= f
					}
					bias[t*D+row] *= f
				}
			}
		}
		qkv[i] = b.op(circuit.Op{Kind: circuit.KindLinear, In: []int{in.id}, Mat: id, Group: grp, Label: name + ".qkv"})
		biases[i] = bias
	}
	for i := 0; i < 3; i++ {
		qkv[i] = b.op(circuit.Op{Kind: circuit.KindAddPlain, In: []int{qkv[i]}, Vec: b.vec(biases[i]), Label: name + ".qkv"})
	}
	q, kk, v := qkv[0], qkv[1], qkv[2]
	// copies: Q in copy j of frame f (rotated by f·n1 rows); K and V of
	// diagonal i (< n1) in copy i mod k. Summed copies (sumCopies): Q summed
	// over its copies (k-1 rotations) and that sum rotated into each frame
	// (F-1 more), qc[f] = {Σ_j copy j of frame f}.
	F := T / n1
	qc := make([][]int, F)
	gq := b.newGroup()
	if sumCopies {
		cs := []int{q}
		for j := 1; j < k; j++ {
			cs = append(cs, b.op(circuit.Op{Kind: circuit.KindRotate, In: []int{q}, Rot: []int{-j * W}, Group: gq, Label: name + ".rotq"}))
		}
		qall := b.sumTree(name+".rotq", cs)
		gf := b.newGroup()
		for f := 0; f < F; f++ {
			qc[f] = []int{qall}
			if f > 0 {
				qc[f][0] = b.op(circuit.Op{Kind: circuit.KindRotate, In: []int{qall}, Rot: []int{-f * n1 * R}, Group: gf, Label: name + ".rotq"})
			}
		}
	}
	for f := 0; f < F && !sumCopies; f++ {
		qc[f] = make([]int, k)
		for j := 0; j < k; j++ {
			if f == 0 && j == 0 {
				qc[f][j] = q
				continue
			}
			qc[f][j] = b.op(circuit.Op{Kind: circuit.KindRotate, In: []int{q}, Rot: []int{-j*W - f*n1*R}, Group: gq, Label: name + ".rotq"})
		}
	}
	kr, vr := make([]int, n1), make([]int, n1)
	gk, gv := b.newGroup(), b.newGroup()
	for r := 0; r < n1; r++ {
		amt := r*R - (r%k)*W
		if amt == 0 {
			kr[r], vr[r] = kk, v
			continue
		}
		kr[r] = b.op(circuit.Op{Kind: circuit.KindRotate, In: []int{kk}, Rot: []int{amt}, Group: gk, Label: name + ".rotk"})
	}
	for r := 1; r < n1; r++ {
		if amt := r*R - (r%k)*W; amt != 0 {
			vr[r] = b.op(circuit.Op{Kind: circuit.KindRotate, In: []int{v}, Rot: []int{amt}, Group: gv, Label: name + ".rotv"})
		}
	}
	return qc, kr, vr
}

// packedKernel is what attentionPacked needs of a power kernel.
type packedKernel struct {
	p        int
	gold     *nn.PolySpec // nil for power-fixed
	epsC     float64
	rowScale func(t int) float64
	outRow   func(t int) float64
	headW    func(h int) float64
	shift    func(h int) float64 // power-shifted: c_h (nil otherwise)
}

// attentionPacked lowers power attention when the heads use only W = D/k
// channels of each token block (k >= 2): k diagonals share one ciphertext,
// diagonal r = g·k + j in copy j (channels j·W..j·W+W-1), so the head sums,
// powers, weights, broadcasts and mixing products run on T/k ciphertexts
// instead of T. The copies are made by hoisted rotations of Q, K and V;
// the per-row and per-head scales (1/sqrt(dh), temperature, length norm,
// Goldschmidt normalizer, power-fixed weights) are folded into Q's
// per-token blocks (power-shifted's c_h, times the row scale, is added to
// the scores by a plaintext addition); the row normalizer sums the copies
// with one small linear transform that also drops the by-products of the
// other slots.
func (b *builder) attentionPacked(name string, a *nn.MultiHeadAttention, in feed, sigma float64, kp packedKernel) (int, error) {
	T := b.L.Tokens
	W, k := b.packedCopies()
	n1 := b.packedFrames(k, kp.gold != nil)
	pg := packedGeom{W: W, k: k, n1: n1, F: T / n1, G: T / k, T: T}
	qc, kr, vr := b.packedInputs(name, a, in, kp, W, k, n1, !b.legacyAttn)
	pw, mpw := make([]int, pg.G), make([]int, pg.G)
	for g := range pw {
		pw[g], mpw[g] = b.packedScores(name, kp, pg, qc, kr, g)
	}
	weights := mpw
	recip := -1
	if kp.gold != nil {
		src := pw // the normalizer transform reads only the heads' first slots
		if b.causal {
			src = mpw
		}
		ga := b.packedReciprocal(name, kp, pg, src)
		if !b.legacyAttn {
			// Σ_r (x_r^p · ρ) v_r = ρ · Σ_r x_r^p v_r: the reciprocal ρ is
			// broadcast over its head and multiplies the mixed values once,
			// after the copy sum: one product instead of G, and one level
			// less on the reciprocal's path. Every window of dhp slots the
			// broadcast adds holds one head's first slot and dhp-1 slots at
			// exactly -1: adding dhp-1 leaves ρ.
			recip = ga
			if bcastRots := b.headRots(-1); len(bcastRots) > 0 {
				recip = b.op(circuit.Op{Kind: circuit.KindRotSum, In: []int{ga}, Rot: bcastRots, Label: name + ".weights"})
				recip = b.op(circuit.Op{Kind: circuit.KindAddConst, In: []int{recip}, Const: float64(b.dhp - 1), Label: name + ".weights"})
			}
		} else {
			weights = make([]int, pg.G)
			for g := range weights {
				weights[g] = b.op(circuit.Op{Kind: circuit.KindMul, In: []int{mpw[g], ga}, Label: name + ".weights"})
			}
		}
	}
	outs := b.packedMix(name, pg, weights, vr)
	return b.packedOutScaled(name, a, b.byFrame(name+".mix", pg, outs), recip, sigma, kp, W, k), nil
}

// packedGeom is the geometry of the packed layout: k copies of W channels
// (k diagonals per ciphertext), G = T/k diagonal groups, frames of n1
// diagonals (F = T/n1 of them). Diagonal r = f·n1 + i is computed in frame
// f, where slot row t' holds query row t = t' - f·n1 (Q rotated by f·n1
// rows, K and V by i rows only).
type packedGeom struct{ W, k, n1, F, G, T int }

// frame returns the frame of group g.
func (pg packedGeom) frame(g int) int { return g * pg.k / pg.n1 }

// slotRow returns the slot row of query row t in group g's frame.
func (pg packedGeom) slotRow(g, t int) int { return (t + pg.frame(g)*pg.n1) % pg.T }

// first returns the rotation (in rows, within its frame) of group g's
// first diagonal: K and V of the group are kr, vr[first .. first+k-1].
func (pg packedGeom) first(g int) int { return g*pg.k - pg.frame(g)*pg.n1 }

// packedScores lowers the scores of diagonal group g: the products of Q
// (qc, by frame and copy) and K (kr), the head sums, power-shifted's shift,
// the power, and the power masked to the heads' first slots (with the
// causal mask): pw and mpw.
func (b *builder) packedScores(name string, kp packedKernel, pg packedGeom, qc [][]int, kr []int, g int) (pw, mpw int) {
	D, T, W, k := b.L.Block, pg.T, pg.W, pg.k
	f, i0 := pg.frame(g), pg.first(g)
	var sc int
	if !b.legacyAttn {
		// one product per group: Q summed over its copies times K summed
		// over the group's copies (each copy of K is non-zero in its own
		// channels only)
		kg := b.sumTree(name+".scores", kr[i0:i0+k])
		sc = b.op(circuit.Op{Kind: circuit.KindMul, In: []int{qc[f][0], kg}, Label: name + ".scores"})
	} else {
		prods := make([]int, k)
		for j := 0; j < k; j++ {
			prods[j] = b.op(circuit.Op{Kind: circuit.KindMul, In: []int{qc[f][j], kr[i0+j]}, Label: name + ".scores"})
		}
		sc = b.sumTree(name+".scores", prods)
	}
	if sumRots := b.headRots(1); len(sumRots) > 0 {
		sc = b.op(circuit.Op{Kind: circuit.KindRotSum, In: []int{sc}, Rot: sumRots, Label: name + ".scores"})
	}
	// unmasked marks the (slot row, copy) pairs of query rows that see their
	// diagonal
	unmasked := func(fill func(tp, t, j int)) {
		for t := 0; t < T; t++ {
			tp := pg.slotRow(g, t)
			for j := 0; j < k; j++ {
				if b.causal && (t+g*k+j)%T > t {
					continue
				}
				fill(tp, t, j)
			}
		}
	}
	if kp.shift != nil {
		// s_t (x + c_h): the row scale s_t is already in Q; masked slots
		// get no shift and are zeroed after the power like the others
		sv := b.pattern()
		unmasked(func(tp, t, j int) {
			for h := 0; h < b.heads; h++ {
				sv[tp*D+j*W+h*b.dhp] = kp.shift(h) * kp.rowScale(t) * kp.headW(h)
			}
		})
		sc = b.op(circuit.Op{Kind: circuit.KindAddPlain, In: []int{sc}, Vec: b.vec(sv), Label: name + ".scores"})
	}
	pw = b.power(name+".power", sc, kp.p)
	mask := b.pattern()
	unmasked(func(tp, _, j int) {
		for h := 0; h < b.heads; h++ {
			mask[tp*D+j*W+h*b.dhp] = 1
		}
	})
	// keeps the heads' first slots (and applies causal masks): needed before the broadcast
	mpw = b.op(circuit.Op{Kind: circuit.KindMulPlain, In: []int{pw}, Vec: b.vec(mask), Label: name + ".power"})
	return pw, mpw
}

// byFrame sums values of the groups frame by frame and rotates each
// frame's sum back to frame 0 (F-1 rotations).
func (b *builder) byFrame(label string, pg packedGeom, ids []int) int {
	var parts []int
	for f := 0; f < pg.F; f++ {
		s := b.sumTree(label, ids[f*pg.n1/pg.k:(f+1)*pg.n1/pg.k])
		if f > 0 {
			s = b.op(circuit.Op{Kind: circuit.KindRotate, In: []int{s}, Rot: []int{f * pg.n1 * b.L.RowStride()}, Label: label})
		}
		parts = append(parts, s)
	}
	return b.sumTree(label, parts)
}

// packedReciprocal lowers the row normalizer of the groups' powers src
// (summed by frame, then over the copies by a small linear transform that
// drops the other slots' by-products) and its negated Goldschmidt
// reciprocal, in the heads' first slots.
func (b *builder) packedReciprocal(name string, kp packedKernel, pg packedGeom, src []int) int {
	D, T, W, k := b.L.Block, pg.T, pg.W, pg.k
	nin := b.byFrame(name+".normalizer", pg, src)
	nm := b.mat(name+".normalizer", false, func(_ int, m []float64) {
		for h := 0; h < b.heads; h++ {
			for j := 0; j < k; j++ {
				for j2 := 0; j2 < k; j2++ {
					m[(j2*W+h*b.dhp)*D+j*W+h*b.dhp] = 1
				}
			}
		}
	})
	nsum := b.op(circuit.Op{Kind: circuit.KindLinear, In: []int{nin}, Mat: nm, Label: name + ".normalizer"})
	// xn = c·(eps + N) in the heads' first slots; 1 elsewhere (N is 0
	// there), where Goldschmidt then stays at a = -1 exactly
	shift := b.pattern()
	for t := 0; t < T; t++ {
		for c := 0; c < D; c++ {
			shift[t*D+c] = 1
		}
		for j := 0; j < k; j++ {
			for h := 0; h < b.heads; h++ {
				shift[t*D+j*W+h*b.dhp] = kp.epsC
			}
		}
	}
	xn := b.op(circuit.Op{Kind: circuit.KindAddPlain, In: []int{nsum}, Vec: b.vec(shift), Label: name + ".normalizer"})
	return b.goldschmidt(name+".recip", xn, kp.gold.Iterations)
}

// goldschmidt lowers Goldschmidt's iterations (polyapprox.GoldschmidtIterations)
// on xn with a' = xn - 2 = -a and b' = xn - 1 (b'^2 = b^2) and returns the
// negated reciprocal a'.
func (b *builder) goldschmidt(label string, xn, iterations int) int {
	ob := opBuilder{b: b, Label: label}
	return polyapprox.GoldschmidtIterations[int](ob, ob.AddConst(xn, -2), ob.AddConst(xn, -1), iterations)
}

// packedMix broadcasts each group's weights over its heads and multiplies
// them with the group's V copies summed (vr).
func (b *builder) packedMix(name string, pg packedGeom, weights, vr []int) []int {
	bcastRots := b.headRots(-1)
	outs := make([]int, pg.G)
	for g := range outs {
		w := weights[g]
		if len(bcastRots) > 0 {
			w = b.op(circuit.Op{Kind: circuit.KindRotSum, In: []int{w}, Rot: bcastRots, Label: name + ".weights"})
		}
		i0 := pg.first(g)
		vg := b.sumTree(name+".mix", vr[i0:i0+pg.k])
		outs[g] = b.op(circuit.Op{Kind: circuit.KindMul, In: []int{w, vg}, Label: name + ".mix"})
	}
	return outs
}

// packedFrames returns the baby-step size n1 of the attention diagonals of
// the packed layout (T for the legacy layout: one frame): diagonal
// r = f·n1 + i needs K and V rotated by i rows only and Q (summed over its
// copies) by f·n1 rows, at the price of rotating each frame's partial mix
// (and normalizer) back.
// n1 is a multiple of k dividing T, chosen for the fewest rotations.
func (b *builder) packedFrames(k int, normalized bool) int {
	T := b.L.Tokens
	if b.legacyAttn {
		return T
	}
	best, bestCost := T, -1
	for n1 := T; n1 >= k; n1 /= 2 {
		F := T / n1
		back := F - 1
		if normalized {
			back *= 2
		}
		cost := k - 1 + F - 1 + 2*(n1-1) + back
		if bestCost < 0 || cost < bestCost {
			best, bestCost = n1, cost
		}
	}
	return best
}

// packedOut sums the k copies of the mixed values o (one per copy) and
// applies the out projection (the kernel's per-row factor and 1/sigma
// folded in) and the out bias, then replicates the result over the stream.
func (b *builder) packedOut(name string, a *nn.MultiHeadAttention, o int, sigma float64, kp packedKernel, W, k int) int {
	return b.packedOutScaled(name, a, o, -1, sigma, kp, W, k)
}

// packedOutScaled is packedOut with the copy sum multiplied by the value
// scale (>= 0) before the out projection.
func (b *builder) packedOutScaled(name string, a *nn.MultiHeadAttention, o, scale int, sigma float64, kp packedKernel, W, k int) int {
	D, T := b.L.Block, b.L.Tokens
	var copyRots []int
	for s := 1; s < k; s <<= 1 {
		copyRots = append(copyRots, s*W)
	}
	o = b.op(circuit.Op{Kind: circuit.KindRotSum, In: []int{o}, Rot: copyRots, Label: name + ".mix"})
	if scale >= 0 {
		o = b.op(circuit.Op{Kind: circuit.KindMul, In: []int{o, scale}, Label: name + ".weights"})
	}
	hf := feed{g: ones(b.d), beta: make([]float64, b.d)}
	oid, obias := b.linearFromModel(name+".out", a.Out, 0, b.d, hf, b.headMap, ident,
		func(t int) float64 { return kp.outRow(t) / sigma }, b.causal, nil)
	for t := 0; t < T; t++ {
		for j := 0; j < b.d; j++ {
			obias[t*D+j] = a.Out.B.Value.Data[j] / sigma
		}
	}
	y := b.op(circuit.Op{Kind: circuit.KindLinear, In: []int{o}, Mat: oid, Label: name + ".out"})
	y = b.op(circuit.Op{Kind: circuit.KindAddPlain, In: []int{y}, Vec: b.vec(obias), Label: name + ".out"})
	return b.replicate(name+".out", y)
}
