package he

import (
	"fmt"
	"math"
	"sort"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	lhe "github.com/tuneinsight/lattigo/v5/he"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/utils"
)

// DefaultLogBSGSRatio is the log2 of the giant-step/baby-step ratio used for
// the BSGS evaluation of linear transforms (Lattigo's LogBabyStepGianStepRatio).
const DefaultLogBSGSRatio = 1

// LinearTransform is a plaintext matrix acting on a packed ciphertext,
// evaluated with Lattigo's baby-step giant-step (BSGS) diagonal method. It
// stores only the (small) matrix; the full-slot diagonals are built one at a
// time while encoding (Encode), at the level where the transform is applied.
//
// Two slot layouts are supported:
//
//   - Dense (NewDenseTransform): a d_out×d_in matrix M, padded with zeros to
//     d×d where d is the smallest power of two >= max(d_out, d_in). The input
//     vector x (length d_in, zero-padded to d) is packed replicated: slot i
//     holds x[i mod d] (see PackReplicated). The output is packed the same
//     way: slot i holds (M x)[i mod d] (0 for i mod d >= d_out). Diagonals
//     k = 0..d-1 with diag_k[i] = M[i mod d][(i mod d + k) mod d].
//   - Block diagonal (NewBlockDiagonalTransform): nb independent d_out×d_in
//     blocks B_b (e.g. the same weight matrix once per token). Block b
//     occupies slots [b·d, (b+1)·d) with d as above; its input x_b is
//     zero-padded to d there (see PackBlocks), slots >= nb·d must be zero.
//     The output block b holds B_b x_b (zero-padded). Diagonals
//     k = -(d-1)..(d-1) (up to 2d-1 rotations of the whole vector).
type LinearTransform struct {
	slots     int
	d         int
	dOut, dIn int
	blocks    [][]float64 // row-major dOut×dIn blocks; one for dense
	dense     bool
	logRatio  int
	diags     []int // non-zero diagonal indices in [0, slots)
	n1        int   // BSGS baby-step size
	baby      []int // non-zero baby-step rotations (hoisted)
	giant     []int // non-zero giant-step rotations
	rotations []int // union of baby and giant rotations, sorted
}

func nextPow2(n int) int {
	d := 1
	for d < n {
		d <<= 1
	}
	return d
}

func checkMatrix(name string, m [][]float64) (rows, cols int, err error) {
	rows = len(m)
	if rows == 0 {
		return 0, 0, fmt.Errorf("%s: empty matrix", name)
	}
	cols = len(m[0])
	if cols == 0 {
		return 0, 0, fmt.Errorf("%s: empty matrix row", name)
	}
	for i, r := range m {
		if len(r) != cols {
			return 0, 0, fmt.Errorf("%s: row %d has %d entries, want %d", name, i, len(r), cols)
		}
		for j, v := range r {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return 0, 0, fmt.Errorf("%s: entry (%d,%d) is %g", name, i, j, v)
			}
		}
	}
	return rows, cols, nil
}

func flatten(m [][]float64, rows, cols int) []float64 {
	f := make([]float64, rows*cols)
	for i := range m {
		copy(f[i*cols:], m[i])
	}
	return f
}

// NewDenseTransform returns the transform x -> M x for the d_out×d_in matrix
// m in the replicated layout (see LinearTransform). The padded size d must
// divide the number of slots.
func NewDenseTransform(p *Parameters, m [][]float64) (*LinearTransform, error) {
	rows, cols, err := checkMatrix("dense transform", m)
	if err != nil {
		return nil, err
	}
	slots := p.Slots()
	d := nextPow2(max(rows, cols))
	if d > slots {
		return nil, fmt.Errorf("dense transform: padded size %d exceeds %d slots", d, slots)
	}
	lt := &LinearTransform{slots: slots, d: d, dOut: rows, dIn: cols, blocks: [][]float64{flatten(m, rows, cols)}, dense: true, logRatio: DefaultLogBSGSRatio}
	lt.computeDiagonals()
	return lt, nil
}

