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
	return nil
}

// VerifyEvaluationKeysStream reads one evaluation-keys envelope from r and
// validates it without keeping the keys. params maps the envelope's
// fingerprint and label to the parameters the keys must be made for (an
// error refuses them: keys for parameters the caller does not serve);
// maxPayload caps the declared payload (0: MaxEnvelopePayload).
func VerifyEvaluationKeysStream(r io.Reader, params func(fp Fingerprint, label string) (*Parameters, error), maxPayload uint64) (*EvaluationKeysInfo, error) {
	er, err := OpenEnvelope(r, EnvelopeExpect{Kind: KindEvaluationKeys, MaxPayload: maxPayload})
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
	info := &EvaluationKeysInfo{Params: p, PayloadBytes: hdr.PayloadLen}
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
		info.GaloisElements = verifyKeySet(er, pr, hp, info.Relinearization, nGalois, "evaluation keys:", scratch)
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
			rule := levelRule{exactQ: -2, exactP: -2}
			if i == btpDenseToSparse {
				rule = levelRule{exactQ: 0, exactP: 0}
			}
			verifyEvk(er, pr, bp, rule, "bootstrapping "+btpComponentNames[i], scratch)
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
		verifyKeySet(er, pr, bp, hasRelin == 1, n, "bootstrapping keys:", scratch)
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
// Galois elements.
func verifyKeySet(er *EnvelopeReader, pr *payloadReader, rp rlwe.Parameters, hasRelin bool, nGalois uint32, what string, scratch []uint64) []uint64 {
	full := levelRule{exactQ: rp.MaxLevelQ(), exactP: rp.MaxLevelP()}
	if hasRelin {
		if verifyEvk(er, pr, rp, full, what+" relinearization key", scratch); pr.err != nil {
			return nil
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
		if verifyEvk(er, pr, rp, full, fmt.Sprintf("%s Galois key %d", what, g), scratch); pr.err != nil {
			return nil
		}
		gals = append(gals, g)
	}
	return gals
}

// verifyEvk checks one key record (see readEvk) and skips its coefficients
// after checking each is below its modulus.
func verifyEvk(er *EnvelopeReader, pr *payloadReader, rp rlwe.Parameters, rule levelRule, what string, scratch []uint64) {
	levelQ := int(pr.u8())
	levelP := int(pr.u8()) - 1
	var rb [2]byte
	pr.read(rb[:])
	if pr.err != nil {
		return
	}
	rows := int(rb[0]) | int(rb[1])<<8
	if levelQ > rp.MaxLevelQ() || levelP > rp.MaxLevelP() {
		pr.fail(fmt.Errorf("%w: %s at levels (Q %d, P %d) exceeds the parameters' maximum (Q %d, P %d)", ErrMalformed, what, levelQ, levelP, rp.MaxLevelQ(), rp.MaxLevelP()))
		return
	}
	if (rule.exactQ != -2 && levelQ != rule.exactQ) || (rule.exactP != -2 && levelP != rule.exactP) {
		pr.fail(fmt.Errorf("%w: %s at levels (Q %d, P %d), expected (Q %d, P %d) for these parameters", ErrMalformed, what, levelQ, levelP, rule.exactQ, rule.exactP))
		return
	}
	if levelP < 0 {
		pr.fail(fmt.Errorf("%w: %s without special primes P is not supported", ErrMalformed, what))
		return
	}
	if want := rp.BaseRNSDecompositionVectorSize(levelQ, levelP); rows != want {
		pr.fail(fmt.Errorf("%w: %s declares %d gadget rows, parameters need %d at these levels", ErrMalformed, what, rows, want))
		return
	}
	if need := evkRecordSize(rp, levelQ, levelP) - 4; er.Remaining() < need {
		pr.fail(fmt.Errorf("%w: %s needs %d more bytes, payload has %d", ErrTruncated, what, need, er.Remaining()))
		return
	}
	q, p := rp.Q(), rp.P()
	buf := scratch[:rp.N()]
	for row := 0; row < rows && pr.err == nil; row++ {
		for comp := 0; comp < 2; comp++ {
			for i := 0; i <= levelQ; i++ {
				pr.u64sBelow(buf, q[i], what)
			}
			for i := 0; i <= levelP; i++ {
				pr.u64sBelow(buf, p[i], what)
			}
		}
	}
}
