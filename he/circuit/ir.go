package circuit

import (
	"errors"
	"fmt"
	"math"

	"github.com/polyformer/polyformer/polyapprox"
)

// FormatVersion is the version of the circuit format (op graph semantics and file layout).
const FormatVersion = 1

// Kind is the kind of an op.
type Kind string

// Op kinds. "Levels" is what the op consumes on the ciphertext.
const (
	KindInput      Kind = "input"       // the encrypted input: the i-th input op reads token block i (0 levels)
	KindLinear     Kind = "linear"      // block-diagonal matrix × vector, rescaled (1 level)
	KindAdd        Kind = "add"         // a + b (level/scale aligned)
	KindSub        Kind = "sub"         // a - b (level/scale aligned)
	KindAddPlain   Kind = "add_plain"   // a + pattern vector (0 levels)
	KindAddConst   Kind = "add_const"   // a + constant (0 levels)
	KindMulPlain   Kind = "mul_plain"   // a ⊙ pattern vector, rescaled (1 level)
	KindMulConst   Kind = "mul_const"   // a × constant, rescaled (1 level)
	KindMul        Kind = "mul"         // a ⊙ b, relinearized and rescaled (1 level, 1 key switch)
	KindRotate     Kind = "rotate"      // left rotation by Rot[0] slots (1 key switch; hoisted within a Group)
	KindRotSum     Kind = "rotsum"      // x ← x + rot(x, k) for k in Rot, in order (len(Rot) key switches)
	KindPoly       Kind = "poly"        // Chebyshev polynomial (Poly.Depth() levels)
	KindBootstrap  Kind = "bootstrap"   // level refresh (inserted by Plan)
	KindMatchScale Kind = "match_scale" // exact scale change before a same-level addition (1 level, inserted by Plan)
	KindDropLevel  Kind = "drop_level"  // drop unneeded levels before key switches (cheaper rotations; inserted by Plan)
	KindOutput     Kind = "output"      // marks a result
)

// Op is one operation of the graph. In holds the ids (indices) of earlier
// ops whose outputs it consumes.
type Op struct {
	Kind  Kind    `json:"kind"`
	In    []int   `json:"in,omitempty"`
	Label string  `json:"label"`
	Mat   int     `json:"mat,omitempty"`   // KindLinear: index into Circuit.Mats
	Vec   int     `json:"vec,omitempty"`   // KindAddPlain, KindMulPlain: index into Circuit.Vecs
	Const float64 `json:"const,omitempty"` // KindAddConst, KindMulConst; KindBootstrap: the pre-scale 2^-k applied before the bootstrap and undone after it (0: none)
	Rot   []int   `json:"rot,omitempty"`   // KindRotate (one amount), KindRotSum (steps)
	// Poly is the polynomial of KindPoly, in the Chebyshev basis on its interval.
	Poly *polyapprox.Chebyshev `json:"poly,omitempty"`
	// Group > 0 marks ops (KindLinear or KindRotate) on the same input that
	// are evaluated together with one hoisted decomposition.
	Group int `json:"group,omitempty"`
	// Ref links a planned op to the unplanned graph: the id of the op it
	// came from, or, for ops inserted by Plan (bootstrap, match_scale,
	// drop_level), the id of the value they transform. It is -1 in an
	// unplanned graph.
	Ref int `json:"ref"`
}

// Layout is the slot packing (see the package documentation).
type Layout struct {
	Tokens int `json:"tokens"` // T, a power of two
	Batch  int `json:"batch"`  // B inputs per ciphertext
	Block  int `json:"block"`  // D channels per token, a power of two
	// InputWidth is the number of values per token the client encodes
	// (patch pixels; 256 one-hot bytes for text).
	InputWidth int `json:"input_width"`
	// Outputs is the number of result values per input (classes, or 256 next-byte logits per token).
	Outputs int `json:"outputs"`
	// OutputTokens is 1 for classifiers (result in token 0) or T for LMs.
	OutputTokens int `json:"output_tokens"`
	// ChannelBlocks is the number of ciphertexts the widest activation of
	// one input spans (the channel-block split, docs/packing.md): an
	// activation wider than Block is carried as that many separate values
	// of Block channels each, so ops, plan, simulator and executor see
	// ordinary values. 0 (omitted) means 1: every activation is one
	// ciphertext.
	ChannelBlocks int `json:"channel_blocks,omitempty"`
	// TokenBlocks is the number of ciphertexts the tokens of one input
	// span (the token-block split, docs/packing.md): ciphertext i holds
	// tokens i·Tb .. i·Tb+Tb-1 (Tb = BlockTokens()) at the same stride, so
	// every per-ciphertext rule (matrices of 1 or Tb per-token blocks,
	// patterns of Tb×Block values) holds per block. The circuit has one
	// input op per token block (the i-th reads block i) and, when every
	// token is an output (OutputTokens = Tokens), one output op per block.
	// 0 (omitted) means 1.
	TokenBlocks int `json:"token_blocks,omitempty"`
}