// NewBlockDiagonalTransform returns the block-diagonal transform with the
// given blocks (all of the same d_out×d_in shape) in the block layout (see
// LinearTransform). nb·d must not exceed the number of slots.
func NewBlockDiagonalTransform(p *Parameters, blocks [][][]float64) (*LinearTransform, error) {
	if len(blocks) == 0 {
		return nil, fmt.Errorf("block-diagonal transform: no blocks")
	}
	rows, cols, err := checkMatrix("block-diagonal transform: block 0", blocks[0])
	if err != nil {
		return nil, err
	}
	flat := make([][]float64, len(blocks))
	for b, m := range blocks {
		r, c, err := checkMatrix(fmt.Sprintf("block-diagonal transform: block %d", b), m)
		if err != nil {
			return nil, err
		}
		if r != rows || c != cols {
			return nil, fmt.Errorf("block-diagonal transform: block %d is %d×%d, block 0 is %d×%d", b, r, c, rows, cols)
		}
		flat[b] = flatten(m, rows, cols)
	}
	return newBlockTransform(p, flat, rows, cols)
}

func newBlockTransform(p *Parameters, flat [][]float64, rows, cols int) (*LinearTransform, error) {
	slots := p.Slots()
	d := nextPow2(max(rows, cols))
	if len(flat)*d > slots {
		return nil, fmt.Errorf("block-diagonal transform: %d blocks of padded size %d exceed %d slots", len(flat), d, slots)
	}
	if 2*d > slots {
		return nil, fmt.Errorf("block-diagonal transform: padded block size %d must be at most half of the %d slots (use NewDenseTransform)", d, slots)
	}
	lt := &LinearTransform{slots: slots, d: d, dOut: rows, dIn: cols, blocks: flat, logRatio: DefaultLogBSGSRatio}
	lt.computeDiagonals()
	return lt, nil
}

// NewRepeatedBlockTransform returns the block-diagonal transform with
// nBlocks copies of the same d_out×d_in matrix m (e.g. one linear layer
// applied to every token), storing m once.
func NewRepeatedBlockTransform(p *Parameters, m [][]float64, nBlocks int) (*LinearTransform, error) {
	if nBlocks < 1 {
		return nil, fmt.Errorf("repeated block transform: %d blocks", nBlocks)
	}
	rows, cols, err := checkMatrix("repeated block transform", m)
	if err != nil {
		return nil, err
	}
	flat := flatten(m, rows, cols)
	blocks := make([][]float64, nBlocks)
	for b := range blocks {
		blocks[b] = flat // shared, read-only
	}
	return newBlockTransform(p, blocks, rows, cols)
}

// WithLogBSGSRatio returns a copy of the transform that uses the given
// log2 giant/baby-step ratio (>= 0) instead of DefaultLogBSGSRatio.
func (lt *LinearTransform) WithLogBSGSRatio(logRatio int) (*LinearTransform, error) {
	if logRatio < 0 {
		return nil, fmt.Errorf("linear transform: BSGS log ratio %d < 0", logRatio)
	}
	c := *lt
	c.logRatio = logRatio
	c.computeDiagonals()
	return &c, nil
}

// at returns entry (r, c) of block b (0 outside the d_out×d_in block).
func (lt *LinearTransform) at(b, r, c int) float64 {
	if r >= lt.dOut || c < 0 || c >= lt.dIn {
		return 0
	}
	return lt.blocks[b][r*lt.dIn+c]
}

// diagonalEntries returns whether diagonal k (in [0, slots)) has a non-zero
// entry.
func (lt *LinearTransform) diagonalNonZero(k int) bool {
	if lt.dense {
		for r := 0; r < lt.dOut; r++ {
			if lt.at(0, r, (r+k)%lt.d) != 0 {
				return true
			}
		}
		return false
	}
	off := k
	if off > lt.slots/2 {
		off -= lt.slots
	}
	for b := range lt.blocks {
		for r := 0; r < lt.dOut; r++ {
			if lt.at(b, r, r+off) != 0 {
				return true
			}
		}
	}
	return false
}

