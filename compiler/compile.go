package compiler

import (
	"errors"
	"fmt"
	"strings"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
)

// CompileOptions control the lowering.
type CompileOptions struct {
	// Batch is the number of inputs per ciphertext (a power of two; 0 means 1).
	Batch int
	// OneDiagonalPerCiphertext disables the packing of several attention
	// diagonals into one ciphertext (the baseline layout of docs/design.md §3, kept as
	// the baseline the packed layout is measured against).
	OneDiagonalPerCiphertext bool
	// NoReplicatedStream keeps the residual stream in the first channels of
	// each token block only (the layout before replication, kept as the
	// baseline the replicated layout is measured against).
	NoReplicatedStream bool
	// LegacyPackedAttention keeps the packed attention layout as it was
	// before issue 15's attention work (one score product per diagonal, the
	// reciprocal multiplied into every group's weights before the
	// broadcast), the baseline the current packed layout is measured
	// against.
	LegacyPackedAttention bool
	// CompactAttention uses the compact scores of attentionCompact where
	// they fit (at most dhp diagonal groups): fewer key switches than the
	// packed layout, but G·dh masked products each way, which the executor
	// pays with an encoding and a rescale each (slower at the measured
	// shapes; see benchmarks/cost/README.md).
	CompactAttention bool
	// Block is the channel stride (Layout.Block), a power of two; 0 means
	// the widest activation's, so that every activation of one input is one
	// ciphertext (the layout of every model that fits its ring). A smaller
	// Block, at least the stream's (model width, input width, the heads'
	// padded width, classes), is the channel-block split: the FFN hidden
	// activation spans ceil(hidden/Block) ciphertexts (docs/packing.md).
	Block int
	// TokenBlock is the number of tokens per ciphertext (Tb, a power of two
	// dividing the model's tokens); 0 means all of them. A smaller one is
	// the token-block split: the tokens of one input span tokens/Tb
	// ciphertexts (Layout.TokenBlocks, docs/packing.md). Attention then
	// uses the diagonal method across blocks (the packed layouts are not
	// split: CompactAttention and LegacyPackedAttention are refused).
	TokenBlock int
	// test knob: cap the diagonal copies per ciphertext (0: none) so that
	// small test models get several diagonal groups.
	maxCopies int
}

// Compile lowers a calibrated model (every non-linearity site has its
// polynomial spec installed, as after Calibrate or checkpoint loading of a
// calibrated model) to a circuit whose simulation reproduces the model's
// poly-mode logits. The model's mode is not changed.
func Compile(m *model.Model, opt CompileOptions) (*circuit.Circuit, error) {
	if m == nil {
		return nil, errors.New("compile: nil model")
	}
	if err := m.Cfg.Validate(); err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	for _, s := range m.Sites() {
		if s.Spec() == nil {
			return nil, fmt.Errorf("compile: site %s has no polynomial (calibrate the model first)", s.Name)
		}
	}
	if err := checkModelWeights(m); err != nil {
		return nil, err
	}
	batch := opt.Batch
	if batch == 0 {
		batch = 1
	}
	t, stream, d, err := shape(m)
	if err != nil {
		return nil, err
	}
	if opt.Block != 0 {
		if opt.Block&(opt.Block-1) != 0 || opt.Block < stream || opt.Block > d {
			return nil, fmt.Errorf("compile: channel block %d: want a power of two in [%d, %d] (the stream's width, the widest activation's)", opt.Block, stream, d)
		}
		d = opt.Block
	}
	cfg := m.Cfg
	L := circuit.Layout{Tokens: t, Batch: batch, Block: d, InputWidth: cfg.Patch * cfg.Patch, Outputs: cfg.Classes, OutputTokens: 1}
	if cfg.Task == model.TaskText {
		L.InputWidth, L.Outputs, L.OutputTokens = cfg.Vocab, cfg.Vocab, t
	}
	if k := channelBlocks(cfg.Hidden, d); k > 1 {
		L.ChannelBlocks = k
	}
	if tb := opt.TokenBlock; tb != 0 && tb != t {
		if tb < 1 || tb&(tb-1) != 0 || tb > t {
			return nil, fmt.Errorf("compile: token block %d: want a power of two in [1, %d] (the model's tokens)", tb, t)
		}
		if opt.CompactAttention || opt.LegacyPackedAttention {
			return nil, fmt.Errorf("compile: token block %d: the compact and legacy packed attention layouts are not split over token blocks (use the default)", tb)
		}
		L.TokenBlocks = t / tb
	}
	if err := L.Validate(); err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	b := &builder{c: &circuit.Circuit{Version: circuit.FormatVersion, Task: cfg.Task, Layout: L}, m: m, L: L, d: cfg.Width,
		heads: cfg.Heads, dh: cfg.Width / cfg.Heads, causal: cfg.Task == model.TaskText, noPack: opt.OneDiagonalPerCiphertext}
	b.dhp = nextPow2(b.dh)
	b.maxCopies = opt.maxCopies
	b.compact, b.legacyAttn = opt.CompactAttention, opt.LegacyPackedAttention
	if P := nextPow2(cfg.Width); !opt.NoReplicatedStream && 2*P <= d {
		b.P = P
	}
	ins := make([]int, L.NumTokenBlocks()) // input op i reads token block i
	for i := range ins {
		ins[i] = b.op(circuit.Op{Kind: circuit.KindInput, Label: "input"})
	}
	x, err := b.perBlock(func(i int) (int, error) { return b.embed(ins[i]) })
	if err != nil {
		return nil, err
	}
	sigma := 1.0
	for l, blk := range m.Blocks {
		if x, sigma, err = b.block(fmt.Sprintf("blocks.%d", l), blk, x, sigma); err != nil {
			return nil, err
		}
	}
	fs := make([]feed, len(x))
	if _, err := b.perBlock(func(i int) (int, error) {
		fs[i], err = b.norm("norm", m.FinalNorm, x[i], sigma)
		return 0, err
	}); err != nil {
		return nil, err
	}
	if cfg.Task == model.TaskText {
		// LM head on every token, one output per token block
		_, _ = b.perBlock(func(i int) (int, error) {
			id, bias := b.linearFromModel("head", m.Head, 0, m.Head.Out, fs[i], ident, ident, func(int) float64 { return 1 }, false, nil)
			y := b.op(circuit.Op{Kind: circuit.KindLinear, In: []int{fs[i].id}, Mat: id, Label: "head"})
			y = b.op(circuit.Op{Kind: circuit.KindAddPlain, In: []int{y}, Vec: b.vec(bias), Label: "head"})
			return b.op(circuit.Op{Kind: circuit.KindOutput, In: []int{y}, Label: "output"}), nil
		})
		if err := b.c.Validate(); err != nil {
			return nil, fmt.Errorf("compile: the lowered circuit is invalid (weights, folded normalization or calibrated ranges out of range): %w", err)
		}
		return b.c, nil
	}
	// mean pool: butterfly over each block's tokens leaves the block's
	// token sum in every token row; the blocks' sums are added.
	var rots []int
	for k := 1; k < L.BlockTokens(); k <<= 1 {
		rots = append(rots, k*L.RowStride())
	}
	pooled, _ := b.perBlock(func(i int) (int, error) {
		if len(rots) == 0 { // one token per block
			return fs[i].id, nil
		}
		return b.op(circuit.Op{Kind: circuit.KindRotSum, In: []int{fs[i].id}, Rot: rots, Label: "pool"}), nil
	})
	b.tb = 0
	f := fs[0]
	f.id = b.sumTree("pool", pooled)
	// sum of a constant beta over T tokens is T*beta: the 1/T below makes it beta again.
	id, bias := b.linearFromModel("head", m.Head, 0, m.Head.Out, f, ident, ident,
		func(int) float64 { return 1 }, false, nil)
	for i := range b.c.Mats[id].Blocks[0] {
		b.c.Mats[id].Blocks[0][i] /= float64(t)
	}
	// the beta part of the bias was computed with beta (not T*beta): fine,
	// since the matrix (and not the bias) carries the 1/T.
	y := b.op(circuit.Op{Kind: circuit.KindLinear, In: []int{f.id}, Mat: id, Label: "head"})
	y = b.op(circuit.Op{Kind: circuit.KindAddPlain, In: []int{y}, Vec: b.vec(bias), Label: "head"})
	b.op(circuit.Op{Kind: circuit.KindOutput, In: []int{y}, Label: "output"})
	if err := b.c.Validate(); err != nil {
		return nil, fmt.Errorf("compile: the lowered circuit is invalid (weights, folded normalization or calibrated ranges out of range): %w", err)
	}
	return b.c, nil
}

