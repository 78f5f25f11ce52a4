package compiler

import (
	"errors"
	"fmt"

	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
)

func nextPow2(n int) int {
	d := 1
	for d < n {
		d <<= 1
	}
	return d
}

// shape returns the tokens T of a model and two channel strides: stream,
// the power of two of the widest activation other than the FFN hidden
// (model width, input width, the heads' padded width, classes), and full,
// the power of two of the widest activation of all. Block = full packs
// every activation of one input in one ciphertext (the layout of every
// model that fits); stream <= Block < full is the channel-block split:
// the FFN hidden spans ceil(hidden/Block) ciphertexts (docs/packing.md).
func shape(m *model.Model) (t, stream, full int, err error) {
	cfg := m.Cfg
	t = cfg.Tokens()
	if t < 2 || t&(t-1) != 0 {
		return 0, 0, 0, fmt.Errorf("compile: %d tokens; the packing needs a power of two >= 2 (choose patch/context accordingly)", t)
	}
	dh := cfg.Width / cfg.Heads
	in := 256
	if cfg.Task == model.TaskMNIST {
		in = cfg.Patch * cfg.Patch
	}
	stream = nextPow2(max(cfg.Width, in, cfg.Heads*nextPow2(dh)))
	if cfg.Task == model.TaskMNIST {
		stream = nextPow2(max(stream, cfg.Classes))
	}
	return t, stream, max(stream, nextPow2(cfg.Hidden)), nil
}

// channelBlocks returns the number of ciphertexts an activation of width
// channels spans at a channel stride of block.
func channelBlocks(width, block int) int { return (width + block - 1) / block }

// Packing is how one batch of inputs is laid out over ciphertexts: the
// inputs per ciphertext, the channel stride (Layout.Block) and the tokens
// per ciphertext (CompileOptions.TokenBlock; the model's tokens when they
// are not split).
type Packing struct {
	Batch, Block, TokenBlock int
}

// MaxBatch returns the packing of the largest batch (power of two) a ring
// with the given number of slots holds for the model: the full stride when
// one input's widest activation fits one ciphertext; else the stream's
// stride with the FFN hidden split over channel blocks; else, when even
// the stream's tokens do not fit, also the token-block split with the
// largest token block that fits (batch 1). The error names the slots each
// packing needs.
func MaxBatch(m *model.Model, slots int) (Packing, error) {
	if m == nil {
		return Packing{}, errors.New("max batch: nil model")
	}
	t, stream, full, err := shape(m)
	if err != nil {
		return Packing{}, err
	}
	if t*full <= slots {
		return Packing{Batch: slots / (t * full), Block: full, TokenBlock: t}, nil
	}
	if t*stream <= slots {
		return Packing{Batch: slots / (t * stream), Block: stream, TokenBlock: t}, nil
	}
	tb := 1
	for 2*tb*stream <= slots {
		tb *= 2
	}
	if tb*stream <= slots && t/tb <= circuit.MaxTokenBlocks {
		return Packing{Batch: 1, Block: stream, TokenBlock: tb}, nil
	}
	return Packing{}, fmt.Errorf("max batch: one input needs %d tokens × %d channels = %d slots, the ring has %d; "+
		"split by channel blocks (the FFN hidden over %d ciphertexts) it still needs %d tokens × %d channels = %d slots; "+
		"split by token blocks too it needs %d ciphertexts of %d tokens (at most %d token blocks, one token's %d channels in one ring)",
		t, full, t*full, slots, channelBlocks(m.Cfg.Hidden, stream), t, stream, t*stream,
		t/tb, tb, circuit.MaxTokenBlocks, stream)
}
