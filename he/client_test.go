package he

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestClientRoundTrip encrypts and decrypts real and complex slot vectors and
// checks the slot-count and level guards.
func TestClientRoundTrip(t *testing.T) {
	p, err := ParametersFromPreset(PresetTestN12)
	require.NoError(t, err)
	sk, _, err := GenerateKeys(p, KeySpec{})
	require.NoError(t, err)
	c, err := NewClient(p, sk)
	require.NoError(t, err)

	re := []float64{0.5, -1.25, 3}
	ct, err := c.EncryptReal(re, -1)
	require.NoError(t, err)
	gotRe, err := c.DecryptReal(ct)
	require.NoError(t, err)
	require.Len(t, gotRe, p.Slots())
	for i, v := range re {
		require.InDelta(t, v, gotRe[i], 1e-6)
	}

	cx := []complex128{complex(1, -2), complex(-0.5, 0.25)}
	ct, err = c.EncryptComplex(cx, 3)
	require.NoError(t, err)
	require.Equal(t, 3, ct.Level())
	gotCx, err := c.DecryptComplex(ct)
	require.NoError(t, err)
	for i, v := range cx {
		require.InDelta(t, real(v), real(gotCx[i]), 1e-6)
		require.InDelta(t, imag(v), imag(gotCx[i]), 1e-6)
	}

	_, err = c.EncryptReal(make([]float64, p.Slots()+1), -1)
	require.ErrorContains(t, err, "slots")
	_, err = c.EncryptComplex(cx, p.MaxLevel()+1)
	require.ErrorContains(t, err, "MaxLevel")
}
