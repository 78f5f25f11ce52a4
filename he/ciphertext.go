package he

import (
	"fmt"
	"io"
	"math/big"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/ring"
)

// Ciphertext is a CKKS ciphertext: the type every package outside he/ names,
// so that Lattigo stays behind this package (an alias, so he's functions and
// Lattigo's accept the same values without conversion).
type Ciphertext = rlwe.Ciphertext

// Plaintext is an encoded CKKS plaintext (an alias of Lattigo's, like
// Ciphertext): what Evaluator.EncodeMul and EncodeAdd return.
type Plaintext = rlwe.Plaintext

// Ciphertext files.
//
// payload: u32 count, then per ciphertext:
//
//	u8 degree (1 or 2), u8 level, u8 flags (bit 0 IsNTT, bit 1 IsMontgomery,
//	bit 2 IsBatched), u8 log2 rows, u8 log2 columns (LogDimensions),
//	u32 length + scale (big.Float gob encoding, exact),
//	degree+1 polynomials of level+1 limbs of N little-endian uint64.
//
// Like the key files, this avoids Lattigo's ReadFrom on untrusted input (see
// the note in keys.go): the reader allocates a ciphertext of the declared,
// validated shape and fills it.

const (
	ctFlagNTT        = 1 << 0
	ctFlagMontgomery = 1 << 1
	ctFlagBatched    = 1 << 2
	maxScaleBytes    = 64
	maxCiphertexts   = 1 << 20
)

func ciphertextRecordSize(n, degree, level, scaleLen int) uint64 {
	return 5 + 4 + uint64(scaleLen) + uint64(degree+1)*polyBytes(n, level)
}

// CheckCiphertext validates a ciphertext against p: degree 1 or 2, level at
// most MaxLevel, ring degree N on every limb, NTT domain and not Montgomery
// (as CKKS keeps them), a finite positive scale without modulus, and
// LogDimensions within the parameters' maximum.
func CheckCiphertext(p *Parameters, ct *Ciphertext) error {
	if p == nil {
		return fmt.Errorf("nil parameters")
	}
	if ct == nil || ct.MetaData == nil {
		return fmt.Errorf("ciphertext or its metadata is nil")
	}
	hp := p.HE()
	degree := len(ct.Value) - 1
	if degree < 1 || degree > 2 {
		return fmt.Errorf("ciphertext degree %d, want 1 or 2", degree)
	}
	level := ct.Level()
	if level < 0 || level > hp.MaxLevel() {
		return fmt.Errorf("ciphertext level %d outside [0, %d] of %s", level, hp.MaxLevel(), p)
	}
	for i, pol := range ct.Value {
		if err := checkPolyShape(pol, hp.N(), level, fmt.Sprintf("ciphertext component %d", i)); err != nil {
			return err
		}
	}
	if !ct.IsNTT || ct.IsMontgomery {
		return fmt.Errorf("ciphertext domain IsNTT=%v IsMontgomery=%v, want NTT and not Montgomery", ct.IsNTT, ct.IsMontgomery)
	}
	if err := checkScale(ct.Scale); err != nil {
		return err
	}
	max := hp.LogMaxDimensions()
	if d := ct.LogDimensions; d.Rows < 0 || d.Cols < 0 || d.Rows > max.Rows || d.Cols > max.Cols {
		return fmt.Errorf("ciphertext LogDimensions %+v outside the parameters' maximum %+v", d, max)
	}
	return nil
}

func checkScale(s rlwe.Scale) error {
	if s.Mod != nil {
		return fmt.Errorf("ciphertext scale has a modulus (not a CKKS scale)")
	}
	if s.Value.IsInf() || s.Value.Sign() <= 0 {
		return fmt.Errorf("ciphertext scale %s is not finite and positive", s.Value.Text('g', 10))
	}
	if e := s.Value.MantExp(nil); e < -1024 || e > 1024 {
		return fmt.Errorf("ciphertext scale 2^%d out of range", e)
	}
	return nil
}

// WriteCiphertexts writes cts (all for p) as one ciphertexts envelope.
func WriteCiphertexts(w io.Writer, p *Parameters, cts []*Ciphertext) error {
	if p == nil {
		return fmt.Errorf("write ciphertexts: nil parameters")
	}
	if len(cts) > maxCiphertexts {
		return fmt.Errorf("write ciphertexts: %d ciphertexts > %d", len(cts), maxCiphertexts)
	}
	scales := make([][]byte, len(cts))
	size := uint64(4)
	for i, ct := range cts {
		if err := CheckCiphertext(p, ct); err != nil {
			return fmt.Errorf("write ciphertexts: ciphertext %d: %w", i, err)
		}
		b, err := ct.Scale.Value.GobEncode()
		if err != nil || len(b) > maxScaleBytes {
			return fmt.Errorf("write ciphertexts: ciphertext %d: encode scale: %v", i, err)
		}
		scales[i] = b
		size += ciphertextRecordSize(p.N(), ct.Degree(), ct.Level(), len(b))
	}
	ew, err := NewEnvelopeWriter(w, FileCiphertexts, p.fp, p.name, size)
	if err != nil {
		return fmt.Errorf("write ciphertexts: %w", err)
	}
	pw := newPayloadWriter(ew)
	pw.u32(uint32(len(cts)))
	for i, ct := range cts {
		var flags uint8
		if ct.IsNTT {
			flags |= ctFlagNTT
		}
		if ct.IsMontgomery {
			flags |= ctFlagMontgomery
		}
		if ct.IsBatched {
			flags |= ctFlagBatched
		}
		pw.write([]byte{uint8(ct.Degree()), uint8(ct.Level()), flags, uint8(ct.LogDimensions.Rows), uint8(ct.LogDimensions.Cols)})
		pw.lenBytes(scales[i])
		for _, pol := range ct.Value {
			writePoly(pw, pol)
		}
	}
	if pw.err != nil {
		return fmt.Errorf("write ciphertexts: %w", pw.err)
	}
	return ew.Close()
}

