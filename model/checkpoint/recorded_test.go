package checkpoint

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/norm"
	"github.com/stretchr/testify/require"
)

// recordedDirs lists the checkpoint directories committed to the
// repository (benchmarks/compiler/*, benchmarks/train/*,
// cmd/polyformer/demodata), relative to this package.
func recordedDirs(t *testing.T) []string {
	t.Helper()
	root := filepath.Join("..", "..")
	var dirs []string
	for _, pattern := range []string{"benchmarks/compiler/*/" + ConfigFile, "benchmarks/train/*/" + ConfigFile, "cmd/polyformer/demodata/" + ConfigFile} {
		found, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(pattern)))
		require.NoError(t, err)
		require.NotEmpty(t, found, pattern)
		for _, f := range found {
			dirs = append(dirs, filepath.Dir(f))
		}
	}
	return dirs
}

// invalidRecorded names the committed configs that today's validation
// rejects, with the reason; they must keep failing for that reason only.
var invalidRecorded = map[string]string{
	// recorded before the coefficient limit of poly specs
	"benchmarks/train/lm-softmax-ln": "exceeds the limit",
}

// TestRecordedCheckpointsLoad: every committed checkpoint's config.json
// decodes strictly (no unknown or renamed field), names a known
// normalization method and encodes back to the same JSON; it validates and
// builds a model (but for invalidRecorded) and, where the weights are
// committed, loads whole. Renaming a Go identifier must not change the
// files that earlier code wrote.
func TestRecordedCheckpointsLoad(t *testing.T) {
	dirs := recordedDirs(t)
	require.GreaterOrEqual(t, len(dirs), 10)
	for _, dir := range dirs {
		name, err := filepath.Rel(filepath.Join("..", ".."), dir)
		require.NoError(t, err)
		name = filepath.ToSlash(name)
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, ConfigFile))
			require.NoError(t, err)
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			var cfg model.Config
			require.NoError(t, dec.Decode(&cfg))
			require.NoError(t, norm.ValidMethod(cfg.Norm))
			again, err := json.Marshal(cfg)
			require.NoError(t, err)
			require.JSONEq(t, string(raw), string(again), "the config encodes back to the recorded file")
			if reason, ok := invalidRecorded[name]; ok {
				_, err := model.DecodeConfig(raw, model.Config{})
				require.ErrorContains(t, err, reason)
				return
			}
			_, err = model.DecodeConfig(raw, model.Config{})
			require.NoError(t, err)
			_, err = model.New(cfg)
			require.NoError(t, err)
			if _, err := os.Stat(filepath.Join(dir, WeightsFile)); err != nil {
				return // config only: the weights are not committed
			}
			m, err := Load(dir)
			require.NoError(t, err)
			require.Equal(t, cfg.Norm, m.Cfg.Norm)
		})
	}
}
