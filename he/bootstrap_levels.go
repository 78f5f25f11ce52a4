package he

import (
	"math"

	lhe "github.com/tuneinsight/lattigo/v5/he"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/he/hefloat/bootstrapping"
	"github.com/tuneinsight/lattigo/v5/utils"
)

// Levels of the bootstrapping keys.
//
// Lattigo's bootstrapping circuit (ModUp, CoeffsToSlots, EvalMod,
// SlotsToCoeffs) runs on the bootstrapping parameters' modulus chain, and
// each of its key switches happens at a known level:
//
//   - the trace after ModUp (rotations by 2^i, i from the bootstrapped
//     slots' log to logN-2) at the top level;
//   - factor k of a homomorphic DFT (CoeffsToSlots, then SlotsToCoeffs) at
//     its matrix's level: the DFT literal's LevelStart less the levels of
//     the stages before it (Lattigo's LinearTransformation evaluator
//     switches keys at min(ciphertext level, matrix level));
//   - the conjugation and the repacking rotation that split CoeffsToSlots'
//     output into real and imaginary parts at the level CoeffsToSlots ends on;
//   - EvalMod's relinearizations at its LevelStart and below.
//
// bootstrappingKeyLevels computes, from the bootstrapping parameters alone
// (no DFT matrix is encoded), the highest of these levels for the
// relinearization key and every Galois element; every bootstrapping Galois
// key and the relinearization key are generated at that level. An element
// the analysis does not place (none in Lattigo v5.0.7) stays at the top
// level. TestBootstrappingKeyLevelsMatchDFTMatrices checks the DFT part
// against the matrices Lattigo encodes, and TestBootstrapKeyBelowUseLevel
// that a key one level lower breaks the bootstrap.

// bootstrapKeyLevels are the levels (LevelQ of the bootstrapping
// parameters) of the bootstrapping relinearization and Galois keys.
type bootstrapKeyLevels struct {
	relin  int
	galois map[uint64]int
}

// bootstrappingKeyLevels returns the level of every bootstrapping key of btp
// (see the comment above).
func bootstrappingKeyLevels(btp *bootstrapping.Parameters) bootstrapKeyLevels {
	bp := btp.BootstrappingParameters
	top := bp.MaxLevel()
	lv := bootstrapKeyLevels{relin: btp.Mod1ParametersLiteral.LevelStart, galois: map[uint64]int{}}
	set := func(g uint64, l int) {
		if old, ok := lv.galois[g]; !ok || l > old {
			lv.galois[g] = l
		}
	}
	for i := btp.LogMaxDimensions().Cols; i < bp.LogN()-1; i++ {
		set(bp.GaloisElement(1<<i), top) // trace after ModUp
	}
	perRescale := bp.LevelsConsumedPerRescaling()
	for _, d := range []hefloat.DFTMatrixLiteral{btp.CoeffsToSlotsParameters, btp.SlotsToCoeffsParameters} {
		for _, f := range dftFactors(bp, d) {
			for _, g := range f.galois {
				if g != 1 { // rotation by 0: no key
					set(g, f.level)
				}
			}
		}
	}
	c2s := btp.CoeffsToSlotsParameters
	c2sEnd := c2s.LevelStart - c2s.Depth(true)*perRescale
	set(bp.GaloisElementForComplexConjugation(), c2sEnd)
	if c2s.Format == hefloat.RepackImagAsReal && c2s.LogSlots < bp.LogMaxSlots() {
		set(bp.GaloisElement(1<<c2s.LogSlots), c2sEnd)
	}
	for _, g := range btp.GaloisElements(bp) {
		if _, ok := lv.galois[g]; !ok {
			lv.galois[g] = top
		}
	}
	return lv
}

// dftFactor is one matrix of a factorized homomorphic DFT: its level and
// the Galois elements its BSGS evaluation rotates by.
type dftFactor struct {
	level  int
	galois []uint64
}

// dftFactors returns the factors hefloat.NewDFTMatrixFromLiteral would
// build for d, with their levels and Galois elements, without computing
// the matrices: the diagonals of each factor are those of Lattigo's
// computeBootstrappingDFTIndexMap (v5.0.7, unexported; reproduced by
// dftDiagonals), the elements those of he.GaloisElementsForLinearTransformation.
func dftFactors(bp hefloat.Parameters, d hefloat.DFTMatrixLiteral) []dftFactor {
	logdSlots := d.LogSlots
	if logdSlots < bp.LogMaxDimensions().Cols && d.Format == hefloat.RepackImagAsReal {
		logdSlots++
	}
	diags := dftDiagonals(d, bp.LogN())
	var out []dftFactor
	level, idx := d.LevelStart, 0
	for _, n := range d.Levels {
		for j := 0; j < n; j++ {
			g := lhe.GaloisElementsForLinearTransformation(bp, utils.GetKeys(diags[idx]), 1<<logdSlots, d.LogBSGSRatio)
			out = append(out, dftFactor{level: level, galois: g})
			idx++
		}
		level -= bp.LevelsConsumedPerRescaling()
	}
	return out
}

