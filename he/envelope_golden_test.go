package he

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
)

var updateHEGolden = flag.Bool("he-update-golden", false, "rewrite he/testdata golden files")

// goldenValues are encrypted in testdata/tiny10.ct.
var goldenValues = []float64{1, 2, 3, -0.5}

// TestGoldenFiles reads files written by an earlier build (parameters,
// secret key, ciphertext in testdata/), so any change of the file format or
// of the fingerprint that would make existing files unreadable fails here.
// Regenerate deliberately with: go test -run TestGoldenFiles ./he -he-update-golden
func TestGoldenFiles(t *testing.T) {
	dir := "testdata"
	pPath, skPath, ctPath := filepath.Join(dir, "tiny10.params"), filepath.Join(dir, "tiny10.sk"), filepath.Join(dir, "tiny10.ct")
	want := tinyParams(t, "tiny10", 10)
	if *updateHEGolden {
		sk, _, err := GenerateKeys(want, KeySpec{})
		require.NoError(t, err)
		client, err := NewClient(want, sk)
		require.NoError(t, err)
		ct, err := client.EncryptReal(goldenValues, 1)
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(dir, 0o755))
		require.NoError(t, WriteParametersFile(pPath, want, true))
		f, err := os.Create(skPath) // 0644 in git; ReadSecretKey on an open file does not check modes
		require.NoError(t, err)
		require.NoError(t, WriteSecretKey(f, sk))
		require.NoError(t, f.Close())
		require.NoError(t, WriteCiphertextsFile(ctPath, want, []*rlwe.Ciphertext{ct}, true))
	}
	p, err := ReadParametersFile(pPath)
	require.NoError(t, err)
	require.Equal(t, want.Fingerprint(), p.Fingerprint())
	require.Equal(t, "tiny10", p.Name())
	f, err := os.Open(skPath)
	require.NoError(t, err)
	defer f.Close()
	sk, err := ReadSecretKey(f, p)
	require.NoError(t, err)
	cts, err := ReadCiphertextsFile(ctPath, p)
	require.NoError(t, err)
	require.Len(t, cts, 1)
	require.Equal(t, 1, cts[0].Level())
	client, err := NewClient(p, sk)
	require.NoError(t, err)
	got, err := client.DecryptReal(cts[0])
	require.NoError(t, err)
	for i, v := range goldenValues {
		require.InDelta(t, v, got[i], 1e-6)
	}
	for i := len(goldenValues); i < len(got); i++ {
		require.InDelta(t, 0, got[i], 1e-6)
	}
}
