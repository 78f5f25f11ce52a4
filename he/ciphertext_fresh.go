package he

import (
	"fmt"
	"io"
	"math"
)

// ReadFreshCiphertexts reads a ciphertexts envelope made for p from r (at
// most maxBytes bytes, else an error wrapping ErrTooLarge) and checks that
// it holds 1 to maxCount fresh encryptions as a circuit takes them: degree
// 1, at the given level, at the parameters' default scale, packing all
// slots. It is the server's decoder of an inference request; everything
// ReadCiphertexts checks (envelope, fingerprint, ring degree, coefficient
// ranges) is checked too.
func ReadFreshCiphertexts(r io.Reader, p *Parameters, level, maxCount int, maxBytes int64) ([]*Ciphertext, error) {
	if p == nil {
		return nil, fmt.Errorf("read ciphertexts: nil parameters")
	}
	lr := &limitedReader{r: r, n: maxBytes}
	cts, err := ReadCiphertexts(lr, p)
	if lr.hit {
		return nil, fmt.Errorf("%w: request body exceeds %d bytes", ErrTooLarge, maxBytes)
	}
	if err != nil {
		return nil, err
	}
	if len(cts) < 1 || len(cts) > maxCount {
		return nil, fmt.Errorf("%d ciphertexts, 1 to %d allowed per request", len(cts), maxCount)
	}
	hp := p.HE()
	want := hp.DefaultScale()
	logSlots := hp.LogMaxDimensions()
	for i, ct := range cts {
		switch {
		case ct.Degree() != 1:
			return nil, fmt.Errorf("ciphertext %d has degree %d, want 1 (a fresh encryption)", i, ct.Degree())
		case ct.Level() != level:
			return nil, fmt.Errorf("ciphertext %d is at level %d, the circuit takes level %d", i, ct.Level(), level)
		case ct.Scale.Cmp(want) != 0:
			f, _ := ct.Scale.Value.Float64()
			return nil, fmt.Errorf("ciphertext %d has scale 2^%.6g, the circuit takes 2^%d", i, math.Log2(f), p.LogDefaultScale())
		case ct.LogDimensions != logSlots:
			return nil, fmt.Errorf("ciphertext %d packs %+v slots, the parameters pack %+v", i, ct.LogDimensions, logSlots)
		}
	}
	return cts, nil
}

// limitedReader is io.LimitReader that remembers whether the limit was hit
// (a read past it was attempted).
type limitedReader struct {
	r   io.Reader
	n   int64
	hit bool
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		var b [1]byte
		if n, _ := l.r.Read(b[:]); n > 0 {
			l.hit = true
			return 0, fmt.Errorf("%w: body too large", ErrTooLarge)
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}