// Ciphertexts returns the number of ciphertexts the widest activation of
// one input spans (1 without a channel-block split).
func (l Layout) Ciphertexts() int { return max(1, l.ChannelBlocks) }

// NumTokenBlocks returns the number of token blocks (1 without a
// token-block split): the input ciphertexts per batch of inputs.
func (l Layout) NumTokenBlocks() int { return max(1, l.TokenBlocks) }

// BlockTokens returns Tb, the tokens of one ciphertext.
func (l Layout) BlockTokens() int { return l.Tokens / l.NumTokenBlocks() }

// OutputCiphertexts returns the output ciphertexts per batch of inputs:
// one per token block when every token is an output, else 1 (the result
// is in token 0, in block 0).
func (l Layout) OutputCiphertexts() int {
	if l.OutputTokens == l.Tokens {
		return l.NumTokenBlocks()
	}
	return 1
}

// Slots is the number of slots of one ciphertext of the layout: Tb*B*D.
func (l Layout) Slots() int { return l.BlockTokens() * l.Batch * l.Block }

// InputSlots is the length of the slot vector of one batch of inputs:
// its token blocks' ciphertexts one after the other.
func (l Layout) InputSlots() int { return l.NumTokenBlocks() * l.Slots() }

// OutputSlots is the length of the result slot vector of one batch of
// inputs: its output ciphertexts one after the other.
func (l Layout) OutputSlots() int { return l.OutputCiphertexts() * l.Slots() }

// RowStride is B*D, the rotation that shifts tokens by one.
func (l Layout) RowStride() int { return l.Batch * l.Block }

// Slot returns the index of token t, input b, channel c in the slot vector
// of a batch of inputs (InputSlots, OutputSlots): token t is in ciphertext
// t/Tb, row t mod Tb.
func (l Layout) Slot(t, b, c int) int {
	tb := l.BlockTokens()
	return (t/tb)*l.Slots() + ((t%tb)*l.Batch+b)*l.Block + c
}

// Validate checks the layout.
func (l Layout) Validate() error {
	pow2 := func(n int) bool { return n > 0 && n&(n-1) == 0 }
	if !pow2(l.Tokens) || !pow2(l.Block) || l.Batch < 1 {
		return fmt.Errorf("layout: tokens %d and block %d must be powers of two, batch %d >= 1", l.Tokens, l.Block, l.Batch)
	}
	if !pow2(l.Batch) {
		return fmt.Errorf("layout: batch %d must be a power of two (the slots of a ring are)", l.Batch)
	}
	if l.InputWidth < 1 || l.InputWidth > l.Block || l.Outputs < 1 || l.Outputs > l.Block {
		return fmt.Errorf("layout: input width %d and outputs %d must be in [1, block %d]", l.InputWidth, l.Outputs, l.Block)
	}
	if l.OutputTokens != 1 && l.OutputTokens != l.Tokens {
		return fmt.Errorf("layout: output tokens %d must be 1 or %d", l.OutputTokens, l.Tokens)
	}
	if err := tooMany("layout.tokens", "tokens", l.Tokens, MaxTokens); err != nil {
		return err
	}
	if err := tooMany("layout.block", "channels", l.Block, MaxBlock); err != nil {
		return err
	}
	if l.ChannelBlocks < 0 {
		return fmt.Errorf("layout: channel blocks %d must be >= 0", l.ChannelBlocks)
	}
	if err := tooMany("layout.channel_blocks", "ciphertexts", l.ChannelBlocks, MaxChannelBlocks); err != nil {
		return err
	}
	if l.TokenBlocks < 0 || (l.TokenBlocks > 0 && (!pow2(l.TokenBlocks) || l.TokenBlocks > l.Tokens)) {
		return fmt.Errorf("layout: token blocks %d must be 0 or a power of two dividing tokens %d", l.TokenBlocks, l.Tokens)
	}
	if err := tooMany("layout.token_blocks", "ciphertexts", l.TokenBlocks, MaxTokenBlocks); err != nil {
		return err
	}
	if err := tooMany("layout.batch", "inputs", l.Batch, MaxLayoutSlots); err != nil {
		return err
	}
	if err := tooMany("layout slots (block tokens × batch × block)", "slots", l.Slots(), MaxLayoutSlots); err != nil {
		return err
	}
	return nil
}

