package he

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

func TestKeysRoundTripAndUse(t *testing.T) {
	p, err := ParametersFromPreset(PresetTestN12)
	require.NoError(t, err)
	sk, evk, err := GenerateKeys(p, KeySpec{Relinearization: true, Rotations: []int{1, 5}})
	require.NoError(t, err)
	require.True(t, evk.HasRelinearization())
	require.True(t, evk.HasRotation(1))
	require.True(t, evk.HasRotation(5))
	require.False(t, evk.HasRotation(2))

	var skBuf, evkBuf bytes.Buffer
	require.NoError(t, WriteSecretKey(&skBuf, sk))
	require.NoError(t, WriteEvaluationKeys(&evkBuf, evk))
	require.Equal(t, int(evk.SizeBytes())+53+len(p.Name())+32, evkBuf.Len())
	sk2, err := ReadSecretKey(bytes.NewReader(skBuf.Bytes()), p)
	require.NoError(t, err)
	require.True(t, sk.Lattigo().Equal(sk2.Lattigo()))
	evk2, err := ReadEvaluationKeys(bytes.NewReader(evkBuf.Bytes()), p)
	require.NoError(t, err)
	require.Equal(t, evk.GaloisElements(), evk2.GaloisElements())

	// Use the reloaded keys: rotate and multiply, decrypt with the reloaded secret key.
	client, err := NewClient(p, sk2)
	require.NoError(t, err)
	vals := make([]float64, p.Slots())
	for i := range vals {
		vals[i] = float64(i%7) / 7
	}
	ct, err := client.EncryptReal(vals, -1)
	require.NoError(t, err)
	eval := hefloat.NewEvaluator(p.HE(), evk2.KeySet())
	rot, err := eval.RotateNew(ct, 5)
	require.NoError(t, err)
	sq, err := eval.MulRelinNew(rot, rot)
	require.NoError(t, err)
	require.NoError(t, eval.Rescale(sq, sq))
	got, err := client.DecryptReal(sq)
	require.NoError(t, err)
	for i := range vals {
		x := vals[(i+5)%len(vals)]
		require.InDelta(t, x*x, got[i], 1e-6)
	}
}

func TestKeysForOtherParametersRejected(t *testing.T) {
	p12, err := ParametersFromPreset(PresetTestN12)
	require.NoError(t, err)
	p13, err := ParametersFromPreset(PresetTestN13)
	require.NoError(t, err)
	sk, evk, err := GenerateKeys(p12, KeySpec{Relinearization: true, Rotations: []int{1}})
	require.NoError(t, err)
	var skBuf, evkBuf bytes.Buffer
	require.NoError(t, WriteSecretKey(&skBuf, sk))
	require.NoError(t, WriteEvaluationKeys(&evkBuf, evk))

	_, err = ReadSecretKey(bytes.NewReader(skBuf.Bytes()), p13)
	require.True(t, errors.Is(err, ErrFingerprintMismatch), "%v", err)
	require.Contains(t, err.Error(), `made for parameters "test-n12"`)
	require.Contains(t, err.Error(), `expected "test-n13"`)
	_, err = ReadEvaluationKeys(bytes.NewReader(evkBuf.Bytes()), p13)
	require.True(t, errors.Is(err, ErrFingerprintMismatch), "%v", err)

	// Forge the header so the fingerprint matches test-n13: the shape
	// checks must still refuse the keys, with an error, not a panic.
	forge := func(data []byte) []byte {
		d := append([]byte{}, data...)
		fp := p13.Fingerprint()
		copy(d[12:44], fp[:])
		return reseal(d)
	}
	_, err = ReadSecretKey(bytes.NewReader(forge(skBuf.Bytes())), p13)
	require.True(t, errors.Is(err, ErrMalformed) || errors.Is(err, ErrTooLarge), "%v", err)
	_, err = ReadEvaluationKeys(bytes.NewReader(forge(evkBuf.Bytes())), p13)
	require.True(t, errors.Is(err, ErrMalformed), "%v", err)
	t.Logf("forged evaluation keys: %v", err)

	// Wrong kind.
	_, err = ReadEvaluationKeys(bytes.NewReader(skBuf.Bytes()), p12)
	require.True(t, errors.Is(err, ErrWrongKind), "%v", err)
	_, err = ReadSecretKey(bytes.NewReader(evkBuf.Bytes()), p12)
	require.True(t, errors.Is(err, ErrWrongKind), "%v", err)
	_, err = NewClient(p13, sk)
	require.Error(t, err)
}

