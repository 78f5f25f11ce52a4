package he

import (
	"fmt"
	"io"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
)

// Streaming validation of evaluation keys.
//
// A server receiving an evaluation-key set over the network checks it while
// the bytes stream past, without building the keys (which can be gigabytes):
// VerifyEvaluationKeysStream performs every check of ReadEvaluationKeys on
// the layout (envelope, parameter fingerprint, key levels and gadget shapes,
// Galois elements, every coefficient below its modulus, exact length,
// checksum) in O(N) memory. Only the completeness of bootstrapping keys,
// which needs the decoded keys, is left to ReadEvaluationKeys at load time.

// EvaluationKeysInfo summarizes a validated evaluation-key stream.
type EvaluationKeysInfo struct {
	Params          *Parameters
	Relinearization bool
	GaloisElements  []uint64
	Bootstrapping   bool
	PayloadBytes    uint64
	// Version is the file format version (1 or 2).
	Version uint16
	// RelinearizationLevel is the relinearization key's level (LevelQ).
	RelinearizationLevel int
	// GaloisLevels maps each Galois element to its key's level (LevelQ).
	GaloisLevels map[uint64]int
	// SeededKeys counts the key records whose random half is a seed.
	SeededKeys int
}

// Covers reports the keys of spec that the stream lacked ("" when none).
func (i *EvaluationKeysInfo) Covers(spec KeySpec) error {
	need, err := spec.ResolveGaloisElements(i.Params)
	if err != nil {
		return err
	}
	have := map[uint64]bool{}
	for _, g := range i.GaloisElements {
		have[g] = true
	}
	var missing []uint64
	for _, g := range need {
		if !have[g] {
			missing = append(missing, g)
		}
	}
	switch {
	case spec.Relinearization && !i.Relinearization:
		return fmt.Errorf("evaluation keys for %s lack the relinearization key", i.Params)
	case len(missing) > 0:
		return fmt.Errorf("evaluation keys for %s lack Galois keys %v", i.Params, missing)
	case spec.Bootstrapping && !i.Bootstrapping:
		return fmt.Errorf("evaluation keys for %s lack the bootstrapping keys", i.Params)
	}
	return i.coversLevels(spec)
}

// coversLevels refuses keys below the levels spec asks for (a key below
// the ciphertext's level gives garbage).
func (i *EvaluationKeysInfo) coversLevels(spec KeySpec) error {
	relin, levels, err := spec.ResolveKeyLevels(i.Params)
	if err != nil {
		return err
	}
	if spec.Relinearization && i.RelinearizationLevel < relin && i.GaloisLevels != nil {
		return fmt.Errorf("evaluation keys for %s: %w: the relinearization key is at level %d, the circuit uses it at level %d", i.Params, ErrKeyLevel, i.RelinearizationLevel, relin)
	}
	for _, g := range sortedUint64(mapKeys(levels)) {
		if got, ok := i.GaloisLevels[g]; ok && got < levels[g] {
			return fmt.Errorf("evaluation keys for %s: %w: the Galois key %d is at level %d, the circuit uses it at level %d", i.Params, ErrKeyLevel, g, got, levels[g])
		}
	}
	return nil
}

