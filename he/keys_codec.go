package he

import (
	"fmt"
	"math/bits"
	"sort"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat/bootstrapping"
	"github.com/tuneinsight/lattigo/v5/ring"
)

// Key files.
//
// Keys are serialized in our own format rather than with Lattigo's
// WriteTo/ReadFrom: Lattigo's readers take vector lengths from the stream and
// allocate them before reading (structs.Vector.ReadFrom does make([]T, size)
// with size read from the input), so a corrupted or hostile file can make
// them allocate without bound or panic. Our readers instead build an empty
// Lattigo object of the shape the parameters dictate (after checking that the
// declared shape matches the parameters and that enough payload bytes remain)
// and fill its coefficients, checking each is below its modulus. The only
// Lattigo calls on untrusted input are parameter construction, which runs
// under recover (buildLattigoParameters).

// --- coefficient I/O --------------------------------------------------------

func writePoly(pw *payloadWriter, pol ring.Poly) {
	for _, c := range pol.Coeffs {
		pw.u64s(c)
	}
}

func readPoly(pr *payloadReader, pol ring.Poly, moduli []uint64, what string) {
	for i, c := range pol.Coeffs {
		pr.u64sBelow(c, moduli[i], what)
	}
}

func polyBytes(n, level int) uint64 { return uint64(n) * uint64(level+1) * 8 }

// coeffBytes is the width of a coefficient modulo q in a version-2 key
// record: the bytes of q-1 (5 for a 40-bit prime instead of 8).
func coeffBytes(q uint64) int { return (bits.Len64(q-1) + 7) / 8 }

// packedPolyBytes is the size of a polynomial's limbs 0..level modulo
// moduli, each coefficient in coeffBytes of its modulus.
func packedPolyBytes(n, level int, moduli []uint64) uint64 {
	var b uint64
	for i := 0; i <= level; i++ {
		b += uint64(coeffBytes(moduli[i]))
	}
	return uint64(n) * b
}

func writePolyPacked(pw *payloadWriter, pol ring.Poly, moduli []uint64) {
	for i, c := range pol.Coeffs {
		pw.u64sPacked(c, coeffBytes(moduli[i]))
	}
}

func readPolyPacked(pr *payloadReader, pol ring.Poly, moduli []uint64, what string) {
	for i, c := range pol.Coeffs {
		pr.u64sBelowPacked(c, moduli[i], coeffBytes(moduli[i]), what)
	}
}

// --- evaluation keys file -------------------------------------------------------

// evaluation keys payload (versions 1 to 3 alike):
//
//	u8 flags (bit 0: relinearization key, bit 1: bootstrapping section)
//	u32 number of Galois keys
//	[relinearization key record]
//	Galois keys: u64 Galois element, key record (sorted by element)
//	[bootstrapping section: u8 component mask (bit i: component i of
//	 btpComponents), component records in that order, then u8 has-relin,
//	 u32 #Galois, relin record, Galois records, all at the bootstrapping
//	 parameters]
//
// key record, version 1: u8 levelQ, u8 levelP+1, u16 gadget rows, then for
// each row (one column) the two QP components b and a (Q limbs then P
// limbs); the relinearization and Galois keys are at the top level.
//
// key record, version 2: u8 levelQ, u8 levelP+1, u16 gadget rows, u8 form,
// then for form 0 (full) the rows as in version 1, for form 1 (seeded) the
// 32-byte seed of the random halves a and, for each row, only b; every
// coefficient modulo a prime q is stored in the bytes of q-1 (5 for the
// 40-bit primes, 7 for 55 bits, 8 for 61 bits) instead of 8. The
// relinearization and Galois keys may be at any level (the loader checks
// the shape against the declared levels and expands a from the seed);
// bootstrapping keys are at the top level (EvkDenseToSparse at (Q0,P0)).
//
// version 3: the records of version 2; the bootstrapping relinearization
// and Galois keys may be at any level at or above the one the bootstrapping
// circuit uses them at (bootstrappingKeyLevels; below it the loader refuses
// them), and bootstrapping records may be seeded like the others.
// EvkSparseToDense is always at the top level, EvkDenseToSparse at (Q0,P0).