// corruptAll flips one bit at many offsets and truncates at many lengths,
// requiring an error every time (a panic fails the test by itself).
func corruptAll(t *testing.T, data []byte, read func([]byte) error) {
	t.Helper()
	require.NoError(t, read(data))
	step := len(data)/300 + 1
	offsets := []int{}
	for i := 0; i < 80 && i < len(data); i++ {
		offsets = append(offsets, i) // every header byte and the payload start
	}
	for i := 80; i < len(data); i += step {
		offsets = append(offsets, i)
	}
	for i := len(data) - 40; i < len(data); i++ {
		offsets = append(offsets, i) // payload end and checksum
	}
	for _, off := range offsets {
		d := append([]byte{}, data...)
		d[off] ^= 0x10
		require.Error(t, read(d), "bit flip at offset %d undetected", off)
	}
	for n := 0; n < len(data); n += step {
		err := read(data[:n])
		require.True(t, errors.Is(err, ErrTruncated), "truncation at %d: %v", n, err)
	}
	require.True(t, errors.Is(read(data[:len(data)-1]), ErrTruncated))
}

func TestCorruptedKeyFiles(t *testing.T) {
	p := tinyParams(t, "tiny10", 10)
	sk, evk, err := GenerateKeys(p, KeySpec{Relinearization: true, Rotations: []int{1, 3}, Conjugation: true})
	require.NoError(t, err)
	var skBuf, evkBuf bytes.Buffer
	require.NoError(t, WriteSecretKey(&skBuf, sk))
	require.NoError(t, WriteEvaluationKeys(&evkBuf, evk))
	corruptAll(t, skBuf.Bytes(), func(d []byte) error { _, err := ReadSecretKey(bytes.NewReader(d), p); return err })
	corruptAll(t, evkBuf.Bytes(), func(d []byte) error { _, err := ReadEvaluationKeys(bytes.NewReader(d), p); return err })

	// A resealed file with an out-of-range coefficient is caught by the
	// range check even though the checksum is valid.
	d := append([]byte{}, skBuf.Bytes()...)
	off := 53 + len(p.Name()) + 3
	for i := 0; i < 8; i++ {
		d[off+i] = 0xff
	}
	_, err = ReadSecretKey(bytes.NewReader(reseal(d)), p)
	require.True(t, errors.Is(err, ErrMalformed), "%v", err)
	require.Contains(t, err.Error(), ">= modulus")
}

func TestSecretKeyFileMode(t *testing.T) {
	p := tinyParams(t, "tiny10", 10)
	sk, evk, err := GenerateKeys(p, KeySpec{Relinearization: true})
	require.NoError(t, err)
	dir := t.TempDir()
	skPath := filepath.Join(dir, "secret.key")
	require.NoError(t, WriteSecretKeyFile(skPath, sk, false))
	st, err := os.Stat(skPath)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	require.ErrorContains(t, WriteSecretKeyFile(skPath, sk, false), "refusing to overwrite")
	require.NoError(t, WriteSecretKeyFile(skPath, sk, true))
	st, _ = os.Stat(skPath)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	sk2, err := ReadSecretKeyFile(skPath, p)
	require.NoError(t, err)
	require.True(t, sk.Lattigo().Equal(sk2.Lattigo()))
	require.NoError(t, os.Chmod(skPath, 0o644))
	_, err = ReadSecretKeyFile(skPath, p)
	require.ErrorContains(t, err, "must not be accessible by group or others")

	evkPath := filepath.Join(dir, "eval.keys")
	require.NoError(t, WriteEvaluationKeysFile(evkPath, evk, false))
	st, _ = os.Stat(evkPath)
	require.Equal(t, os.FileMode(0o644), st.Mode().Perm())
	evk2, err := ReadEvaluationKeysFile(evkPath, p)
	require.NoError(t, err)
	require.True(t, evk2.HasRelinearization())
	// Trailing bytes on disk are an error.
	f, err := os.OpenFile(evkPath, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, _ = f.Write([]byte{1})
	require.NoError(t, f.Close())
	_, err = ReadEvaluationKeysFile(evkPath, p)
	require.True(t, errors.Is(err, ErrTrailingData), "%v", err)
}

func TestLeakyBootstrappingKeysRefusedByWriter(t *testing.T) {
	p, err := ParametersFromPreset(PresetTestBootN13)
	require.NoError(t, err)
	// Build a key set that claims a top-level dense-to-sparse key (the
	// leaky shape) without paying for a full bootstrapping keygen.
	bp := p.BootstrappingParameters().BootstrappingParameters
	leaky := &EvaluationKeys{params: p, galois: map[uint64]*rlwe.GaloisKey{}}
	leaky.btp = bootstrappingKeysForShapeTest{}.keys(bp)
	var buf bytes.Buffer
	err = WriteEvaluationKeys(&buf, leaky)
	require.ErrorContains(t, err, "reveal the secret key")
}
