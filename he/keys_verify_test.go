package he

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestVerifyEvaluationKeysStream(t *testing.T) {
	p, err := ParametersFromPreset(PresetTestN12)
	require.NoError(t, err)
	spec := KeySpec{Relinearization: true, Rotations: []int{1, 5, -3}}
	_, evk, err := GenerateKeys(p, spec)
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, WriteEvaluationKeys(&buf, evk))
	data := buf.Bytes()
	lookup := func(fp Fingerprint, label string) (*Parameters, error) {
		if fp != p.Fingerprint() {
			return nil, errors.New("unknown parameters " + label)
		}
		return p, nil
	}
	info, err := VerifyEvaluationKeysStream(bytes.NewReader(data), lookup, 0)
	require.NoError(t, err)
	require.True(t, info.Relinearization)
	require.Equal(t, evk.GaloisElements(), info.GaloisElements)
	require.Equal(t, evk.SizeBytes(), info.PayloadBytes)
	require.NoError(t, info.Covers(spec))
	require.ErrorContains(t, info.Covers(KeySpec{Rotations: []int{2}}), "lack Galois keys")

	// truncated, corrupted, wrong parameters, over the cap
	_, err = VerifyEvaluationKeysStream(bytes.NewReader(data[:len(data)/2]), lookup, 0)
	require.ErrorIs(t, err, ErrTruncated)
	bad := append([]byte(nil), data...)
	bad[len(bad)/2] ^= 1
	_, err = VerifyEvaluationKeysStream(bytes.NewReader(bad), lookup, 0)
	require.Error(t, err)
	big := append([]byte(nil), data...)
	for i := 200; i < 208; i++ { // a coefficient of the relinearization key set to 2^64-1
		big[i] = 0xff
	}
	_, err = VerifyEvaluationKeysStream(bytes.NewReader(big), lookup, 0)
	require.ErrorIs(t, err, ErrMalformed)
	q, err := ParametersFromPreset(PresetTestN13)
	require.NoError(t, err)
	_, err = VerifyEvaluationKeysStream(bytes.NewReader(data), func(Fingerprint, string) (*Parameters, error) { return q, nil }, 0)
	require.ErrorIs(t, err, ErrFingerprintMismatch)
	_, err = VerifyEvaluationKeysStream(bytes.NewReader(data), lookup, 1000)
	require.ErrorIs(t, err, ErrTooLarge)
	_, err = VerifyEvaluationKeysStream(bytes.NewReader(append(append([]byte(nil), data...), 0)), lookup, 0)
	require.NoError(t, err, "trailing bytes after the envelope are the caller's business")
}