const (
	flagRelin = 1 << 0
	flagBtp   = 1 << 1
)

// key record forms (version 2).
const (
	formFull   = 0
	formSeeded = 1
)

var btpComponentNames = [...]string{"EvkN1ToN2", "EvkN2ToN1", "EvkRealToCmplx", "EvkCmplxToReal", "EvkDenseToSparse", "EvkSparseToDense"}

func btpComponents(b *bootstrapping.EvaluationKeys) []**rlwe.EvaluationKey {
	return []**rlwe.EvaluationKey{&b.EvkN1ToN2, &b.EvkN2ToN1, &b.EvkRealToCmplx, &b.EvkCmplxToReal, &b.EvkDenseToSparse, &b.EvkSparseToDense}
}

// indexes of the encapsulation keys in btpComponents.
const (
	btpDenseToSparse = 4
	btpSparseToDense = 5
)

// evkRecordSize is the size of a key record at (levelQ, levelP) in format
// version (1 to 3), seeded or in full.
func evkRecordSize(rp rlwe.Parameters, levelQ, levelP int, version uint16, seeded bool) uint64 {
	rows := uint64(rp.BaseRNSDecompositionVectorSize(levelQ, levelP))
	per := polyBytes(rp.N(), levelQ)
	if levelP >= 0 {
		per += polyBytes(rp.N(), levelP)
	}
	if version < 2 {
		return 4 + rows*2*per
	}
	per = packedPolyBytes(rp.N(), levelQ, rp.Q())
	if levelP >= 0 {
		per += packedPolyBytes(rp.N(), levelP, rp.P())
	}
	if seeded {
		return 5 + 32 + rows*per
	}
	return 5 + rows*2*per
}

// EvaluationKeyBytes returns the size of one relinearization or Galois key
// at levels (levelQ, levelP) of rp: in memory (both halves, as Lattigo holds
// it) and in a file or upload (format version 2, random half as a seed).
func EvaluationKeyBytes(p *Parameters, levelQ, levelP int) (memory, file uint64) {
	rp := p.HE().Parameters.Parameters
	return evkRecordSize(rp, levelQ, levelP, 1, false) - 4, evkRecordSize(rp, levelQ, levelP, EvaluationKeysVersion, true)
}

// keySeeds gives the seed of a key (nil: written in full).
type keySeeds struct {
	relin  *keySeed
	galois map[uint64]keySeed
}

func (k keySeeds) of(g uint64) *keySeed {
	if s, ok := k.galois[g]; ok {
		return &s
	}
	return nil
}

func (e *EvaluationKeys) keySeeds() keySeeds {
	k := keySeeds{galois: e.seeds}
	if e.relinSeeded {
		s := e.relinSeed
		k.relin = &s
	}
	return k
}

func keySetSize(rp rlwe.Parameters, relin *rlwe.RelinearizationKey, gks []*rlwe.GaloisKey, seeds keySeeds) uint64 {
	var n uint64
	if relin != nil {
		n += evkRecordSize(rp, relin.LevelQ(), relin.LevelP(), EvaluationKeysVersion, seeds.relin != nil)
	}
	for _, g := range gks {
		n += 8 + evkRecordSize(rp, g.LevelQ(), g.LevelP(), EvaluationKeysVersion, seeds.of(g.GaloisElement) != nil)
	}
	return n
}

func sortedGaloisKeys(m map[uint64]*rlwe.GaloisKey) []*rlwe.GaloisKey {
	out := make([]*rlwe.GaloisKey, 0, len(m))
	for _, g := range m {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GaloisElement < out[j].GaloisElement })
	return out
}

func memSetKeys(m *rlwe.MemEvaluationKeySet) (*rlwe.RelinearizationKey, []*rlwe.GaloisKey) {
	if m == nil {
		return nil, nil
	}
	gm := map[uint64]*rlwe.GaloisKey{}
	for g, k := range m.GaloisKeys {
		gm[g] = k
	}
	return m.RelinearizationKey, sortedGaloisKeys(gm)
}