func (lt *LinearTransform) computeDiagonals() {
	var diags []int
	if lt.dense {
		for k := 0; k < lt.d; k++ {
			if lt.diagonalNonZero(k) {
				diags = append(diags, k)
			}
		}
	} else {
		for off := -(lt.d - 1); off <= lt.d-1; off++ {
			k := (off + lt.slots) % lt.slots
			if lt.diagonalNonZero(k) {
				diags = append(diags, k)
			}
		}
	}
	if len(diags) == 0 { // zero matrix: keep diagonal 0 so that the transform is well defined
		diags = []int{0}
	}
	sort.Ints(diags)
	lt.diags = diags
	lt.n1 = lhe.FindBestBSGSRatio(diags, lt.slots, lt.logRatio)
	index, _, rotN2 := lhe.BSGSIndex(diags, lt.slots, lt.n1)
	lt.baby = lt.baby[:0:0]
	for _, r := range rotN2 {
		if r != 0 {
			lt.baby = append(lt.baby, r)
		}
	}
	lt.giant = lt.giant[:0:0]
	for j := range index {
		if j != 0 {
			lt.giant = append(lt.giant, j)
		}
	}
	sort.Ints(lt.giant)
	set := map[int]bool{}
	for _, r := range append(append([]int(nil), lt.baby...), lt.giant...) {
		set[r] = true
	}
	lt.rotations = lt.rotations[:0:0]
	for r := range set {
		lt.rotations = append(lt.rotations, r)
	}
	sort.Ints(lt.rotations)
}

// BlockSize returns the padded block size d.
func (lt *LinearTransform) BlockSize() int { return lt.d }

// Blocks returns the number of blocks (1 for a dense transform).
func (lt *LinearTransform) Blocks() int { return len(lt.blocks) }

// Diagonals returns the indices (in [0, slots)) of the non-zero diagonals.
func (lt *LinearTransform) Diagonals() []int { return append([]int(nil), lt.diags...) }

// Rotations returns the distinct non-zero left-rotation amounts (in
// [0, slots)) the BSGS evaluation performs: the hoisted baby steps and the
// giant steps. Generate exactly these rotation keys.
func (lt *LinearTransform) Rotations() []int { return append([]int(nil), lt.rotations...) }

// GaloisElements returns the Galois elements of Rotations, i.e. exactly the
// Galois keys the evaluation needs.
func (lt *LinearTransform) GaloisElements(p *Parameters) []uint64 {
	return p.HE().GaloisElements(lt.rotations)
}

// BabySteps returns the non-zero baby-step rotations (hoisted: one shared
// decomposition of the input), sorted.
func (lt *LinearTransform) BabySteps() []int {
	b := append([]int(nil), lt.baby...)
	sort.Ints(b)
	return b
}

// GiantSteps returns the non-zero giant-step rotations, sorted.
func (lt *LinearTransform) GiantSteps() []int { return append([]int(nil), lt.giant...) }

// LogBSGSRatio returns the log2 giant/baby-step ratio the transform uses.
func (lt *LinearTransform) LogBSGSRatio() int { return lt.logRatio }

// KeySwitches returns the number of key switches one evaluation performs:
// the hoisted baby-step rotations plus the giant-step rotations.
func (lt *LinearTransform) KeySwitches() int { return len(lt.baby) + len(lt.giant) }

// diagonal builds the full-slot vector of diagonal k.
func (lt *LinearTransform) diagonal(k int, v []float64) {
	for i := range v {
		v[i] = 0
	}
	if lt.dense {
		for i := range v {
			r := i % lt.d
			v[i] = lt.at(0, r, (r+k)%lt.d)
		}
		return
	}
	off := k
	if off > lt.slots/2 {
		off -= lt.slots
	}
	for b := range lt.blocks {
		for r := 0; r < lt.dOut; r++ {
			v[b*lt.d+r] = lt.at(b, r, r+off)
		}
	}
}

// EncodedLinearTransform is a LinearTransform encoded for evaluation at one
// level (plaintext diagonals at scale Q[level]). It is read-only during
// evaluation and may be shared by concurrent evaluators.
type EncodedLinearTransform struct {
	src   *LinearTransform
	lt    hefloat.LinearTransformation
	level int
}

// Level returns the level the transform was encoded for.
func (enc *EncodedLinearTransform) Level() int { return enc.level }

