package he

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

var updateEvkGolden = flag.Bool("he-update-golden-evk-v1", false, "rewrite he/testdata/tiny12-v1.* (only a build that writes format version 1 may do this)")

// goldenEvkValues are rotated with the recorded version-1 key file.
var goldenEvkValues = []float64{1, 2, 3, -0.5, 0.25}

// TestGoldenEvaluationKeysV1 loads an evaluation-key file written by the
// build before per-key levels and seeded keys (envelope format version 1:
// every key at the top level, both halves in full) and uses it: the keys
// must still load and work.
func TestGoldenEvaluationKeysV1(t *testing.T) {
	dir := "testdata"
	pPath, skPath, evkPath := filepath.Join(dir, "tiny12.params"), filepath.Join(dir, "tiny12.sk"), filepath.Join(dir, "tiny12-v1.evk")
	want := tinyParams(t, "tiny12", 12)
	if *updateEvkGolden {
		require.Equal(t, uint16(1), EvaluationKeysVersion, "this build writes evaluation keys in version %d; the recorded file must stay version 1", EvaluationKeysVersion)
		sk, evk, err := GenerateKeys(want, KeySpec{Relinearization: true, Rotations: []int{1}})
		require.NoError(t, err)
		require.NoError(t, WriteParametersFile(pPath, want, true))
		f, err := os.Create(skPath) // 0644 in git; ReadSecretKey on an open file does not check modes
		require.NoError(t, err)
		require.NoError(t, WriteSecretKey(f, sk))
		require.NoError(t, f.Close())
		require.NoError(t, WriteEvaluationKeysFile(evkPath, evk, true))
	}
	p, err := ReadParametersFile(pPath)
	require.NoError(t, err)
	require.Equal(t, want.Fingerprint(), p.Fingerprint())
	f, err := os.Open(skPath)
	require.NoError(t, err)
	defer f.Close()
	sk, err := ReadSecretKey(f, p)
	require.NoError(t, err)
	raw, err := os.ReadFile(evkPath)
	require.NoError(t, err)
	require.Equal(t, []byte{1, 0}, raw[8:10], "the recorded file is format version 1")
	evk, err := ReadEvaluationKeysFile(evkPath, p)
	require.NoError(t, err)
	require.False(t, evk.Seeded())
	l, _ := evk.RelinearizationKeyLevel()
	require.Equal(t, p.MaxLevel(), l)
	require.True(t, evk.HasRelinearization())
	require.True(t, evk.HasRotation(1))

	client, err := NewClient(p, sk)
	require.NoError(t, err)
	ct, err := client.EncryptReal(goldenEvkValues, -1)
	require.NoError(t, err)
	ev := hefloat.NewEvaluator(p.HE(), evk.KeySet())
	rot, err := ev.RotateNew(ct, 1)
	require.NoError(t, err)
	sq, err := ev.MulRelinNew(ct, ct)
	require.NoError(t, err)
	gotRot, err := client.DecryptReal(rot)
	require.NoError(t, err)
	gotSq, err := client.DecryptReal(sq)
	require.NoError(t, err)
	for i := 0; i+1 < len(goldenEvkValues); i++ {
		require.InDelta(t, goldenEvkValues[i+1], gotRot[i], 1e-4, "slot %d", i)
	}
	for i, v := range goldenEvkValues {
		require.InDelta(t, v*v, gotSq[i], 1e-3, "slot %d", i)
	}

	// Re-written by this build: the current format version, keys in full
	// (no seeds), identical keys after reloading.
	var buf bytes.Buffer
	require.NoError(t, WriteEvaluationKeys(&buf, evk))
	require.Equal(t, []byte{byte(EvaluationKeysVersion), 0}, buf.Bytes()[8:10])
	evk2, err := ReadEvaluationKeys(bytes.NewReader(buf.Bytes()), p)
	require.NoError(t, err)
	require.True(t, evk.relin.Equal(evk2.relin))
	for g, gk := range evk.galois {
		require.True(t, gk.EvaluationKey.Equal(&evk2.galois[g].EvaluationKey))
	}
	info, err := VerifyEvaluationKeysStream(bytes.NewReader(raw), func(Fingerprint, string) (*Parameters, error) { return p, nil }, 0)
	require.NoError(t, err)
	require.Equal(t, uint16(1), info.Version)
	require.Equal(t, 0, info.SeededKeys)
}
