package circuit

import (
	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/polyapprox"
)

// LevelRule says how the level of an op's output follows from its inputs'.
type LevelRule int

const (
	// LevelsFromInputs: the lowest input level less the levels the op
	// consumes (OpInfo.Levels, or the polynomial's depth).
	LevelsFromInputs LevelRule = iota
	// LevelsFromFirst: the first input's level less the levels the op
	// consumes (match_scale rescales its first operand onto the second's
	// scale).
	LevelsFromFirst
	// LevelsInput: the plan's input level.
	LevelsInput
	// LevelsRefresh: the parameters' maximum level (bootstrap).
	LevelsRefresh
	// LevelsDrop: any level at or below the input's (drop_level).
	LevelsDrop
)

// KeyRule says which evaluation keys an op uses and how many key switches
// it performs.
type KeyRule int

const (
	// KeysNone: no key switch.
	KeysNone KeyRule = iota
	// KeysRelin: one relinearization (mul).
	KeysRelin
	// KeysPoly: the relinearizations of a polynomial evaluation, when its
	// degree exceeds 1.
	KeysPoly
	// KeysRot: one rotation per amount of Op.Rot, with one key per distinct
	// non-zero amount.
	KeysRot
	// KeysMatrix: the baby- and giant-step rotations of the op's matrix.
	KeysMatrix
	// KeysBootstrap: the bootstrapping keys.
	KeysBootstrap
)

// OpInfo is what the circuit's passes know of an op kind apart from what
// it computes: one row of the op table.
type OpInfo struct {
	// Arity is the number of inputs.
	Arity int
	// Levels is the number of levels the op consumes (0 for KindPoly: it
	// consumes Poly.Depth(); see Op.Levels).
	Levels int
	// Level is how the output level follows from the inputs'.
	Level LevelRule
	// Keys is the key-switching use.
	Keys KeyRule
	// Noise marks the ops after which the simulator adds rescale or
	// key-switch noise (PredictPrecision's model).
	Noise bool
	// Planned marks the ops only Plan inserts.
	Planned bool
}

// opTable is the op table: one row per kind.
var opTable = map[Kind]OpInfo{
	KindInput:      {Arity: 0, Level: LevelsInput},
	KindLinear:     {Arity: 1, Levels: 1, Keys: KeysMatrix, Noise: true},
	KindAdd:        {Arity: 2},
	KindSub:        {Arity: 2},
	KindAddPlain:   {Arity: 1},
	KindAddConst:   {Arity: 1},
	KindMulPlain:   {Arity: 1, Levels: 1, Noise: true},
	KindMulConst:   {Arity: 1, Levels: 1, Noise: true},
	KindMul:        {Arity: 2, Levels: 1, Keys: KeysRelin, Noise: true},
	KindRotate:     {Arity: 1, Keys: KeysRot, Noise: true},
	KindRotSum:     {Arity: 1, Keys: KeysRot, Noise: true},
	KindPoly:       {Arity: 1, Keys: KeysPoly, Noise: true},
	KindBootstrap:  {Arity: 1, Level: LevelsRefresh, Keys: KeysBootstrap, Planned: true},
	KindMatchScale: {Arity: 2, Levels: 1, Level: LevelsFromFirst, Planned: true},
	KindDropLevel:  {Arity: 1, Level: LevelsDrop, Planned: true},
	KindOutput:     {Arity: 1},
}

// Info returns the op table's row for k; ok is false for an unknown kind.
func (k Kind) Info() (OpInfo, bool) {
	info, ok := opTable[k]
	return info, ok
}

// Levels returns the number of levels op consumes (its own depth): the
// table's Levels, or the polynomial's depth for KindPoly. Unknown kinds
// consume none.
func (op Op) Levels() int {
	if op.Kind == KindPoly {
		return op.Poly.Depth()
	}
	return opTable[op.Kind].Levels
}

// OutLevel returns the level of op's output from its inputs' levels (in,
// indexed like op.In), for the ops whose level follows from their inputs
// (LevelsFromInputs, LevelsFromFirst); ok is false for the others.
func (op Op) OutLevel(in []int) (level int, ok bool) {
	info, known := opTable[op.Kind]
	if !known {
		return 0, false
	}
	switch info.Level {
	case LevelsFromInputs:
		return min(in[0], in[len(in)-1]) - op.Levels(), true
	case LevelsFromFirst:
		return in[0] - op.Levels(), true
	}
	return 0, false
}

// KeySwitches returns the rotations and relinearizations op performs
// (lts[op.Mat] is the transform of a KindLinear op).
func (op Op) KeySwitches(lts []*he.LinearTransform) (rots, relins int) {
	switch opTable[op.Kind].Keys {
	case KeysRelin:
		return 0, 1
	case KeysPoly:
		return 0, polyapprox.CtMultsOfDegree(op.Poly.Degree())
	case KeysRot:
		return len(op.Rot), 0
	case KeysMatrix:
		return lts[op.Mat].KeySwitches(), 0
	}
	return 0, 0
}

// Relinearizes reports whether op uses the relinearization key.
func (op Op) Relinearizes() bool {
	switch opTable[op.Kind].Keys {
	case KeysRelin:
		return true
	case KeysPoly:
		return op.Poly.Degree() > 1
	}
	return false
}

// Rotations returns the rotation amounts, normalized into [0, slots), of
// the non-zero rotations op performs, in op order, with repeats (lts[op.Mat]
// is the transform of a KindLinear op).
func (op Op) Rotations(lts []*he.LinearTransform, slots int) []int {
	switch opTable[op.Kind].Keys {
	case KeysMatrix:
		return lts[op.Mat].Rotations()
	case KeysRot:
		var out []int
		for _, r := range op.Rot {
			if r = ((r % slots) + slots) % slots; r != 0 {
				out = append(out, r)
			}
		}
		return out
	}
	return nil
}