func mapKeys(m map[uint64]int) []uint64 {
	out := make([]uint64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// VerifyEvaluationKeysStream reads one evaluation-keys envelope from r and
// validates it without keeping the keys. params maps the envelope's
// fingerprint and label to the parameters the keys must be made for (an
// error refuses them: keys for parameters the caller does not serve);
// maxPayload caps the declared payload (0: MaxEnvelopePayload).
func VerifyEvaluationKeysStream(r io.Reader, params func(fp Fingerprint, label string) (*Parameters, error), maxPayload uint64) (*EvaluationKeysInfo, error) {
	er, err := OpenEnvelope(r, EnvelopeExpect{Kind: FileEvaluationKeys, MaxPayload: maxPayload})
	if err != nil {
		return nil, fmt.Errorf("verify evaluation keys: %w", err)
	}
	hdr := er.Header()
	p, err := params(hdr.Fingerprint, hdr.Label)
	if err != nil {
		return nil, fmt.Errorf("verify evaluation keys: %w", err)
	}
	if p.Fingerprint() != hdr.Fingerprint {
		return nil, fmt.Errorf("verify evaluation keys: %w: keys made for %q (%s), expected %s (%s)",
			ErrFingerprintMismatch, hdr.Label, hdr.Fingerprint.Short(), p.Name(), p.Fingerprint().Short())
	}
	info := &EvaluationKeysInfo{Params: p, PayloadBytes: hdr.PayloadLen, Version: hdr.Version, GaloisLevels: map[uint64]int{}}
	version := hdr.Version
	pr := newPayloadReader(er)
	scratch := make([]uint64, p.N())
	hp := p.HE().Parameters.Parameters
	err = func() error {
		flags := pr.u8()
		nGalois := pr.u32()
		if pr.err != nil {
			return pr.err
		}
		if flags&^(flagRelin|flagBtp) != 0 {
			return fmt.Errorf("%w: unknown evaluation key flags %#x", ErrMalformed, flags)
		}
		info.Relinearization = flags&flagRelin != 0
		info.GaloisElements = verifyKeySet(er, pr, hp, version, keySetRule(hp, version, false), info.Relinearization, nGalois, "evaluation keys:", scratch, info)
		if pr.err != nil {
			return pr.err
		}
		if flags&flagBtp == 0 {
			return nil
		}
		if !p.HasBootstrapping() {
			return fmt.Errorf("%w: keys hold bootstrapping keys but parameters %s have no bootstrapping", ErrMalformed, p)
		}
		info.Bootstrapping = true
		bp := p.btp.BootstrappingParameters.Parameters.Parameters
		if bp.N() > len(scratch) {
			scratch = make([]uint64, bp.N())
		}
		mask := pr.u8()
		if pr.err != nil {
			return pr.err
		}
		if mask>>len(btpComponentNames) != 0 {
			return fmt.Errorf("%w: unknown bootstrapping key components %#x", ErrMalformed, mask)
		}
		for i := range btpComponentNames {
			if mask&(1<<i) == 0 {
				continue
			}
			rule := anyLevel
			if i == btpDenseToSparse {
				rule = levelRule{exactQ: 0, exactP: 0}
			}
			verifyEvk(er, pr, bp, version, rule, "bootstrapping "+btpComponentNames[i], scratch)
			if pr.err != nil {
				return pr.err
			}
		}
		hasRelin := pr.u8()
		n := pr.u32()
		if pr.err != nil {
			return pr.err
		}
		if hasRelin > 1 {
			return fmt.Errorf("%w: bootstrapping relinearization flag %d", ErrMalformed, hasRelin)
		}
		verifyKeySet(er, pr, bp, version, keySetRule(bp, version, true), hasRelin == 1, n, "bootstrapping keys:", scratch, nil)
		return pr.err
	}()
	if err == nil && er.Remaining() != 0 {
		err = fmt.Errorf("%w: %d unexpected payload bytes after the evaluation keys", ErrMalformed, er.Remaining())
	}
	if err == nil {
		err = er.Finish()
	}
	if err != nil {
		return nil, fmt.Errorf("verify evaluation keys: %w", err)
	}
	return info, nil
}

// verifyKeySet is readKeySet without building the keys; it returns the
// Galois elements and, when info is non-nil, records the keys' levels.
func verifyKeySet(er *EnvelopeReader, pr *payloadReader, rp rlwe.Parameters, version uint16, rule levelRule, hasRelin bool, nGalois uint32, what string, scratch []uint64, info *EvaluationKeysInfo) []uint64 {
	if hasRelin {
		h := verifyEvk(er, pr, rp, version, rule, what+" relinearization key", scratch)
		if pr.err != nil {
			return nil
		}
		if info != nil {
			info.RelinearizationLevel = h.levelQ
			if h.seeded {
				info.SeededKeys++
			}
		}
	}
	nthRoot := uint64(rp.RingQ().NthRoot())
	if uint64(nGalois) > nthRoot/2 {
		pr.fail(fmt.Errorf("%w: %s declares %d Galois keys, at most %d exist", ErrMalformed, what, nGalois, nthRoot/2))
		return nil
	}
	var gals []uint64
	prev := uint64(0)
	for i := uint32(0); i < nGalois; i++ {
		g := pr.u64()
		if pr.err != nil {
			return nil
		}
		if g%2 == 0 || g >= nthRoot || g <= prev {
			pr.fail(fmt.Errorf("%w: %s Galois element %d invalid (must be odd, < %d, strictly increasing)", ErrMalformed, what, g, nthRoot))
			return nil
		}
		prev = g
		h := verifyEvk(er, pr, rp, version, rule, fmt.Sprintf("%s Galois key %d", what, g), scratch)
		if pr.err != nil {
			return nil
		}
		if info != nil {
			info.GaloisLevels[g] = h.levelQ
			if h.seeded {
				info.SeededKeys++
			}
		}
		gals = append(gals, g)
	}
	return gals
}

// verifyEvk checks one key record (see readEvk: declared levels, gadget rows
// for those levels, form, length) and skips its coefficients after checking
// each is below its modulus. A seeded record's random half is not expanded
// (the seed needs no check: every seed gives a valid key shape).
func verifyEvk(er *EnvelopeReader, pr *payloadReader, rp rlwe.Parameters, version uint16, rule levelRule, what string, scratch []uint64) evkHeader {
	h, ok := readEvkHeader(er, pr, rp, version, rule, what)
	if !ok {
		return h
	}
	comps := 2
	if h.seeded {
		comps = 1
	}
	q, p := rp.Q(), rp.P()
	buf := scratch[:rp.N()]
	width := func(m uint64) int { // coefficient width: 8 bytes in version 1, packed in 2
		if version < 2 {
			return 8
		}
		return coeffBytes(m)
	}
	for row := 0; row < h.rows && pr.err == nil; row++ {
		for comp := 0; comp < comps; comp++ {
			for i := 0; i <= h.levelQ; i++ {
				pr.u64sBelowPacked(buf, q[i], width(q[i]), what)
			}
			for i := 0; i <= h.levelP; i++ {
				pr.u64sBelowPacked(buf, p[i], width(p[i]), what)
			}
		}
	}
	return h
}