func evaluationKeysPayloadSize(e *EvaluationKeys) uint64 {
	hp := e.params.HE().Parameters.Parameters
	n := uint64(5) + keySetSize(hp, e.relin, sortedGaloisKeys(e.galois), e.keySeeds())
	if e.btp != nil {
		bp := e.params.btp.BootstrappingParameters.Parameters.Parameters
		n++
		for i, c := range btpComponents(e.btp) {
			if *c != nil {
				n += evkRecordSize(bp, (*c).LevelQ(), (*c).LevelP(), EvaluationKeysVersion, e.btpSeeds.components[i] != nil)
			}
		}
		rl, gks := memSetKeys(e.btp.MemEvaluationKeySet)
		n += 5 + keySetSize(bp, rl, gks, e.btpSeeds.set)
	}
	return n
}

// writeEvk writes one version-2 key record for parameters rp, seeded when
// seed is non-nil.
func writeEvk(pw *payloadWriter, rp rlwe.Parameters, evk *rlwe.EvaluationKey, seed *keySeed) {
	pw.u8(uint8(evk.LevelQ()))
	pw.u8(uint8(evk.LevelP() + 1))
	rows := len(evk.Value)
	pw.write([]byte{byte(rows), byte(rows >> 8)})
	if seed != nil {
		pw.u8(formSeeded)
		pw.write(seed[:])
	} else {
		pw.u8(formFull)
	}
	for i := range evk.Value {
		for _, v := range evk.Value[i] {
			for c, qp := range v {
				if c == 1 && seed != nil {
					break
				}
				writePolyPacked(pw, qp.Q, rp.Q())
				if evk.LevelP() >= 0 {
					writePolyPacked(pw, qp.P, rp.P())
				}
			}
		}
	}
}

// levelRule says which levels a key record may have.
type levelRule struct {
	exactQ, exactP int // -2: any level in range
	// minQ is the lowest level Q the key may have: the level a
	// bootstrapping key is used at (a key below gives garbage).
	minQ int
}

var anyLevel = levelRule{exactQ: -2, exactP: -2}

// evkHeader is the decoded header of a key record.
type evkHeader struct {
	levelQ, levelP, rows int
	seeded               bool
	seed                 keySeed
}

// readEvkHeader reads and checks a key record's header: declared levels
// against rp and rule, gadget rows against the declared levels, form, and
// that the remaining payload can hold the record.
func readEvkHeader(er *EnvelopeReader, pr *payloadReader, rp rlwe.Parameters, version uint16, rule levelRule, what string) (h evkHeader, ok bool) {
	h.levelQ = int(pr.u8())
	h.levelP = int(pr.u8()) - 1
	var rb [2]byte
	pr.read(rb[:])
	form := uint8(formFull)
	if version >= 2 {
		form = pr.u8()
	}
	if pr.err != nil {
		return h, false
	}
	h.rows = int(rb[0]) | int(rb[1])<<8
	if h.levelQ > rp.MaxLevelQ() || h.levelP > rp.MaxLevelP() {
		pr.fail(fmt.Errorf("%w: %s at levels (Q %d, P %d) exceeds the parameters' maximum (Q %d, P %d)", ErrMalformed, what, h.levelQ, h.levelP, rp.MaxLevelQ(), rp.MaxLevelP()))
		return h, false
	}
	if rule.exactQ == -2 && rule.exactP != -2 && h.levelP != rule.exactP {
		pr.fail(fmt.Errorf("%w: %s at levels (Q %d, P %d), expected P %d (every special prime) for these parameters", ErrMalformed, what, h.levelQ, h.levelP, rule.exactP))
		return h, false
	}
	if (rule.exactQ != -2 && h.levelQ != rule.exactQ) || (rule.exactP != -2 && h.levelP != rule.exactP) {
		pr.fail(fmt.Errorf("%w: %s at levels (Q %d, P %d), expected (Q %d, P %d) for these parameters", ErrMalformed, what, h.levelQ, h.levelP, rule.exactQ, rule.exactP))
		return h, false
	}
	if h.levelP < 0 {
		pr.fail(fmt.Errorf("%w: %s without special primes P is not supported", ErrMalformed, what))
		return h, false
	}
	if h.levelQ < rule.minQ {
		pr.fail(fmt.Errorf("%w: %s is at level %d, the bootstrapping circuit uses it at level %d", ErrKeyLevel, what, h.levelQ, rule.minQ))
		return h, false
	}
	if want := rp.BaseRNSDecompositionVectorSize(h.levelQ, h.levelP); h.rows != want {
		pr.fail(fmt.Errorf("%w: %s declares %d gadget rows, parameters need %d at levels (Q %d, P %d)", ErrMalformed, what, h.rows, want, h.levelQ, h.levelP))
		return h, false
	}
	switch form {
	case formFull:
	case formSeeded:
		h.seeded = true
		pr.read(h.seed[:])
		if pr.err != nil {
			return h, false
		}
	default:
		pr.fail(fmt.Errorf("%w: %s has unknown record form %d", ErrMalformed, what, form))
		return h, false
	}
	head := uint64(4)
	if version >= 2 {
		head = 5
		if h.seeded {
			head += 32
		}
	}
	if need := evkRecordSize(rp, h.levelQ, h.levelP, version, h.seeded) - head; er.Remaining() < need {
		pr.fail(fmt.Errorf("%w: %s needs %d more bytes, payload has %d", ErrTruncated, what, need, er.Remaining()))
		return h, false
	}
	return h, true
}

