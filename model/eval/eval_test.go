package eval

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/data"
	"github.com/polyformer/polyformer/model/dataset"
	"github.com/polyformer/polyformer/model/train"
	"github.com/stretchr/testify/require"
)

// writeIDX writes a tiny MNIST-format directory so Evaluate reloads data by config.
func writeIDX(t *testing.T, dir string, n int, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 1))
	img := []byte{0, 0, 8, 3, 0, 0, 0, byte(n), 0, 0, 0, 8, 0, 0, 0, 8}
	lab := []byte{0, 0, 8, 1, 0, 0, 0, byte(n)}
	for i := 0; i < n; i++ {
		c := r.IntN(3)
		lab = append(lab, byte(c))
		for j := 0; j < 64; j++ {
			v := byte(r.IntN(50))
			if (j/8)%3 == c {
				v += 200
			}
			img = append(img, v)
		}
	}
	for _, p := range []string{"train", "t10k"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, p+"-images-idx3-ubyte"), img, 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(dir, p+"-labels-idx1-ubyte"), lab, 0o644))
	}
}

func TestEvaluateCheckpoint(t *testing.T) {
	dataDir := t.TempDir()
	writeIDX(t, dataDir, 120, 1)
	tr, te, err := data.LoadMNIST(dataDir)
	if err != nil {
		t.Skipf("data.LoadMNIST does not read the test fixture layout: %v", err)
	}
	cfg, err := model.DefaultConfig(model.TaskMNIST)
	require.NoError(t, err)
	cfg.Width, cfg.Depth, cfg.Heads, cfg.Hidden = 16, 1, 2, 32
	cfg.ImageRows, cfg.ImageCols, cfg.Patch, cfg.Classes = 8, 8, 4, 3
	cfg.Norm = "layernorm"
	cfg.Data.Dir = dataDir
	ds, err := dataset.NewImage(tr, te, cfg)
	require.NoError(t, err)
	o := train.DefaultOptions()
	o.OutDir, o.Steps, o.BatchSize, o.Warmup, o.LR, o.EvalEvery, o.CalibBatches = t.TempDir(), 30, 16, 3, 1e-2, 0, 2
	o.Dataset = ds
	res, err := train.Run(context.Background(), cfg, o, nil)
	require.NoError(t, err)

	rep, err := Evaluate(o.OutDir, 50)
	require.NoError(t, err)
	require.Equal(t, "mnist", rep.Task)
	require.Equal(t, 50, rep.Examples)
	require.True(t, rep.HasPoly)
	require.Greater(t, rep.Accuracy, 0.8)
	require.InDelta(t, rep.Accuracy, rep.PolyAccuracy, 0.05)
	full, err := Evaluate(o.OutDir, 0)
	require.NoError(t, err)
	require.InDelta(t, res.Exact.Accuracy, full.Accuracy, 1e-12)
	b, err := json.Marshal(rep)
	require.NoError(t, err)
	for _, k := range []string{`"task"`, `"examples"`, `"accuracy"`, `"poly_accuracy"`} {
		require.Contains(t, string(b), k)
	}
	require.Contains(t, rep.String(), "accuracy")
	require.Contains(t, rep.String(), "outside their calibrated interval")
	require.NotEmpty(t, rep.PolyStats)
	for _, st := range rep.PolyStats {
		require.Contains(t, rep.String(), st.Site, "one line per site")
		require.Greater(t, st.Total, int64(0))
	}
	_, err = Evaluate(t.TempDir(), 0)
	require.Error(t, err)
}

func TestEvaluateText(t *testing.T) {
	dir := t.TempDir()
	text := ""
	for i := 0; i < 300; i++ {
		text += "for i := range xs { sum += xs[i] }\n"
	}
	path := filepath.Join(dir, "corpus.txt")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	cfg, err := model.DefaultConfig(model.TaskText)
	require.NoError(t, err)
	cfg.Width, cfg.Depth, cfg.Heads, cfg.Hidden, cfg.Context = 16, 1, 2, 32, 16
	cfg.Norm = "rmsnorm"
	cfg.Data.TextFile = path
	o := train.DefaultOptions()
	o.OutDir, o.Steps, o.BatchSize, o.Warmup, o.LR, o.EvalEvery, o.CalibBatches = filepath.Join(dir, "ckpt"), 30, 16, 3, 1e-2, 0, 2
	o.FinalEvalLimit = 20
	_, err = train.Run(context.Background(), cfg, o, nil)
	require.NoError(t, err)
	rep, err := Evaluate(o.OutDir, 10)
	require.NoError(t, err)
	require.Equal(t, 10, rep.Examples)
	require.Greater(t, rep.BitsPerByte, 0.0)
	require.Less(t, rep.BitsPerByte, 8.0)
	require.True(t, rep.HasPoly)
	b, err := json.Marshal(rep)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	for _, k := range []string{"task", "examples", "bits_per_byte", "poly_bits_per_byte"} {
		require.Contains(t, m, k)
	}
	require.NoError(t, os.Remove(path))
	_, err = Evaluate(o.OutDir, 10)
	require.ErrorContains(t, err, "corpus")
}
