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
	// Version is the file format version (1 to 3).
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
	err = decodeEnvelopePayload(er, pr, FileEvaluationKeys, func(er *EnvelopeReader, pr *payloadReader) (err error) {
		info.Bootstrapping, err = walkEvaluationKeys(er, pr, p, version, func(rec evkRecord, rp rlwe.Parameters, rule levelRule, what string) {
			if rp.N() > len(scratch) {
				scratch = make([]uint64, rp.N())
			}
			h := verifyEvk(er, pr, rp, version, rule, what, scratch)
			if pr.err != nil || rec.bootstrapping {
				return
			}
			if h.seeded {
				info.SeededKeys++
			}
			if rec.relin {
				info.Relinearization, info.RelinearizationLevel = true, h.levelQ
				return
			}
			info.GaloisElements = append(info.GaloisElements, rec.galois)
			info.GaloisLevels[rec.galois] = h.levelQ
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("verify evaluation keys: %w", err)
	}
	return info, nil
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