// readEvk reads one key record for parameters rp into a freshly allocated
// key of the declared (checked) shape, expanding a seeded random half. It
// returns the key and its seed (nil when the record was in full).
func readEvk(er *EnvelopeReader, pr *payloadReader, rp rlwe.Parameters, version uint16, rule levelRule, what string) (*rlwe.EvaluationKey, *keySeed) {
	h, ok := readEvkHeader(er, pr, rp, version, rule, what)
	if !ok {
		return nil, nil
	}
	evk := rlwe.NewEvaluationKey(rp, evkParams(h.levelQ, h.levelP))
	if err := checkEvaluationKeyShape(rp, evk, h.levelQ, h.levelP, what); err != nil {
		pr.fail(fmt.Errorf("%w: %v", ErrMalformed, err))
		return nil, nil
	}
	q, p := rp.Q(), rp.P()
	for i := range evk.Value {
		for _, v := range evk.Value[i] {
			for c, qp := range v {
				if c == 1 && h.seeded {
					break
				}
				if version < 2 {
					readPoly(pr, qp.Q, q, what)
					readPoly(pr, qp.P, p, what)
				} else {
					readPolyPacked(pr, qp.Q, q, what)
					readPolyPacked(pr, qp.P, p, what)
				}
			}
		}
	}
	if pr.err != nil {
		return nil, nil
	}
	if !h.seeded {
		return evk, nil
	}
	if err := expandSeededKey(rp, evk, h.seed); err != nil {
		pr.fail(fmt.Errorf("%s: expand seed: %w", what, err))
		return nil, nil
	}
	seed := h.seed
	return evk, &seed
}

// writeKeySet writes the relinearization key record (if any) and the Galois
// key records, each at its own levels.
func writeKeySet(pw *payloadWriter, rp rlwe.Parameters, relin *rlwe.RelinearizationKey, gks []*rlwe.GaloisKey, seeds keySeeds, what string) error {
	if relin != nil {
		if err := checkEvaluationKeyShape(rp, &relin.EvaluationKey, relin.LevelQ(), relin.LevelP(), what+" relinearization key"); err != nil {
			return err
		}
		writeEvk(pw, rp, &relin.EvaluationKey, seeds.relin)
	}
	for _, g := range gks {
		if err := checkEvaluationKeyShape(rp, &g.EvaluationKey, g.LevelQ(), g.LevelP(), fmt.Sprintf("%s Galois key %d", what, g.GaloisElement)); err != nil {
			return err
		}
		pw.u64(g.GaloisElement)
		writeEvk(pw, rp, &g.EvaluationKey, seeds.of(g.GaloisElement))
	}
	return nil
}