// Matrix is a block-diagonal weight: Blocks[k] is a Block×Block row-major
// (out × in) matrix. With one block it applies to every token; with T
// blocks, block t applies to token t (of every input).
type Matrix struct {
	Name   string      `json:"name"`
	Blocks [][]float64 `json:"blocks"`
}

// Circuit is a compiled op graph, possibly planned for a parameter set.
type Circuit struct {
	Version int    `json:"version"`
	Task    string `json:"task"`
	Layout  Layout `json:"layout"`
	Ops     []Op   `json:"ops"`
	// Mats are the linear layers' weights; Vecs are per-image slot patterns
	// of length T*D (slot (t, b, c) takes Vecs[i][t*D+c]).
	Mats []Matrix    `json:"mats"`
	Vecs [][]float64 `json:"vecs"`
	// Planned is set by Plan.
	Planned *PlanInfo `json:"planned,omitempty"`
}

// Outputs returns the ids of the output ops in op order: output
// ciphertext j of a batch of inputs is the value of the j-th.
func (c *Circuit) Outputs() ([]int, error) {
	var ids []int
	for i, op := range c.Ops {
		if op.Kind == KindOutput {
			ids = append(ids, i)
		}
	}
	if want := c.Layout.OutputCiphertexts(); len(ids) != want {
		return nil, fmt.Errorf("circuit has %d output ops, want %d", len(ids), want)
	}
	return ids, nil
}

// maxRot bounds rotation amounts (slots of the largest ring).
const maxRot = 1 << 20