// WriteCiphertext writes a single ciphertext.
func WriteCiphertext(w io.Writer, p *Parameters, ct *Ciphertext) error {
	return WriteCiphertexts(w, p, []*Ciphertext{ct})
}

// ReadCiphertexts reads a ciphertexts envelope made for p and validates
// every ciphertext (see CheckCiphertext) and every coefficient's range.
func ReadCiphertexts(r io.Reader, p *Parameters) ([]*Ciphertext, error) {
	if p == nil {
		return nil, fmt.Errorf("read ciphertexts: nil parameters")
	}
	hp := p.HE()
	var out []*Ciphertext
	_, err := readEnvelopeStream(r, ExpectFor(FileCiphertexts, p), func(er *EnvelopeReader, pr *payloadReader) error {
		count := pr.u32()
		if pr.err != nil {
			return pr.err
		}
		if count > maxCiphertexts {
			return fmt.Errorf("%w: %d ciphertexts declared, limit %d", ErrTooLarge, count, maxCiphertexts)
		}
		cts := make([]*Ciphertext, 0, min(int(count), 64))
		for i := 0; i < int(count); i++ {
			var hdr [5]byte
			pr.read(hdr[:])
			scaleBytes := pr.lenBytes(maxScaleBytes, "scale")
			if pr.err != nil {
				return pr.err
			}
			degree, level, flags := int(hdr[0]), int(hdr[1]), hdr[2]
			dims := ring.Dimensions{Rows: int(hdr[3]), Cols: int(hdr[4])}
			if degree < 1 || degree > 2 {
				return fmt.Errorf("%w: ciphertext %d has degree %d, want 1 or 2", ErrMalformed, i, degree)
			}
			if level > hp.MaxLevel() {
				return fmt.Errorf("%w: ciphertext %d at level %d > MaxLevel %d of %s", ErrMalformed, i, level, hp.MaxLevel(), p)
			}
			if flags&^(ctFlagNTT|ctFlagMontgomery|ctFlagBatched) != 0 {
				return fmt.Errorf("%w: ciphertext %d has unknown flags %#x", ErrMalformed, i, flags)
			}
			if need := uint64(degree+1) * polyBytes(hp.N(), level); er.Remaining() < need {
				return fmt.Errorf("%w: ciphertext %d needs %d more bytes, payload has %d", ErrTruncated, i, need, er.Remaining())
			}
			var scale big.Float
			if err := decodeBigFloat(&scale, scaleBytes); err != nil {
				return fmt.Errorf("%w: ciphertext %d scale: %v", ErrMalformed, i, err)
			}
			ct := rlwe.NewCiphertext(hp, degree, level)
			ct.Scale = rlwe.Scale{Value: scale}
			ct.IsNTT = flags&ctFlagNTT != 0
			ct.IsMontgomery = flags&ctFlagMontgomery != 0
			ct.IsBatched = flags&ctFlagBatched != 0
			ct.LogDimensions = dims
			for _, pol := range ct.Value {
				readPoly(pr, pol, hp.Q(), fmt.Sprintf("ciphertext %d", i))
			}
			if pr.err != nil {
				return pr.err
			}
			if err := CheckCiphertext(p, ct); err != nil {
				return fmt.Errorf("%w: ciphertext %d: %v", ErrMalformed, i, err)
			}
			cts = append(cts, ct)
		}
		out = cts
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read ciphertexts: %w", err)
	}
	return out, nil
}

// decodeBigFloat wraps big.Float.GobDecode, recovering from any panic on
// malformed input.
func decodeBigFloat(f *big.Float, b []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("big.Float decode panicked: %v", r)
		}
	}()
	return f.GobDecode(b)
}

// ReadCiphertext reads a file holding exactly one ciphertext.
func ReadCiphertext(r io.Reader, p *Parameters) (*Ciphertext, error) {
	cts, err := ReadCiphertexts(r, p)
	if err != nil {
		return nil, err
	}
	if len(cts) != 1 {
		return nil, fmt.Errorf("read ciphertext: file holds %d ciphertexts, expected 1", len(cts))
	}
	return cts[0], nil
}

// WriteCiphertextsFile writes ciphertexts to path (mode 0644).
func WriteCiphertextsFile(path string, p *Parameters, cts []*Ciphertext, overwrite bool) error {
	return writeFileAtomic(path, 0o644, overwrite, func(w io.Writer) error { return WriteCiphertexts(w, p, cts) })
}

// ReadCiphertextsFile reads a ciphertexts file made for p.
func ReadCiphertextsFile(path string, p *Parameters) ([]*Ciphertext, error) {
	var cts []*Ciphertext
	err := readEnvelopeFile(path, func(r io.Reader) (err error) {
		cts, err = ReadCiphertexts(r, p)
		return err
	})
	return cts, err
}