// keySetRule is the level rule of the relinearization and Galois keys of a
// key set: at the top level in version 1 and for bootstrapping keys in
// version 2, at any level Q otherwise, always with every special prime
// (LevelP = MaxLevelP): Lattigo v5.0.7's hoisted rotations and linear
// transforms decompose with MaxLevelP whatever the key's LevelP, so a key
// with fewer special primes would give garbage there without an error.
func keySetRule(rp rlwe.Parameters, version uint16, bootstrapping bool) levelRule {
	if version < 2 || (bootstrapping && version < 3) {
		return levelRule{exactQ: rp.MaxLevelQ(), exactP: rp.MaxLevelP()}
	}
	return levelRule{exactQ: -2, exactP: rp.MaxLevelP()}
}

// evkRecord names one key record of an evaluation-keys payload, as
// walkEvaluationKeys meets it.
type evkRecord struct {
	// bootstrapping: the record is at the bootstrapping parameters.
	bootstrapping bool
	// component is the record's index in btpComponentNames, or -1 for a
	// record of a key set.
	component int
	// relin: the key set's relinearization key; otherwise its Galois key
	// for element galois (when component is -1).
	relin  bool
	galois uint64
}

// evkVisitor consumes one key record at parameters rp under rule (decoding
// it or only checking it), reporting failures through pr.fail; what names
// the record in errors.
type evkVisitor func(rec evkRecord, rp rlwe.Parameters, rule levelRule, what string)

// walkEvaluationKeys reads the layout of an evaluation-keys payload of
// format version for p (flags, key counts, Galois elements, bootstrapping
// component mask) and hands every key record, in file order, to visit. It is
// the one walk behind ReadEvaluationKeys (which builds the keys) and
// VerifyEvaluationKeysStream (which only checks them); it reports whether
// the payload has a bootstrapping section.
func walkEvaluationKeys(er *EnvelopeReader, pr *payloadReader, p *Parameters, version uint16, visit evkVisitor) (hasBootstrapping bool, err error) {
	hp := p.HE().Parameters.Parameters
	flags := pr.u8()
	nGalois := pr.u32()
	if pr.err != nil {
		return false, pr.err
	}
	if flags&^(flagRelin|flagBtp) != 0 {
		return false, fmt.Errorf("%w: unknown evaluation key flags %#x", ErrMalformed, flags)
	}
	walkKeySet(pr, hp, keySetRule(hp, version, false), nil, flags&flagRelin != 0, nGalois, false, "evaluation keys:", visit)
	if pr.err != nil || flags&flagBtp == 0 {
		return false, pr.err
	}
	if !p.HasBootstrapping() {
		return true, fmt.Errorf("%w: the keys hold bootstrapping keys but parameters %s have no bootstrapping", ErrMalformed, p)
	}
	bp := p.btp.BootstrappingParameters.Parameters.Parameters
	mask := pr.u8()
	if pr.err != nil {
		return true, pr.err
	}
	if mask>>len(btpComponentNames) != 0 {
		return true, fmt.Errorf("%w: unknown bootstrapping key components %#x", ErrMalformed, mask)
	}
	for i, name := range btpComponentNames {
		if mask&(1<<i) == 0 {
			continue
		}
		rule := anyLevel
		switch i {
		case btpDenseToSparse:
			rule = levelRule{exactQ: 0, exactP: 0}
		case btpSparseToDense: // ModUp switches at the top level
			rule = levelRule{exactQ: bp.MaxLevelQ(), exactP: bp.MaxLevelP()}
		}
		visit(evkRecord{bootstrapping: true, component: i}, bp, rule, "bootstrapping "+name)
		if pr.err != nil {
			return true, pr.err
		}
	}
	hasRelin := pr.u8()
	n := pr.u32()
	if pr.err != nil {
		return true, pr.err
	}
	if hasRelin > 1 {
		return true, fmt.Errorf("%w: bootstrapping relinearization flag %d", ErrMalformed, hasRelin)
	}
	lv := bootstrappingKeyLevels(p.btp)
	use := func(rec evkRecord) int {
		if rec.relin {
			return lv.relin
		}
		return lv.galois[rec.galois]
	}
	walkKeySet(pr, bp, keySetRule(bp, version, true), use, hasRelin == 1, n, true, "bootstrapping keys:", visit)
	return true, pr.err
}

