package circuit

import (
	"fmt"

	"github.com/polyformer/polyformer/he"
)

// Limits of circuits. Every decoder and Validate check them, so that no
// circuit file can make a command allocate without bound: a circuit comes
// from a server the client does not trust. The recorded circuits are far
// below them (benchmarks/compiler: at most 275 ops, 16 matrices, 5.1M
// weights, block 256, 16 tokens, 12 MB).
const (
	// MaxCircuitPayload caps a circuit file's payload (1 GiB: the
	// BERT-tiny-shaped LM of benchmarks/bert, whose per-token Q and out
	// projections are 2 × 2 × 128 dense 256×256 blocks, writes 0.27 GB,
	// within a few MB of the former 256 MiB cap).
	MaxCircuitPayload = 1 << 30
	// MaxTokens bounds Layout.Tokens.
	MaxTokens = 4096
	// MaxBlock bounds Layout.Block (channels per token: every width of the model).
	MaxBlock = 1024
	// MaxChannelBlocks bounds Layout.ChannelBlocks (ciphertexts one
	// activation spans).
	MaxChannelBlocks = 64
	// MaxTokenBlocks bounds Layout.TokenBlocks (ciphertexts the tokens of
	// one input span).
	MaxTokenBlocks = 64
	// MaxLayoutSlots bounds Layout.Slots() (the slots of the largest ring, logN=17).
	MaxLayoutSlots = 1 << 17
	// MaxOps bounds the number of ops.
	MaxOps = 1 << 18
	// MaxMats and MaxVecs bound the number of matrices and slot patterns.
	MaxMats = 1 << 12
	MaxVecs = 1 << 14
	// MaxWeights bounds the matrix and vector entries of a circuit together
	// (2^27, 1 GB of float64: the BERT-tiny-shaped LM of benchmarks/bert has
	// 43.6M, the BERT-base-shaped classifier's dry run 128M).
	MaxWeights = 1 << 27
	// MaxOpNumbers bounds the numbers carried by ops together (inputs,
	// rotation amounts, polynomial coefficients).
	MaxOpNumbers = 1 << 22
	// MaxPolyDegree bounds the degree of a polynomial op.
	MaxPolyDegree = 1023
	// MaxRotSteps bounds the steps of a rotsum op.
	MaxRotSteps = 64
	// MaxRotationKeys bounds the rotation keys of a plan.
	MaxRotationKeys = 1 << 16
	// MaxLabel bounds op labels, matrix names and the task name (bytes).
	MaxLabel = 256
	// MaxMagnitude bounds the absolute value of every weight, vector entry,
	// constant, polynomial coefficient and polynomial interval end (2^20):
	// CKKS at a 2^40 scale keeps about 2^15 before its modulus overflows, so
	// anything larger is a corrupted or hostile file, not a model.
	MaxMagnitude = 1 << 20
	// maxNumberBytes is the longest JSON encoding of one number we write
	// (with its separator), for byte budgets.
	maxNumberBytes = 32
)

// LimitError says that a field of an input exceeds a stated bound. It
// wraps he.ErrTooLarge.
type LimitError struct {
	Field string // e.g. "circuit.ops", "layout.block"
	What  string // unit, e.g. "entries", "bytes"
	Value int64  // the declared or counted value; -1 when only "more than Limit" is known
	Limit int64
}

// Error implements error.
func (e *LimitError) Error() string {
	if e.Value < 0 {
		return fmt.Sprintf("%s: more than %d %s (limit %d)", e.Field, e.Limit, e.What, e.Limit)
	}
	return fmt.Sprintf("%s: %d %s exceeds the limit %d", e.Field, e.Value, e.What, e.Limit)
}

// Unwrap makes errors.Is(err, he.ErrTooLarge) hold.
func (e *LimitError) Unwrap() error { return he.ErrTooLarge }

func tooMany(field, what string, value, limit int) error {
	if value > limit {
		return &LimitError{Field: field, What: what, Value: int64(value), Limit: int64(limit)}
	}
	return nil
}
