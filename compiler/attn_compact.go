package compiler

import (
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model/nn"
)

// The compact attention layout (issue 15, item 3), opt-in
// (CompileOptions.CompactAttention).
//
// The packed layout (attentionPacked) keeps G = T/k ciphertexts of score
// diagonals (k diagonals per ciphertext, one per copy of the heads' W
// channels). Each of them pays a log2(dhp)-rotation head sum that leaves one
// useful slot per head and copy, its own power and a log2(dhp)-rotation
// broadcast back over the head: 2·G·log2(dhp) rotations.
//
// attentionCompact instead reduces the G products into ONE ciphertext:
// group g's head sum goes to slot τ(g) = off + g of the head (channel
// h·dhp + τ(g) of copy j). With P_g the products and m_c the mask of
// channel c,
//
//	S = Σ_d rot(Z_d, d),   Z_d = Σ_g m_{τ(g)+d} ⊙ P_g,   d = c - τ(g)
//
// (G+dh-2 rotations instead of G·log2(dhp), split baby/giant so that few
// keys are needed; the masks also apply the causal mask and zero every
// other slot, which the packed layout did with a mask after the power).
// Power, normalizer and reciprocal then run on one ciphertext (one product
// each instead of G). Expanding back, group g's weight is needed over every
// channel c of the head:
//
//	E_g = Σ_c m_c ⊙ rot(w, τ(g) - c)
//
// with G+dh-2 hoisted rotations of the one ciphertext instead of
// G·log2(dhp) broadcasts. The reciprocal multiplies the mixed values once
// (as in the packed layout), so for normalized kernels the expansion's mask
// is off its path; power-fixed pays one level more than the packed layout.
//
// Fewer key switches, but G·dh masked products each way, which the executor
// pays with an encoding, a product and a rescale each: slower than the
// packed layout at the benchmark shapes (benchmarks/cost/README.md), hence
// opt-in until masked sums are cheap.

// useCompact reports whether attentionCompact lowers the attention: when
// asked for (CompileOptions.CompactAttention) and the compact slots of a
// head hold the G diagonal groups.
func (b *builder) useCompact() bool {
	_, k := b.packedCopies()
	return b.compact && !b.legacyAttn && b.L.Tokens/k <= b.dhp
}