// dftDiagonals returns, for each factor of d, the set of its non-zero
// diagonals: Lattigo v5.0.7's DFTMatrixLiteral.computeBootstrappingDFTIndexMap.
func dftDiagonals(d hefloat.DFTMatrixLiteral, logN int) []map[int]bool {
	logSlots := d.LogSlots
	encode := d.Type == hefloat.HomomorphicEncode
	repack := d.Format == hefloat.RepackImagAsReal
	maxDepth := d.Depth(false)
	// Layers merged into each factor (front-loaded for the encoding, back-
	// loaded for the decoding, as Lattigo does).
	merge := make([]int, maxDepth)
	level := logSlots
	for i := 0; i < maxDepth; i++ {
		depth := int(math.Ceil(float64(level) / float64(maxDepth-i)))
		if encode {
			merge[i] = depth
		} else {
			merge[maxDepth-i-1] = depth
		}
		level -= depth
	}
	// The rotation of FFT layer l (over n slots).
	forward := encode != d.BitReversed
	rot := func(l, n int) int {
		if forward {
			return (1 << (l - 1)) & (n - 1)
		}
		return (1 << (logSlots - l)) & (n - 1)
	}
	next := func(vec map[int]bool, n, l int) map[int]bool {
		r := rot(l, n)
		out := map[int]bool{}
		for i := range vec {
			out[i] = true
			out[(i+r)&(n-1)] = true
			out[(i-r)&(n-1)] = true
		}
		return out
	}
	out := make([]map[int]bool, maxDepth)
	level = logSlots
	for i := 0; i < maxDepth; i++ {
		n := 1 << logSlots
		var m map[int]bool
		if logSlots < logN-1 && !encode && i == 0 && repack {
			// the repacking matrix merged with the first decoding layer
			n = 2 << logSlots
			m = next(map[int]bool{0: true, 1 << logSlots: true}, n, level)
		} else {
			r := 1 << (logSlots - level)
			if forward {
				r = 1 << (level - 1)
			}
			m = map[int]bool{0: true, r: true, (1 << logSlots) - r: true}
		}
		l := level - 1
		for j := 0; j < merge[i]-1; j++ {
			m = next(m, n, l)
			l--
		}
		out[i] = m
		level -= merge[i]
	}
	return out
}

// BootstrappingKeyBytes returns the size of the bootstrapping keys
// GenerateKeys makes for p (zero without bootstrapping): in memory (both
// halves of every key, as Lattigo holds them), in a key file or upload
// (the bootstrapping section of the format version 3 payload: each key at
// its level, seeded), and in memory as the build before per-key levels
// made them (relinearization and Galois keys at the top level).
func BootstrappingKeyBytes(p *Parameters) (memory, file, topLevelMemory uint64) {
	if p == nil || !p.HasBootstrapping() {
		return 0, 0, 0
	}
	btp := p.btp
	bp := btp.BootstrappingParameters
	rp := bp.Parameters.Parameters
	topQ, topP := rp.MaxLevelQ(), rp.MaxLevelP()
	add := func(levelQ, levelP int, seeded, leveled bool) {
		mem := evkRecordSize(rp, levelQ, levelP, 1, false) - 4
		memory += mem
		file += evkRecordSize(rp, levelQ, levelP, EvaluationKeysVersion, seeded)
		if leveled {
			topLevelMemory += evkRecordSize(rp, topQ, topP, 1, false) - 4
		} else {
			topLevelMemory += mem
		}
	}
	file += 1 + 1 + 4 // component mask, has-relinearization, #Galois
	if btp.ResidualParameters.N() != bp.N() {
		add(topQ, topP, false, false) // ring switching keys, from Lattigo's generator
		add(topQ, topP, false, false)
	}
	if btp.EphemeralSecretWeight != 0 {
		add(0, 0, true, false)       // EvkDenseToSparse
		add(topQ, topP, true, false) // EvkSparseToDense
	}
	lv := bootstrappingKeyLevels(btp)
	add(lv.relin, topP, true, true)
	for _, l := range lv.galois {
		file += 8 // the Galois element
		add(l, topP, true, true)
	}
	return memory, file, topLevelMemory
}