// DefaultPresets are the presets CompileFor tries, smallest first: the
// secure leveled sets, then the bootstrapping set when allowed.
func DefaultPresets(allowBootstrap bool) []string {
	ps := []string{he.PresetN14, he.PresetN15, he.PresetN16}
	if allowBootstrap {
		ps = append(ps, he.PresetN16Boot)
	}
	return ps
}

// Options control CompileFor.
type Options struct {
	// Batch is the number of inputs per ciphertext; 0 means the largest
	// batch the preset's slots hold.
	Batch int
	// AllowBootstrap lets a preset with bootstrapping get bootstraps where
	// the levels run out, and adds the bootstrapping preset to those tried
	// for preset "".
	AllowBootstrap bool
	// AllowInsecure accepts a preset below 128-bit security (tests only):
	// without it CompileFor refuses one (he.RequireSecure).
	AllowInsecure bool
}

// CompileFor compiles m and plans it: for the named preset, or (preset
// "") for the first of DefaultPresets whose levels suffice. It refuses a
// preset below 128-bit security unless opt.AllowInsecure. The error names
// the levels needed and available when no preset fits.
func CompileFor(m *model.Model, preset string, opt Options) (*circuit.Circuit, *he.Parameters, error) {
	names := []string{preset}
	if preset == "" {
		names = DefaultPresets(opt.AllowBootstrap)
	}
	var errs []string
	for _, name := range names {
		p, err := he.ParametersFromPreset(name)
		if err != nil {
			return nil, nil, fmt.Errorf("compile: %w", err)
		}
		if _, err := he.RequireSecure(p, opt.AllowInsecure); err != nil {
			return nil, nil, fmt.Errorf("compile: preset %q: %w", name, err)
		}
		pk, err := MaxBatch(m, p.Slots())
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		if opt.Batch != 0 {
			pk.Batch = opt.Batch
		}
		c, err := Compile(m, CompileOptions{Batch: pk.Batch, Block: pk.Block, TokenBlock: pk.TokenBlock})
		if err != nil {
			return nil, nil, err
		}
		pc, err := circuit.Plan(c, p, circuit.PlanOptions{AllowBootstrap: opt.AllowBootstrap && p.HasBootstrapping()})
		if err == nil {
			return pc, p, nil
		}
		var le *circuit.LevelError
		if !errors.As(err, &le) && preset == "" {
			errs = append(errs, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		if preset != "" {
			return nil, nil, fmt.Errorf("compile: %w", err)
		}
		errs = append(errs, le.Error())
	}
	return nil, nil, fmt.Errorf("compile: no preset fits: %s", strings.Join(errs, "; "))
}
