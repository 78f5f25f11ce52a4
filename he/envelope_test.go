package he

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// tinyPreset is a deliberately tiny insecure parameter set for corruption
// tests and fuzz seeds (keys of a few hundred kB).
func tinyPreset(name string, logN int) Preset {
	return Preset{
		Name:               name,
		Literal:            hefloat.ParametersLiteral{LogN: logN, LogQ: []int{50, 40}, LogP: []int{51}, LogDefaultScale: 40},
		InsecureForTesting: true,
		Description:        "tiny insecure test set",
	}
}

func tinyParams(t testing.TB, name string, logN int) *Parameters {
	t.Helper()
	p, err := NewParameters(tinyPreset(name, logN))
	require.NoError(t, err)
	return p
}

// reseal recomputes the trailing checksum of an envelope after a deliberate edit.
func reseal(data []byte) []byte {
	out := append([]byte{}, data[:len(data)-checksumLen]...)
	sum := sha256.Sum256(out)
	return append(out, sum[:]...)
}

func TestEnvelopeRoundTripAndErrors(t *testing.T) {
	p := tinyParams(t, "tiny10", 10)
	payload := []byte("hello, envelope")
	var buf bytes.Buffer
	require.NoError(t, WriteEnvelope(&buf, FileCircuit, p.Fingerprint(), p.Name(), payload))
	data := buf.Bytes()
	hdrLen := 53 + len(p.Name())
	require.Len(t, data, hdrLen+len(payload)+checksumLen)

	h, got, err := DecodeEnvelope(data, ExpectFor(FileCircuit, p))
	require.NoError(t, err)
	require.Equal(t, payload, got)
	require.Equal(t, p.Name(), h.Label)
	require.Equal(t, uint64(len(payload)), h.PayloadLen)

	other := tinyParams(t, "tiny11", 11)
	cases := []struct {
		name string
		data []byte
		want EnvelopeExpect
		err  error
		msg  string
	}{
		{"bad magic", append([]byte("GIF89a.."), data[8:]...), ExpectFor(FileCircuit, p), ErrBadMagic, "not a polyformer file"},
		{"version", func() []byte { d := append([]byte{}, data...); d[8] = 9; return reseal(d) }(), ExpectFor(FileCircuit, p), ErrUnsupportedVersion, "version 9"},
		{"kind", data, ExpectFor(FileSecretKey, p), ErrWrongKind, "holds circuit, expected secret key"},
		{"fingerprint", data, ExpectFor(FileCircuit, other), ErrFingerprintMismatch, `made for parameters "tiny10"`},
		{"oversized", func() []byte {
			d := append([]byte{}, data...)
			binary.LittleEndian.PutUint64(d[hdrLen-8:], 1e18)
			return d
		}(), ExpectFor(FileCircuit, p), ErrTooLarge, "declares"},
		{"cap", data, EnvelopeExpect{Kind: FileCircuit, MaxPayload: 3}, ErrTooLarge, "limit 3"},
		{"checksum", func() []byte { d := append([]byte{}, data...); d[hdrLen+2] ^= 1; return d }(), ExpectFor(FileCircuit, p), ErrChecksum, "corrupted"},
		{"trailing", append(append([]byte{}, data...), 0), ExpectFor(FileCircuit, p), ErrTrailingData, "trailing"},
		{"label length", func() []byte { d := append([]byte{}, data...); d[44] = 200; return d }(), ExpectFor(FileCircuit, nil), ErrMalformed, "label length"},
	}
	for _, c := range cases {
		_, _, err := DecodeEnvelope(c.data, c.want)
		require.Error(t, err, c.name)
		require.True(t, errors.Is(err, c.err), "%s: %v", c.name, err)
		require.Contains(t, err.Error(), c.msg, c.name)
	}
	for n := 0; n < len(data); n++ {
		_, _, err := DecodeEnvelope(data[:n], ExpectFor(FileCircuit, p))
		require.True(t, errors.Is(err, ErrTruncated), "truncated at %d: %v", n, err)
	}
	for i := range data {
		d := append([]byte{}, data...)
		d[i] ^= 0x40
		_, _, err := DecodeEnvelope(d, ExpectFor(FileCircuit, p))
		require.Error(t, err, "flip at %d undetected", i)
	}
}

func TestEnvelopeWriterLength(t *testing.T) {
	var buf bytes.Buffer
	ew, err := NewEnvelopeWriter(&buf, FileCircuit, Fingerprint{}, "", 4)
	require.NoError(t, err)
	_, err = ew.Write([]byte("12345"))
	require.Error(t, err)
	_, err = ew.Write([]byte("12"))
	require.NoError(t, err)
	require.ErrorContains(t, ew.Close(), "short by 2")
	_, err = NewEnvelopeWriter(&buf, FileCircuit, Fingerprint{}, "", MaxEnvelopePayload+1)
	require.True(t, errors.Is(err, ErrTooLarge))
}
