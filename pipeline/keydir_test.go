package pipeline_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/pipeline"
	"github.com/polyformer/polyformer/service/client"
)

// TestKeyDir: Generate writes the secret key (0600) and the evaluation
// keys under the names the service client uses; Load refuses keys that do
// not cover the circuit, keys above the byte budget, and keys for other
// parameters; Check names the missing file.
func TestKeyDir(t *testing.T) {
	p, err := he.ParametersFromPreset(he.PresetTestN12)
	require.NoError(t, err)
	dir := pipeline.KeyDir(filepath.Join(t.TempDir(), "keys"))
	require.ErrorIs(t, dir.Check(), pipeline.ErrMissingKeys)
	require.ErrorContains(t, dir.Check(), client.SecretKeyFile)
	_, _, err = dir.Generate(p, he.KeySpec{Relinearization: true}, false)
	require.NoError(t, err)
	require.NoError(t, dir.Check())
	st, err := os.Stat(dir.SecretKeyPath())
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	require.Equal(t, filepath.Join(string(dir), client.EvalKeysFile), dir.EvalKeysPath())
	_, _, err = dir.Generate(p, he.KeySpec{Relinearization: true}, false)
	require.Error(t, err, "existing keys are not overwritten silently")

	relinOnly := &circuit.Circuit{Planned: &circuit.PlanInfo{Keys: circuit.KeyNeeds{Relinearization: true}}}
	_, evk, err := dir.Load(relinOnly, p, 0)
	require.NoError(t, err)
	require.NotNil(t, evk)
	rotates := &circuit.Circuit{Planned: &circuit.PlanInfo{Keys: circuit.KeyNeeds{Relinearization: true, Rotations: []int{1}}}}
	_, _, err = dir.Load(rotates, p, 0)
	require.ErrorContains(t, err, "do not cover")
	_, _, err = dir.Load(relinOnly, p, 1000)
	require.Error(t, err, "keys above the budget are refused")
	p13, err := he.ParametersFromPreset(he.PresetTestN13)
	require.NoError(t, err)
	_, _, err = dir.Load(relinOnly, p13, 0)
	require.ErrorContains(t, err, "fingerprint")
}