// attentionCompact lowers power attention with the compact scores (see
// above); its results equal attentionPacked's.
func (b *builder) attentionCompact(name string, a *nn.MultiHeadAttention, in feed, sigma float64, kp packedKernel) (int, error) {
	D, T := b.L.Block, b.L.Tokens
	W, k := b.packedCopies()
	G := T / k
	qcf, kr, vr := b.packedInputs(name, a, in, kp, W, k, T, true)
	qall := qcf[0][0]
	masked := func(t, g, j int) bool { return b.causal && (t+g*k+j)%T > t }
	// m_{g,c}: channel c of every head and copy, for the rows where
	// diagonal g·k+j is not causally masked (one pattern per c without a
	// causal mask)
	maskVecs := map[[2]int]int{}
	maskVec := func(g, c int) int {
		if !b.causal {
			g = -1
		}
		key := [2]int{g, c}
		if id, ok := maskVecs[key]; ok {
			return id
		}
		m := b.pattern()
		for t := 0; t < T; t++ {
			for j := 0; j < k; j++ {
				if g >= 0 && masked(t, g, j) {
					continue
				}
				for h := 0; h < b.heads; h++ {
					m[t*D+j*W+h*b.dhp+c] = 1
				}
			}
		}
		id := b.vec(m)
		maskVecs[key] = id
		return id
	}
	prods := make([]int, G)
	for g := 0; g < G; g++ {
		kg := b.sumTree(name+".scores", kr[g*k:(g+1)*k])
		prods[g] = b.op(circuit.Op{Kind: circuit.KindMul, In: []int{qall, kg}, Label: name + ".scores"})
	}
	// Z_d for d = c - τ(g), rotated baby-step/giant-step: d = a + n1·s
	// (0 <= a < n1), S = Σ_s rot(Σ_a rot(Z_d, a), n1·s): as many rotations
	// as one rotation per offset, but n1-1 + (giant steps) keys
	off, n1 := b.compactSplit(G)
	inner := map[int][]int{}
	var giants []int
	for d := -off - G + 1; d < b.dh-off; d++ {
		var zs []int
		for g := 0; g < G; g++ {
			c := d + off + g
			if c < 0 || c >= b.dh {
				continue
			}
			zs = append(zs, b.op(circuit.Op{Kind: circuit.KindMulPlain, In: []int{prods[g]}, Vec: maskVec(g, c), Label: name + ".scores"}))
		}
		if len(zs) == 0 {
			continue
		}
		z := b.sumTree(name+".scores", zs)
		a, s := floorMod(d, n1), floorDiv(d, n1)
		if a != 0 {
			z = b.op(circuit.Op{Kind: circuit.KindRotate, In: []int{z}, Rot: []int{a}, Label: name + ".scores"})
		}
		if _, ok := inner[s]; !ok {
			giants = append(giants, s)
		}
		inner[s] = append(inner[s], z)
	}
	var parts []int
	for _, s := range giants {
		z := b.sumTree(name+".scores", inner[s])
		if s != 0 {
			z = b.op(circuit.Op{Kind: circuit.KindRotate, In: []int{z}, Rot: []int{s * n1}, Label: name + ".scores"})
		}
		parts = append(parts, z)
	}
	sc := b.sumTree(name+".scores", parts)
	if kp.shift != nil {
		// s_t (x + c_h) on the unmasked slots only: the others stay 0
		sv := b.pattern()
		for t := 0; t < T; t++ {
			for g := 0; g < G; g++ {
				for j := 0; j < k; j++ {
					if masked(t, g, j) {
						continue
					}
					for h := 0; h < b.heads; h++ {
						sv[t*D+j*W+h*b.dhp+off+g] = kp.shift(h) * kp.rowScale(t) * kp.headW(h)
					}
				}
			}
		}
		sc = b.op(circuit.Op{Kind: circuit.KindAddPlain, In: []int{sc}, Vec: b.vec(sv), Label: name + ".scores"})
	}
	w := b.power(name+".power", sc, kp.p)
	recip := -1
	if kp.gold != nil {
		// the row sum over the k copies (one rotate-and-add) and the G slots
		// of each head, in every channel of the head in copy 0 (the
		// reciprocal multiplies the mixed values there); 0 in every other
		// slot, where xn = 1 keeps Goldschmidt bounded
		nin := w
		var copyRots []int
		for s := 1; s < k; s <<= 1 {
			copyRots = append(copyRots, s*W)
		}
		if len(copyRots) > 0 {
			nin = b.op(circuit.Op{Kind: circuit.KindRotSum, In: []int{w}, Rot: copyRots, Label: name + ".normalizer"})
		}
		nm := b.mat(name+".normalizer", false, func(_ int, m []float64) {
			for h := 0; h < b.heads; h++ {
				for g := 0; g < G; g++ {
					for c := 0; c < b.dh; c++ {
						m[(h*b.dhp+c)*D+h*b.dhp+off+g] = 1
					}
				}
			}
		})
		nsum := b.op(circuit.Op{Kind: circuit.KindLinear, In: []int{nin}, Mat: nm, Label: name + ".normalizer"})
		shift := b.pattern()
		for t := 0; t < T; t++ {
			for c := 0; c < D; c++ {
				shift[t*D+c] = 1
			}
			for h := 0; h < b.heads; h++ {
				for c := 0; c < b.dh; c++ {
					shift[t*D+h*b.dhp+c] = kp.epsC
				}
			}
		}
		xn := b.op(circuit.Op{Kind: circuit.KindAddPlain, In: []int{nsum}, Vec: b.vec(shift), Label: name + ".normalizer"})
		recip = b.goldschmidt(name+".recip", xn, kp.gold.Iterations)
	}
	// expand: rot(w, e) for e = τ(g) - c = a + n1·s: hoisted baby steps
	// rot(w, a), then the giant steps of each baby step (hoisted per a)
	rot := map[int]int{0: w}
	baby := map[int]int{0: w}
	bg := b.newGroup()
	for a := 1; a < n1; a++ {
		baby[a] = b.op(circuit.Op{Kind: circuit.KindRotate, In: []int{w}, Rot: []int{a}, Group: bg, Label: name + ".weights"})
	}
	giantGroup := map[int]int{}
	for e := off + 1 - b.dh; e < off+G; e++ {
		a, s := floorMod(e, n1), floorDiv(e, n1)
		if s == 0 {
			rot[e] = baby[a]
			continue
		}
		if _, ok := giantGroup[a]; !ok {
			giantGroup[a] = b.newGroup()
		}
		rot[e] = b.op(circuit.Op{Kind: circuit.KindRotate, In: []int{baby[a]}, Rot: []int{s * n1}, Group: giantGroup[a], Label: name + ".weights"})
	}
	outs := make([]int, G)
	for g := 0; g < G; g++ {
		es := make([]int, b.dh)
		for c := 0; c < b.dh; c++ {
			es[c] = b.op(circuit.Op{Kind: circuit.KindMulPlain, In: []int{rot[off+g-c]}, Vec: maskVec(-1, c), Label: name + ".weights"})
		}
		eg := b.sumTree(name+".weights", es)
		vg := b.sumTree(name+".mix", vr[g*k:(g+1)*k])
		outs[g] = b.op(circuit.Op{Kind: circuit.KindMul, In: []int{eg, vg}, Label: name + ".mix"})
	}
	// Σ_r (x_r^p · ρ) v_r = ρ · Σ_r x_r^p v_r: one product with the
	// reciprocal ρ of the row sum (in copy 0, which the out projection
	// reads) instead of one per group, and the expansion's mask stays off
	// the reciprocal's path
	return b.packedOutScaled(name, a, b.sumTree(name+".mix", outs), recip, sigma, kp, W, k), nil
}

// compactSplit returns the slot offset τ(g) - g of the compact scores (so
// that the offsets d = c - τ(g) are about symmetric and the compaction and
// the expansion use the same rotation keys) and the baby-step size n1 of
// their rotations (the one with fewest keys: n1-1 baby steps and the giant
// steps of the offsets, ties to the smaller n1).
func (b *builder) compactSplit(G int) (int, int) {
	off := (b.dh - G) / 2
	if off < 0 {
		off = 0
	}
	if off+G > b.dhp {
		off = b.dhp - G
	}
	lo, hi := -off-G+1, b.dh-off-1
	best, bestKeys := 1, -1
	for n1 := 1; n1 <= b.dhp; n1 <<= 1 {
		keys := map[int]bool{}
		for d := lo; d <= hi; d++ {
			if a := floorMod(d, n1); a != 0 {
				keys[a] = true
			}
			if s := floorDiv(d, n1); s != 0 {
				keys[s*n1] = true
			}
		}
		if bestKeys < 0 || len(keys) < bestKeys {
			best, bestKeys = n1, len(keys)
		}
	}
	return off, best
}

func floorDiv(a, n int) int {
	q := a / n
	if a%n != 0 && a < 0 {
		q--
	}
	return q
}

func floorMod(a, n int) int { return a - floorDiv(a, n)*n }
