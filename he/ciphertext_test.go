package he

import (
	"bytes"
	"errors"
	"math"
	"math/big"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

func TestCiphertextsRoundTrip(t *testing.T) {
	p, err := ParametersFromPreset(PresetTestN12)
	require.NoError(t, err)
	sk, evk, err := GenerateKeys(p, KeySpec{Relinearization: true})
	require.NoError(t, err)
	client, err := NewClient(p, sk)
	require.NoError(t, err)
	vals := make([]float64, p.Slots())
	for i := range vals {
		vals[i] = math.Sin(float64(i))
	}
	a, err := client.EncryptReal(vals, -1)
	require.NoError(t, err)
	b, err := client.EncryptReal(vals[:10], 3)
	require.NoError(t, err)
	eval := hefloat.NewEvaluator(p.HE(), evk.KeySet())
	c, err := eval.MulNew(a, a) // degree 2, scale 2^80
	require.NoError(t, err)
	d, err := eval.MulRelinNew(a, a)
	require.NoError(t, err)
	require.NoError(t, eval.Rescale(d, d)) // scale not a power of two
	cts := []*rlwe.Ciphertext{a, b, c, d}

	var buf bytes.Buffer
	require.NoError(t, WriteCiphertexts(&buf, p, cts))
	got, err := ReadCiphertexts(bytes.NewReader(buf.Bytes()), p)
	require.NoError(t, err)
	require.Len(t, got, len(cts))
	for i := range cts {
		require.True(t, cts[i].Equal(got[i]), "ciphertext %d differs after round trip", i)
		require.True(t, cts[i].Scale.Equal(got[i].Scale), "scale %d must be exact", i)
		require.Equal(t, cts[i].LogDimensions, got[i].LogDimensions)
	}
	out, err := client.DecryptReal(got[3])
	require.NoError(t, err)
	for i := range vals {
		require.InDelta(t, vals[i]*vals[i], out[i], 1e-6)
	}

	path := filepath.Join(t.TempDir(), "x.ct")
	require.NoError(t, WriteCiphertextsFile(path, p, cts[:1], false))
	one, err := ReadCiphertextsFile(path, p)
	require.NoError(t, err)
	require.True(t, a.Equal(one[0]))

	// Single-ciphertext reader refuses a multi-ciphertext file.
	_, err = ReadCiphertext(bytes.NewReader(buf.Bytes()), p)
	require.ErrorContains(t, err, "holds 4 ciphertexts")

	// Other parameters: fingerprint mismatch.
	p13, _ := ParametersFromPreset(PresetTestN13)
	_, err = ReadCiphertexts(bytes.NewReader(buf.Bytes()), p13)
	require.True(t, errors.Is(err, ErrFingerprintMismatch), "%v", err)
}

func TestCheckCiphertextRejects(t *testing.T) {
	p := tinyParams(t, "tiny10", 10)
	hp := p.HE()
	good := hefloat.NewCiphertext(hp, 1, hp.MaxLevel())
	require.NoError(t, CheckCiphertext(p, good))
	bad := []struct {
		name string
		mod  func(ct *rlwe.Ciphertext)
	}{
		{"degree 0", func(ct *rlwe.Ciphertext) { ct.Value = ct.Value[:1] }},
		{"degree 3", func(ct *rlwe.Ciphertext) { ct.Value = append(ct.Value, ct.Value[0], ct.Value[0]) }},
		{"zero scale", func(ct *rlwe.Ciphertext) { ct.Scale = rlwe.NewScale(0) }},
		{"inf scale", func(ct *rlwe.Ciphertext) { ct.Scale = rlwe.Scale{Value: *new(big.Float).SetInf(false)} }},
		{"negative scale", func(ct *rlwe.Ciphertext) { ct.Scale = rlwe.Scale{Value: *big.NewFloat(-1)} }},
		{"dims", func(ct *rlwe.Ciphertext) { ct.LogDimensions.Cols = hp.LogN() }},
		{"not NTT", func(ct *rlwe.Ciphertext) { ct.IsNTT = false }},
	}
	for _, c := range bad {
		ct := good.CopyNew()
		c.mod(ct)
		require.Error(t, CheckCiphertext(p, ct), c.name)
		var buf bytes.Buffer
		require.Error(t, WriteCiphertexts(&buf, p, []*rlwe.Ciphertext{ct}), c.name)
	}
	// Level above MaxLevel: a ciphertext of the larger test-n12 params.
	p12, _ := ParametersFromPreset(PresetTestN12)
	big := hefloat.NewCiphertext(p12.HE(), 1, p12.MaxLevel())
	require.Error(t, CheckCiphertext(p, big))
}

func TestCorruptedCiphertextFiles(t *testing.T) {
	p := tinyParams(t, "tiny10", 10)
	sk, _, err := GenerateKeys(p, KeySpec{})
	require.NoError(t, err)
	client, err := NewClient(p, sk)
	require.NoError(t, err)
	a, err := client.EncryptReal([]float64{1, 2, 3}, -1)
	require.NoError(t, err)
	b, err := client.EncryptReal([]float64{4}, 0)
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, WriteCiphertexts(&buf, p, []*rlwe.Ciphertext{a, b}))
	corruptAll(t, buf.Bytes(), func(d []byte) error { _, err := ReadCiphertexts(bytes.NewReader(d), p); return err })

	// Valid checksum but a declared level above MaxLevel / degree 3.
	hdr := 53 + len(p.Name())
	for _, edit := range []struct {
		off int
		val byte
		msg string
	}{{hdr + 4, 3, "degree 3"}, {hdr + 5, 7, "level 7"}, {hdr + 6, 0x80, "unknown flags"}, {hdr + 8, 10, "LogDimensions"}, {hdr + 7, 1, "LogDimensions"}} {
		d := append([]byte{}, buf.Bytes()...)
		d[edit.off] = edit.val
		_, err := ReadCiphertexts(bytes.NewReader(reseal(d)), p)
		require.Error(t, err)
		require.Contains(t, err.Error(), edit.msg)
	}
}