// Validate checks the structure of the graph: op kinds and arities,
// references to earlier ops, matrices and vectors, finite numbers, and the
// shapes the layout dictates. It never panics, whatever the input.
func (c *Circuit) Validate() error {
	if c == nil {
		return errors.New("nil circuit")
	}
	if c.Version != FormatVersion {
		return fmt.Errorf("circuit format version %d, this build reads %d", c.Version, FormatVersion)
	}
	if err := c.Layout.Validate(); err != nil {
		return err
	}
	for _, lim := range []struct {
		field  string
		n, max int
	}{{"ops", len(c.Ops), MaxOps}, {"mats", len(c.Mats), MaxMats}, {"vecs", len(c.Vecs), MaxVecs}, {"task", len(c.Task), MaxLabel}} {
		if err := tooMany("circuit."+lim.field, "entries", lim.n, lim.max); err != nil {
			return err
		}
	}
	L := c.Layout
	bd := L.Block * L.Block
	tb := L.BlockTokens()
	if err := tooMany("circuit weights (matrix and vector entries)", "entries", c.Weights(), MaxWeights); err != nil {
		return err
	}
	for i, m := range c.Mats {
		if len(m.Name) > MaxLabel {
			return fmt.Errorf("matrix %d: name of %d bytes exceeds the limit %d", i, len(m.Name), MaxLabel)
		}
		if len(m.Blocks) != 1 && len(m.Blocks) != tb {
			return fmt.Errorf("matrix %d (%s): %d blocks, want 1 or %d (the tokens of a ciphertext)", i, m.Name, len(m.Blocks), tb)
		}
		for k, b := range m.Blocks {
			if len(b) != bd {
				return fmt.Errorf("matrix %d (%s): block %d has %d entries, want %d", i, m.Name, k, len(b), bd)
			}
			if err := finite(b); err != nil {
				return fmt.Errorf("matrix %d (%s): %w", i, m.Name, err)
			}
		}
	}
	for i, v := range c.Vecs {
		if len(v) != tb*L.Block {
			return fmt.Errorf("vector %d has %d entries, want %d", i, len(v), tb*L.Block)
		}
		if err := finite(v); err != nil {
			return fmt.Errorf("vector %d: %w", i, err)
		}
	}
	nin := L.NumTokenBlocks()
	if len(c.Ops) < nin {
		return fmt.Errorf("circuit has %d ops, fewer than its %d input ops", len(c.Ops), nin)
	}
	for i := 0; i < nin; i++ {
		if c.Ops[i].Kind != KindInput {
			return fmt.Errorf("circuit must start with its %d input ops (one per token block); op %d is %s", nin, i, c.Ops[i].Kind)
		}
	}
	outputs := 0
	for i, op := range c.Ops {
		info, ok := op.Kind.Info()
		if !ok {
			return fmt.Errorf("op %d: unknown kind %q", i, op.Kind)
		}
		if len(op.In) != info.Arity {
			return fmt.Errorf("op %d (%s): %d inputs, want %d", i, op.Kind, len(op.In), info.Arity)
		}
		for _, in := range op.In {
			if in < 0 || in >= i {
				return fmt.Errorf("op %d (%s): input %d is not an earlier op", i, op.Kind, in)
			}
			if c.Ops[in].Kind == KindOutput {
				return fmt.Errorf("op %d (%s): consumes output op %d", i, op.Kind, in)
			}
		}
		if op.Kind == KindInput && i >= nin {
			return fmt.Errorf("op %d: input op beyond the %d token blocks", i, nin)
		}
		if !(math.Abs(op.Const) <= MaxMagnitude) {
			return fmt.Errorf("op %d (%s): constant %g is not finite or exceeds the limit %g in magnitude", i, op.Kind, op.Const, float64(MaxMagnitude))
		}
		if len(op.Label) > MaxLabel {
			return fmt.Errorf("op %d (%s): label of %d bytes exceeds the limit %d", i, op.Kind, len(op.Label), MaxLabel)
		}
		switch op.Kind {
		case KindLinear:
			if op.Mat < 0 || op.Mat >= len(c.Mats) {
				return fmt.Errorf("op %d (linear): matrix %d out of range", i, op.Mat)
			}
		case KindAddPlain, KindMulPlain:
			if op.Vec < 0 || op.Vec >= len(c.Vecs) {
				return fmt.Errorf("op %d (%s): vector %d out of range", i, op.Kind, op.Vec)
			}
		case KindRotate:
			if len(op.Rot) != 1 {
				return fmt.Errorf("op %d (rotate): %d amounts, want 1", i, len(op.Rot))
			}
		case KindRotSum:
			if len(op.Rot) == 0 || len(op.Rot) > MaxRotSteps {
				return fmt.Errorf("op %d (rotsum): %d steps", i, len(op.Rot))
			}
		case KindPoly:
			if op.Poly == nil {
				return fmt.Errorf("op %d (poly): no polynomial", i)
			}
			if err := op.Poly.Validate(); err != nil {
				return fmt.Errorf("op %d (poly): %w", i, err)
			}
			if op.Poly.Degree() < 1 || op.Poly.Degree() > MaxPolyDegree {
				return fmt.Errorf("op %d (poly): degree %d outside [1, %d]", i, op.Poly.Degree(), MaxPolyDegree)
			}
			if iv := op.Poly.Interval; !(math.Abs(iv.A) <= MaxMagnitude && math.Abs(iv.B) <= MaxMagnitude) {
				return fmt.Errorf("op %d (poly): interval [%g, %g] exceeds the limit %g in magnitude", i, iv.A, iv.B, float64(MaxMagnitude))
			}
			if err := finite(op.Poly.Coeffs); err != nil {
				return fmt.Errorf("op %d (poly): coefficient %w", i, err)
			}
		case KindOutput:
			outputs++
		}
		for _, r := range op.Rot {
			if r <= -maxRot || r >= maxRot {
				return fmt.Errorf("op %d (%s): rotation %d out of range", i, op.Kind, r)
			}
		}
	}
	if want := L.OutputCiphertexts(); outputs != want {
		return fmt.Errorf("circuit has %d output ops, want %d (one per output ciphertext)", outputs, want)
	}
	if c.Planned != nil {
		if err := c.Planned.validate(len(c.Ops)); err != nil {
			return err
		}
	}
	return nil
}

// finite checks that every entry is finite and at most MaxMagnitude in
// absolute value.
func finite(v []float64) error {
	for i, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("entry %d is %g", i, x)
		}
		if math.Abs(x) > MaxMagnitude {
			return fmt.Errorf("entry %d is %g, beyond the limit %g in magnitude", i, x, float64(MaxMagnitude))
		}
	}
	return nil
}

// Labels returns the distinct op labels in first-appearance order (the layers).
func (c *Circuit) Labels() []string {
	seen := map[string]bool{}
	var out []string
	for _, op := range c.Ops {
		if !seen[op.Label] {
			seen[op.Label] = true
			out = append(out, op.Label)
		}
	}
	return out
}

// Weights returns the number of matrix and vector entries c stores (what
// MaxWeights bounds).
func (c *Circuit) Weights() int {
	n := 0
	for _, m := range c.Mats {
		for _, b := range m.Blocks {
			n += len(b)
		}
	}
	for _, v := range c.Vecs {
		n += len(v)
	}
	return n
}
