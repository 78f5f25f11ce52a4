package pipeline_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/pipeline"
)

// TestApproxDemo: every approximation is evaluated on a ciphertext, uses
// levels, and the decrypted result matches its float64 twin to CKKS noise.
func TestApproxDemo(t *testing.T) {
	p, err := pipeline.ResolvePreset(he.PresetTestN12, true)
	require.NoError(t, err)
	res, err := pipeline.ApproxDemo(p)
	require.NoError(t, err)
	require.Len(t, res.Rows, 5)
	for _, r := range res.Rows {
		require.Less(t, r.LevelOut, r.LevelIn, r.Name)
		require.Greater(t, r.Bits, 10.0, "%s: HE vs twin precision", r.Name)
	}
	require.NotEmpty(t, res.Trace.ByLabel())
	_, err = pipeline.ResolvePreset(he.PresetTestN12, false)
	require.ErrorIs(t, err, he.ErrInsecureParameters)
}