// Transform returns the plaintext transform it was encoded from.
func (enc *EncodedLinearTransform) Transform() *LinearTransform { return enc.src }

// encode encodes the transform for ciphertexts at level, with diagonals at
// scale Q[level] so that the rescale after evaluation restores the input
// scale exactly. Diagonals are built and encoded one at a time, so at most
// one full-slot float64 vector is alive besides the encoded plaintexts.
func (lt *LinearTransform) encode(params hefloat.Parameters, ecd *hefloat.Encoder, level int) (*EncodedLinearTransform, error) {
	if ecd == nil {
		return nil, fmt.Errorf("encode linear transform: nil encoder")
	}
	if level < 0 || level > params.MaxLevel() {
		return nil, fmt.Errorf("encode linear transform: level %d outside [0, %d]", level, params.MaxLevel())
	}
	if params.MaxSlots() != lt.slots {
		return nil, fmt.Errorf("encode linear transform: built for %d slots, parameters have %d", lt.slots, params.MaxSlots())
	}
	scale := rlwe.NewScale(params.Q()[level])
	for i := 1; i < params.LevelsConsumedPerRescaling(); i++ {
		scale = scale.Mul(rlwe.NewScale(params.Q()[level-i]))
	}
	ltParams := hefloat.LinearTransformationParameters{
		DiagonalsIndexList:       lt.diags,
		Level:                    level,
		Scale:                    scale,
		LogDimensions:            params.LogMaxDimensions(),
		LogBabyStepGianStepRatio: lt.logRatio,
	}
	enc := hefloat.NewLinearTransformation(params, ltParams)
	if enc.N1 != lt.n1 {
		return nil, fmt.Errorf("encode linear transform: BSGS split %d differs from the planned %d", enc.N1, lt.n1)
	}
	// Same encoding as hefloat.EncodeLinearTransformation (BSGS: diagonal
	// i+j pre-rotated right by j), one diagonal at a time.
	index, _, _ := lhe.LinearTransformation(enc).BSGSIndex()
	v := make([]float64, lt.slots)
	rotated := make([]float64, lt.slots)
	for j, is := range index {
		rot := -j & (lt.slots - 1)
		for _, i := range is {
			poly, ok := enc.Vec[i+j]
			if !ok {
				return nil, fmt.Errorf("encode linear transform: diagonal %d not allocated", i+j)
			}
			lt.diagonal(i+j, v)
			values := v
			if rot != 0 {
				utils.RotateSliceAllocFree(v, rot, rotated)
				values = rotated
			}
			if err := ecd.Embed(values, enc.MetaData, poly); err != nil {
				return nil, fmt.Errorf("encode linear transform: diagonal %d: %w", i+j, err)
			}
		}
	}
	return &EncodedLinearTransform{src: lt, lt: enc, level: level}, nil
}

// EncodeLinearTransform encodes lt with the evaluator's encoder at level.
func (e *Evaluator) EncodeLinearTransform(lt *LinearTransform, level int) (*EncodedLinearTransform, error) {
	if lt == nil {
		return nil, fmt.Errorf("encode linear transform: nil transform")
	}
	return lt.encode(e.params, e.ecd, level)
}

// LinearTransform evaluates enc on ct and rescales (1 level). A ciphertext
// above enc.Level() is first dropped to it; below it is an error (re-encode
// at the right level). Key switches recorded: enc.Transform().KeySwitches().
func (e *Evaluator) LinearTransform(ct *Ciphertext, enc *EncodedLinearTransform) (*Ciphertext, error) {
	outs, err := e.linearTransforms("linear transform", ct, []*EncodedLinearTransform{enc})
	if err != nil {
		return nil, err
	}
	return outs[0], nil
}

// LinearTransformMany evaluates several transforms on the same ct with one
// shared (hoisted) key-switching decomposition, and rescales each output.
// All transforms must be encoded at the same level. Key switches: baby-step
// rotations already computed for the previous transform are reused.
func (e *Evaluator) LinearTransformMany(ct *Ciphertext, encs []*EncodedLinearTransform) ([]*Ciphertext, error) {
	return e.linearTransforms("linear transform many", ct, encs)
}

