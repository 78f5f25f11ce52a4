package circuit

import (
	"fmt"
	"slices"
	"strings"

	"github.com/polyformer/polyformer/he"
)

// Per-key levels.
//
// A switching key works on ciphertexts at its level or below, and its size
// grows with its level, so every key is generated at the highest level at
// which the circuit uses it: the level of the ciphertext the op switches
// (the input of a rotation, rotsum or linear op; the lower input of a
// product; a polynomial's input, one below for an interval other than
// [-1, 1], whose change of basis rescales first). In Lattigo v5.0.7 a key
// below the ciphertext's level gives garbage without any error, so the
// executor checks every key against these levels before evaluating
// (checkKeyLevels) and the traced evaluator refuses such a key at each op.

// KeyLevels are the levels of a circuit's evaluation keys.
type KeyLevels struct {
	// Relinearization is the relinearization key's level (0 without it).
	Relinearization int `json:"relinearization"`
	// Rotations[i] is the level of the key of KeyNeeds.Rotations[i].
	Rotations []int `json:"rotations"`
}

// keyUse is the highest level at which the circuit uses a key and the first
// op that uses it there.
type keyUse struct{ level, op int }

// keyUses returns the use of the relinearization key (op -1 when unused)
// and of each rotation key (normalized amounts), from the op graph and the
// plan's levels.
func (c *Circuit) keyUses(p *he.Parameters, levels []int, lts []*he.LinearTransform) (relin keyUse, rots map[int]keyUse) {
	slots := p.Slots()
	relin = keyUse{level: -1, op: -1}
	rots = map[int]keyUse{}
	use := func(u *keyUse, level, op int) {
		if level > u.level {
			*u = keyUse{level: level, op: op}
		}
	}
	rot := func(r, level, op int) {
		u, ok := rots[r]
		if !ok {
			u = keyUse{level: -1, op: -1}
		}
		use(&u, level, op)
		rots[r] = u
	}
	in := func(op Op, k int) int { return levels[op.In[k]] }
	for i, op := range c.Ops {
		switch opTable[op.Kind].Keys {
		case KeysRelin:
			use(&relin, min(in(op, 0), in(op, 1)), i)
		case KeysPoly:
			if op.Relinearizes() {
				use(&relin, he.PolynomialRelinLevel(in(op, 0), *op.Poly), i)
			}
		}
		for _, r := range op.Rotations(lts, slots) {
			rot(r, in(op, 0), i)
		}
	}
	return relin, rots
}

// keyLevels returns the levels of the keys k lists (k from KeyNeeds).
func (c *Circuit) keyLevels(p *he.Parameters, levels []int, lts []*he.LinearTransform, k KeyNeeds) *KeyLevels {
	relin, rots := c.keyUses(p, levels, lts)
	kl := &KeyLevels{Rotations: make([]int, len(k.Rotations))}
	if k.Relinearization {
		kl.Relinearization = relin.level
	}
	for i, r := range k.Rotations {
		kl.Rotations[i] = rots[r].level
	}
	return kl
}

// checkKeyLevels refuses keys below the level at which the circuit uses
// them (recomputed from the ops and the plan's levels, whatever the key
// spec says): Lattigo would return garbage without an error. The error
// names the key, its level, the use level and the op.
func (x *Executor) checkKeyLevels(keys *he.EvaluationKeys) error {
	c, p := x.c, x.params
	relin, rots := c.keyUses(p, c.Planned.Levels, x.lts)
	var bad []string
	op := func(i int) string { return fmt.Sprintf("op %d, %s in %.64s", i, c.Ops[i].Kind, c.Ops[i].Label) }
	if relin.op >= 0 {
		if l, ok := keys.RelinearizationKeyLevel(); ok && l < relin.level {
			bad = append(bad, fmt.Sprintf("the relinearization key is at level %d, the circuit uses it at level %d (%s)", l, relin.level, op(relin.op)))
		}
	}
	amounts := make([]int, 0, len(rots))
	for r := range rots {
		amounts = append(amounts, r)
	}
	slices.Sort(amounts)
	hp := p.HE()
	for _, r := range amounts {
		u := rots[r]
		g := hp.GaloisElement(r)
		if l, ok := keys.GaloisKeyLevel(g); ok && l < u.level {
			bad = append(bad, fmt.Sprintf("the key for rotation %d (Galois element %d) is at level %d, the circuit uses it at level %d (%s)", r, g, l, u.level, op(u.op)))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	more := ""
	if len(bad) > 3 {
		more = fmt.Sprintf("; and %d more", len(bad)-3)
		bad = bad[:3]
	}
	return fmt.Errorf("executor: %w: %s%s (generate the keys from the circuit's key spec)", he.ErrKeyLevel, strings.Join(bad, "; "), more)
}