// walkKeySet reads a key set's layout (the relinearization record if
// hasRelin, then nGalois Galois elements, each odd, below 2N and strictly
// increasing, with its record) and hands each record to visit, under rule
// with, when use is not nil, the level Q use gives as the minimum.
func walkKeySet(pr *payloadReader, rp rlwe.Parameters, rule levelRule, use func(evkRecord) int, hasRelin bool, nGalois uint32, bootstrapping bool, what string, visit evkVisitor) {
	ruleFor := func(rec evkRecord) levelRule {
		if use != nil {
			rule.minQ = use(rec)
		}
		return rule
	}
	if hasRelin {
		rec := evkRecord{bootstrapping: bootstrapping, component: -1, relin: true}
		visit(rec, rp, ruleFor(rec), what+" relinearization key")
		if pr.err != nil {
			return
		}
	}
	nthRoot := uint64(rp.RingQ().NthRoot())
	if uint64(nGalois) > nthRoot/2 {
		pr.fail(fmt.Errorf("%w: %s declares %d Galois keys, at most %d exist", ErrMalformed, what, nGalois, nthRoot/2))
		return
	}
	prev := uint64(0)
	for i := uint32(0); i < nGalois; i++ {
		g := pr.u64()
		if pr.err != nil {
			return
		}
		if g%2 == 0 || g >= nthRoot || g <= prev {
			pr.fail(fmt.Errorf("%w: %s Galois element %d invalid (must be odd, < %d, strictly increasing)", ErrMalformed, what, g, nthRoot))
			return
		}
		prev = g
		rec := evkRecord{bootstrapping: bootstrapping, component: -1, galois: g}
		visit(rec, rp, ruleFor(rec), fmt.Sprintf("%s Galois key %d", what, g))
		if pr.err != nil {
			return
		}
	}
}

// decodeEvaluationKeys builds the evaluation keys of a payload for p
// (walkEvaluationKeys with readEvk on every record), checking that
// bootstrapping keys are complete.
func decodeEvaluationKeys(er *EnvelopeReader, pr *payloadReader, p *Parameters) (*EvaluationKeys, error) {
	version := er.Header().Version
	var (
		relin, btpRelin *rlwe.RelinearizationKey
		gks, btpGalois  []*rlwe.GaloisKey
		btp             = &bootstrapping.EvaluationKeys{}
		seeds           = keySeeds{galois: map[uint64]keySeed{}}
		btpSeeds        = bootstrapKeySeeds{set: keySeeds{galois: map[uint64]keySeed{}}}
		components      = btpComponents(btp)
	)
	hasBtp, err := walkEvaluationKeys(er, pr, p, version, func(rec evkRecord, rp rlwe.Parameters, rule levelRule, what string) {
		evk, seed := readEvk(er, pr, rp, version, rule, what)
		if evk == nil {
			return
		}
		switch {
		case rec.component >= 0:
			*components[rec.component] = evk
			btpSeeds.components[rec.component] = seed
		case rec.relin && rec.bootstrapping:
			btpRelin = &rlwe.RelinearizationKey{EvaluationKey: *evk}
			btpSeeds.set.relin = seed
		case rec.relin:
			relin = &rlwe.RelinearizationKey{EvaluationKey: *evk}
			seeds.relin = seed
		default:
			gk := &rlwe.GaloisKey{GaloisElement: rec.galois, NthRoot: uint64(rp.RingQ().NthRoot()), EvaluationKey: *evk}
			if rec.bootstrapping {
				btpGalois = append(btpGalois, gk)
				if seed != nil {
					btpSeeds.set.galois[rec.galois] = *seed
				}
				return
			}
			gks = append(gks, gk)
			if seed != nil {
				seeds.galois[rec.galois] = *seed
			}
		}
	})
	if err != nil {
		return nil, err
	}
	if hasBtp {
		btp.MemEvaluationKeySet = rlwe.NewMemEvaluationKeySet(btpRelin, btpGalois...)
		if err := CheckBootstrappingKeysComplete(p, btp); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
	} else {
		btp = nil
	}
	out := newEvaluationKeys(p, relin, gks, btp)
	out.btpSeeds = btpSeeds
	out.seeds = seeds.galois
	if seeds.relin != nil {
		out.relinSeed, out.relinSeeded = *seeds.relin, true
	}
	return out, nil
}
