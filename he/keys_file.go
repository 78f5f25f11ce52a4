package he

import (
	"fmt"
	"io"
	"os"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
)

// --- secret key file ----------------------------------------------------------

// secret key payload: u8 logN, u8 #Q limbs, u8 #P limbs, then Q limbs and P
// limbs (N little-endian uint64 each, NTT+Montgomery form as Lattigo keeps them).

func secretKeyPayloadSize(p *Parameters) uint64 {
	hp := p.HE()
	return 3 + polyBytes(hp.N(), hp.MaxLevelQ()) + polyBytes(hp.N(), hp.MaxLevelP())
}

// WriteSecretKey writes the secret key envelope to w.
func WriteSecretKey(w io.Writer, sk *SecretKey) error {
	if sk == nil {
		return fmt.Errorf("write secret key: nil key")
	}
	p := sk.params
	hp := p.HE()
	if err := checkPolyShape(sk.sk.Value.Q, hp.N(), hp.MaxLevelQ(), "secret key"); err != nil {
		return fmt.Errorf("write secret key: %w", err)
	}
	if err := checkPolyShape(sk.sk.Value.P, hp.N(), hp.MaxLevelP(), "secret key"); err != nil {
		return fmt.Errorf("write secret key: %w", err)
	}
	ew, err := NewEnvelopeWriter(w, FileSecretKey, p.fp, p.name, secretKeyPayloadSize(p))
	if err != nil {
		return err
	}
	pw := newPayloadWriter(ew)
	pw.u8(uint8(hp.LogN()))
	pw.u8(uint8(hp.QCount()))
	pw.u8(uint8(hp.PCount()))
	writePoly(pw, sk.sk.Value.Q)
	writePoly(pw, sk.sk.Value.P)
	if pw.err != nil {
		return fmt.Errorf("write secret key: %w", pw.err)
	}
	return ew.Close()
}

