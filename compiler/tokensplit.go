package compiler

import (
	"hash/fnv"
	"math"
	"slices"

	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model/nn"
)

// The token-block split (docs/packing.md): when the tokens of one input do
// not fit one ciphertext at the stream's stride, token block i (a separate
// value of the op graph, with the circuit's one Layout) holds tokens
// i·Tb .. i·Tb+Tb-1. Everything but attention and the classifier's pooling
// is per token, so it is lowered once per block (b.tb selects the block:
// its rows' model tokens for positions, per-token weights and causal
// masks); the matrices and patterns the blocks have in common are stored
// once (sharedMat, sharedVec), so the executor encodes each once.

// masked reports whether row t of the query block b.tb does not see the key
// of diagonal r of key block kb (K of block kb rotated by r rows: key token
// kb·Tb + (t+r) mod Tb): causal attention sees keys up to the query's own
// token.
func (b *builder) masked(t, r, kb int) bool {
	if !b.causal {
		return false
	}
	T := b.L.BlockTokens()
	return kb*T+(t+r)%T > b.tok(t)
}

// attentionTokenSplit lowers attention with the diagonal method across
// token blocks: Q, K and V per block, each K and V block's Tb-1 row
// rotations hoisted once and read by every query block; query block i
// pairs with every key block j over the Tb cyclic diagonals (causal: key
// blocks after i are skipped, they are masked everywhere), so its
// normalizer and its weighted sum run over all (j, r). The result is one
// value per token block: the attention output divided by sigma.
func (b *builder) attentionTokenSplit(name string, a *nn.MultiHeadAttention, ins []feed, sigma float64, kp attnKernel) []int {
	nb := len(ins)
	qs, krs, vrs := make([]int, nb), make([][]int, nb), make([][]int, nb)
	for j := range ins {
		b.tb = j
		qs[j], krs[j], vrs[j] = b.diagonalQKV(name, a, ins[j])
	}
	outs := make([]int, nb)
	for i := range ins {
		b.tb = i
		var pw, vr []int
		for j := range ins {
			if b.causal && j > i {
				continue
			}
			for r := range krs[j] {
				pw = append(pw, b.diagonalScores(name, a, kp, qs[i], krs[j][r], r, j))
				vr = append(vr, vrs[j][r])
			}
		}
		weights := pw
		if kp.gold != nil {
			weights = b.normalizeDiagonals(name, kp, pw)
		}
		outs[i] = b.mixDiagonals(name, a, kp, weights, vr, sigma)
	}
	return outs
}

// perBlock calls f once per token block, with b.tb set to it, and returns
// its results in block order.
func (b *builder) perBlock(f func(i int) (int, error)) ([]int, error) {
	out := make([]int, b.L.NumTokenBlocks())
	for i := range out {
		b.tb = i
		id, err := f(i)
		if err != nil {
			return nil, err
		}
		out[i] = id
	}
	return out, nil
}

// hashFloats hashes a name and values (their bits).
func hashFloats(name string, vs ...[]float64) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	var buf [8]byte
	for _, v := range vs {
		for _, x := range v {
			u := math.Float64bits(x)
			for k := range buf {
				buf[k] = byte(u >> (8 * k))
			}
			h.Write(buf[:])
		}
	}
	return h.Sum64()
}

// sharedMat returns the id of a stored matrix equal to m (name and
// weights) when the circuit has a token-block split; ok is false otherwise
// (m is then stored anew).
func (b *builder) sharedMat(m circuit.Matrix) (id int, ok bool) {
	if b.L.NumTokenBlocks() == 1 {
		return 0, false
	}
	key := hashFloats(m.Name, m.Blocks...)
	for _, id := range b.shared[0][key] {
		if o := b.c.Mats[id]; o.Name == m.Name && slices.EqualFunc(o.Blocks, m.Blocks, slices.Equal[[]float64]) {
			return id, true
		}
	}
	b.share(0, key, len(b.c.Mats))
	return 0, false
}

// sharedVec is sharedMat for slot patterns.
func (b *builder) sharedVec(v []float64) (id int, ok bool) {
	if b.L.NumTokenBlocks() == 1 {
		return 0, false
	}
	key := hashFloats("", v)
	for _, id := range b.shared[1][key] {
		if slices.Equal(b.c.Vecs[id], v) {
			return id, true
		}
	}
	b.share(1, key, len(b.c.Vecs))
	return 0, false
}

// share records that the matrix (kind 0) or pattern (kind 1) about to be
// stored under id has hash key.
func (b *builder) share(kind int, key uint64, id int) {
	if b.shared[kind] == nil {
		b.shared[kind] = map[uint64][]int{}
	}
	b.shared[kind][key] = append(b.shared[kind][key], id)
}