func (e *Evaluator) linearTransforms(op string, ct *Ciphertext, encs []*EncodedLinearTransform) ([]*Ciphertext, error) {
	if err := checkCt(op, ct); err != nil {
		return nil, err
	}
	if len(encs) == 0 {
		return nil, fmt.Errorf("%s: no transforms", op)
	}
	level := -1
	for i, enc := range encs {
		if enc == nil {
			return nil, fmt.Errorf("%s: transform %d is nil", op, i)
		}
		if level >= 0 && enc.level != level {
			return nil, fmt.Errorf("%s: transform %d encoded at level %d, transform 0 at level %d", op, i, enc.level, level)
		}
		level = enc.level
	}
	if ct.Level() < level {
		return nil, fmt.Errorf("%s: transform encoded for level %d, ciphertext is at level %d (encode at the level where it is applied)", op, level, ct.Level())
	}
	if level < e.params.LevelsConsumedPerRescaling() {
		return nil, &LevelError{Op: op, Needed: 1, Left: 0}
	}
	// Rotation keys and key-switch count (reproducing Lattigo's reuse of
	// pre-rotated baby steps across consecutive transforms).
	ks := 0
	var prev map[int]bool
	rots := 0
	for _, enc := range encs {
		for _, r := range enc.src.rotations {
			if err := e.checkRotKey(op, r, level); err != nil {
				return nil, err
			}
		}
		cur := map[int]bool{}
		for _, r := range enc.src.baby {
			cur[r] = true
			if !prev[r] {
				ks++
			}
		}
		ks += len(enc.src.giant)
		rots += len(enc.src.baby) + len(enc.src.giant)
		prev = cur
	}
	s := e.begin(ct)
	in := ct
	if ct.Level() > level {
		in = e.eval.DropLevelNew(ct, ct.Level()-level)
	}
	lts := make([]hefloat.LinearTransformation, len(encs))
	outs := make([]*Ciphertext, len(encs))
	for i, enc := range encs {
		lts[i] = enc.lt
		outs[i] = hefloat.NewCiphertext(e.params, 1, level)
	}
	if err := hefloat.NewLinearTransformationEvaluator(e.eval).EvaluateMany(in, lts, outs); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	for i := range outs {
		if err := e.eval.Rescale(outs[i], outs[i]); err != nil {
			return nil, fmt.Errorf("%s: rescale: %w", op, err)
		}
		outs[i].Scale = in.Scale // exact: diagonals were encoded at Q[level]
	}
	note := fmt.Sprintf("%d transform(s), BSGS, 1 shared decomposition", len(encs))
	var all []int
	for _, enc := range encs {
		all = append(all, enc.src.rotations...)
	}
	e.endKeys(s, OpLinearTransform, outs[0], ks, rots, true, note, e.rotUses(all, level))
	return outs, nil
}

// PackReplicated returns the slot vector of the replicated layout: slot i
// holds x[i mod d] (x zero-padded to d), for d a power of two dividing slots.
func PackReplicated(x []float64, d, slots int) ([]float64, error) {
	if d <= 0 || d&(d-1) != 0 || slots%d != 0 {
		return nil, fmt.Errorf("pack replicated: block size %d must be a power of two dividing %d slots", d, slots)
	}
	if len(x) > d {
		return nil, fmt.Errorf("pack replicated: %d values > block size %d", len(x), d)
	}
	v := make([]float64, slots)
	for i := range v {
		if r := i % d; r < len(x) {
			v[i] = x[r]
		}
	}
	return v, nil
}

// PackBlocks returns the slot vector of the block layout: block b (xs[b],
// zero-padded to d) in slots [b·d, (b+1)·d), zeros elsewhere.
func PackBlocks(xs [][]float64, d, slots int) ([]float64, error) {
	if d <= 0 || len(xs)*d > slots {
		return nil, fmt.Errorf("pack blocks: %d blocks of size %d do not fit %d slots", len(xs), d, slots)
	}
	v := make([]float64, slots)
	for b, x := range xs {
		if len(x) > d {
			return nil, fmt.Errorf("pack blocks: block %d has %d values > block size %d", b, len(x), d)
		}
		copy(v[b*d:], x)
	}
	return v, nil
}