// ReadSecretKey reads a secret key made for p. It checks the envelope (kind,
// fingerprint, exact length, checksum), the ring degree and limb counts, and
// that every coefficient is reduced modulo its prime.
func ReadSecretKey(r io.Reader, p *Parameters) (*SecretKey, error) {
	if p == nil {
		return nil, fmt.Errorf("read secret key: nil parameters")
	}
	hp := p.HE()
	want := ExpectFor(FileSecretKey, p)
	want.MaxPayload = secretKeyPayloadSize(p)
	var sk *rlwe.SecretKey
	_, err := readEnvelopeStream(r, want, func(er *EnvelopeReader, pr *payloadReader) error {
		if er.Header().PayloadLen != want.MaxPayload {
			return fmt.Errorf("%w: secret key payload is %d bytes, parameters %s need %d", ErrMalformed, er.Header().PayloadLen, p, want.MaxPayload)
		}
		logN, nq, np := int(pr.u8()), int(pr.u8()), int(pr.u8())
		if pr.err != nil {
			return pr.err
		}
		if logN != hp.LogN() || nq != hp.QCount() || np != hp.PCount() {
			return fmt.Errorf("%w: secret key has logN=%d, %d Q and %d P limbs; parameters %s have logN=%d, %d and %d",
				ErrMalformed, logN, nq, np, p, hp.LogN(), hp.QCount(), hp.PCount())
		}
		key := rlwe.NewSecretKey(hp)
		readPoly(pr, key.Value.Q, hp.Q(), "secret key")
		readPoly(pr, key.Value.P, hp.P(), "secret key")
		if pr.err != nil {
			return pr.err
		}
		sk = key
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read secret key: %w", err)
	}
	return &SecretKey{params: p, sk: sk}, nil
}

// WriteSecretKeyFile writes the secret key to path with mode 0600 (created
// that way, never widened). Without overwrite, an existing file is an error.
func WriteSecretKeyFile(path string, sk *SecretKey, overwrite bool) error {
	if err := writeFileAtomic(path, 0o600, overwrite, func(w io.Writer) error { return WriteSecretKey(w, sk) }); err != nil {
		return err
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("secret key file %s has mode %v, expected 0600", path, st.Mode().Perm())
	}
	return nil
}

// ReadSecretKeyFile reads a secret key file made for p. Like ssh, it refuses
// a file readable or writable by group or others.
func ReadSecretKeyFile(path string, p *Parameters) (*SecretKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("secret key file %s has mode %v: it must not be accessible by group or others (chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	var sk *SecretKey
	err = readEnvelopeFile(path, func(r io.Reader) (err error) {
		sk, err = ReadSecretKey(r, p)
		return err
	})
	return sk, err
}

// WriteEvaluationKeys writes the evaluation keys envelope to w (format
// version 3: each key, bootstrapping keys included, at its own level,
// seeded keys with their random half as a 32-byte seed). It refuses bootstrapping keys whose dense-to-sparse key
// is above level (Q0,P0): such keys leak the secret key (Lattigo v5.0.7 bug).
func WriteEvaluationKeys(w io.Writer, e *EvaluationKeys) error {
	if e == nil {
		return fmt.Errorf("write evaluation keys: nil keys")
	}
	p := e.params
	hp := p.HE().Parameters.Parameters
	if e.btp != nil {
		if err := CheckBootstrappingKeysSafe(e.btp); err != nil {
			return fmt.Errorf("write evaluation keys: %w", err)
		}
	}
	ew, err := NewEnvelopeWriter(w, FileEvaluationKeys, p.fp, p.name, evaluationKeysPayloadSize(e))
	if err != nil {
		return fmt.Errorf("write evaluation keys: %w", err)
	}
	pw := newPayloadWriter(ew)
	var flags uint8
	if e.relin != nil {
		flags |= flagRelin
	}
	if e.btp != nil {
		flags |= flagBtp
	}
	pw.u8(flags)
	gks := sortedGaloisKeys(e.galois)
	pw.u32(uint32(len(gks)))
	if err := writeKeySet(pw, hp, e.relin, gks, e.keySeeds(), "evaluation keys:"); err != nil {
		return fmt.Errorf("write evaluation keys: %w", err)
	}
	if e.btp != nil {
		bp := p.btp.BootstrappingParameters.Parameters.Parameters
		var mask uint8
		comps := btpComponents(e.btp)
		for i, c := range comps {
			if *c != nil {
				mask |= 1 << i
			}
		}
		pw.u8(mask)
		for i, c := range comps {
			if *c == nil {
				continue
			}
			if err := checkEvaluationKeyShape(bp, *c, (*c).LevelQ(), (*c).LevelP(), "bootstrapping "+btpComponentNames[i]); err != nil {
				return fmt.Errorf("write evaluation keys: %w", err)
			}
			writeEvk(pw, bp, *c, e.btpSeeds.components[i])
		}
		rl, bgks := memSetKeys(e.btp.MemEvaluationKeySet)
		if rl != nil {
			pw.u8(1)
		} else {
			pw.u8(0)
		}
		pw.u32(uint32(len(bgks)))
		if err := writeKeySet(pw, bp, rl, bgks, e.btpSeeds.set, "bootstrapping keys:"); err != nil {
			return fmt.Errorf("write evaluation keys: %w", err)
		}
	}
	if pw.err != nil {
		return fmt.Errorf("write evaluation keys: %w", pw.err)
	}
	return ew.Close()
}

// ReadEvaluationKeys reads evaluation keys made for p (format version 1 to
// 3), validating the envelope, every key's ring degree, levels and gadget
// shape against p and its declared levels, every Galois element, and every
// coefficient's range, and expanding seeded random halves. Bootstrapping
// keys are accepted only if p has bootstrapping parameters and the
// dense-to-sparse key is at level (Q0,P0).
func ReadEvaluationKeys(r io.Reader, p *Parameters) (*EvaluationKeys, error) {
	return readEvaluationKeys(r, p, 0)
}

// ReadEvaluationKeysMax is ReadEvaluationKeys refusing, from the header and
// before reading any key, a file whose payload declares more than maxBytes
// (0: MaxEnvelopePayload).
func ReadEvaluationKeysMax(r io.Reader, p *Parameters, maxBytes uint64) (*EvaluationKeys, error) {
	return readEvaluationKeys(r, p, maxBytes)
}

func readEvaluationKeys(r io.Reader, p *Parameters, maxBytes uint64) (*EvaluationKeys, error) {
	if p == nil {
		return nil, fmt.Errorf("read evaluation keys: nil parameters")
	}
	var out *EvaluationKeys
	want := ExpectFor(FileEvaluationKeys, p)
	want.MaxPayload = maxBytes
	_, err := readEnvelopeStream(r, want, func(er *EnvelopeReader, pr *payloadReader) (err error) {
		out, err = decodeEvaluationKeys(er, pr, p)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read evaluation keys: %w", err)
	}
	return out, nil
}

// WriteEvaluationKeysFile writes the evaluation keys to path (mode 0644).
func WriteEvaluationKeysFile(path string, e *EvaluationKeys, overwrite bool) error {
	return writeFileAtomic(path, 0o644, overwrite, func(w io.Writer) error { return WriteEvaluationKeys(w, e) })
}

// ReadEvaluationKeysFile reads an evaluation keys file made for p.
func ReadEvaluationKeysFile(path string, p *Parameters) (*EvaluationKeys, error) {
	return ReadEvaluationKeysFileMax(path, p, 0)
}

// ReadEvaluationKeysFileMax reads an evaluation keys file made for p whose
// payload declares at most maxBytes (0: MaxEnvelopePayload).
func ReadEvaluationKeysFileMax(path string, p *Parameters, maxBytes uint64) (*EvaluationKeys, error) {
	var e *EvaluationKeys
	err := readEnvelopeFile(path, func(r io.Reader) (err error) {
		e, err = readEvaluationKeys(r, p, maxBytes)
		return err
	})
	return e, err
}
