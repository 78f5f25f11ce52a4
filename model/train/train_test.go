package train

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/checkpoint"
	"github.com/polyformer/polyformer/model/data"
	"github.com/stretchr/testify/require"
)

func synthImages(n int, seed uint64) *data.Images {
	r := rand.New(rand.NewPCG(seed, 9))
	im := &data.Images{N: n, Rows: 8, Cols: 8, Pixels: make([]float64, n*64), Labels: make([]int, n)}
	for i := 0; i < n; i++ {
		c := r.IntN(3)
		im.Labels[i] = c
		for j := 0; j < 64; j++ {
			v := 0.2 * r.Float64()
			if (j/8)%3 == c {
				v += 0.8
			}
			im.Pixels[i*64+j] = v
		}
	}
	return im
}

func synthCorpus() *data.Corpus {
	var tr, va bytes.Buffer
	for i := 0; i < 400; i++ {
		tr.WriteString("func main() { return }\n")
		if i < 40 {
			va.WriteString("func main() { return }\n")
		}
	}
	return &data.Corpus{Name: "synthetic", Train: tr.Bytes(), Valid: va.Bytes()}
}

func tinyCfg(t *testing.T, task string) model.Config {
	c, err := model.DefaultConfig(task)
	require.NoError(t, err)
	c.Width, c.Depth, c.Heads, c.Hidden = 16, 1, 2, 32
	if task == model.TaskMNIST {
		c.ImageRows, c.ImageCols, c.Patch, c.Classes = 8, 8, 4, 3
	} else {
		c.Context = 16
		c.Entropy.Enabled = true
	}
	return c
}

func opts(dir string) Options {
	o := DefaultOptions()
	o.OutDir, o.Steps, o.BatchSize, o.Warmup, o.LR = dir, 40, 16, 5, 1e-2
	o.EvalEvery, o.EvalLimit, o.CheckpointEvery, o.CalibBatches = 20, 32, 0, 2
	o.FinalEvalLimit = 64
	return o
}

func readMetrics(t *testing.T, dir string) []metric {
	f, err := os.Open(filepath.Join(dir, MetricsFile))
	require.NoError(t, err)
	defer f.Close()
	var out []metric
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var m metric
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m))
		out = append(out, m)
	}
	return out
}

func TestTrainSmokeText(t *testing.T) {
	cfg := tinyCfg(t, model.TaskText)
	ds, err := NewTextDataset(synthCorpus(), cfg)
	require.NoError(t, err)
	dir := t.TempDir()
	o := opts(dir)
	o.Dataset = ds
	var log bytes.Buffer
	res, err := Run(context.Background(), cfg, o, &log)
	require.NoError(t, err, log.String())
	ms := readMetrics(t, dir)
	var train []metric
	for _, m := range ms {
		if m.Kind == "train" {
			train = append(train, m)
		}
	}
	require.Len(t, train, 40)
	first := (train[0].CE + train[1].CE + train[2].CE) / 3
	lastCE := (train[37].CE + train[38].CE + train[39].CE) / 3
	require.Less(t, lastCE, 0.6*first, "loss must fall on a repetitive corpus")
	require.Greater(t, res.Exact.BitsPerByte, 0.0)
	require.NotNil(t, res.Poly)
	require.NotEmpty(t, res.PolyStats)
	for _, f := range []string{checkpoint.ConfigFile, checkpoint.WeightsFile, checkpoint.OptimizerFile, CurveFile, SummaryFile} {
		_, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err, f)
	}
	m, err := checkpoint.Load(dir)
	require.NoError(t, err)
	require.NotNil(t, m.Cfg.Poly, "the saved config carries the calibrated polynomials")
}

func TestTrainMNISTResumeIsDeterministic(t *testing.T) {
	cfg := tinyCfg(t, model.TaskMNIST)
	ds, err := NewImageDataset(synthImages(256, 1), synthImages(64, 2), cfg)
	require.NoError(t, err)
	full := t.TempDir()
	o := opts(full)
	o.Dataset, o.CalibBatches = ds, 0
	res, err := Run(context.Background(), cfg, o, nil)
	require.NoError(t, err)
	require.Greater(t, res.Exact.Accuracy, 0.9, "synthetic bands are easy")

	split := t.TempDir()
	o2 := opts(split)
	o2.Dataset, o2.CalibBatches, o2.StopAt = ds, 0, 15
	_, err = Run(context.Background(), cfg, o2, nil)
	require.NoError(t, err)
	o2.StopAt, o2.Resume = 0, true
	res2, err := Run(context.Background(), cfg, o2, nil)
	require.NoError(t, err)
	require.Equal(t, 40, res2.Steps)
	a, err := checkpoint.Load(full)
	require.NoError(t, err)
	b, err := checkpoint.Load(split)
	require.NoError(t, err)
	for i, p := range a.Params() {
		require.Equal(t, p.Value.Data, b.Params()[i].Value.Data, p.Name)
	}
}

func TestTrainBadInput(t *testing.T) {
	cfg := tinyCfg(t, model.TaskMNIST)
	_, err := Run(context.Background(), cfg, Options{}, nil)
	require.ErrorContains(t, err, "output directory")
	bad := cfg
	bad.Width = 15
	o := opts(t.TempDir())
	o.Dataset, _ = NewImageDataset(synthImages(64, 1), synthImages(64, 2), cfg)
	_, err = Run(context.Background(), bad, o, nil)
	require.ErrorContains(t, err, "divisible")
	other := cfg
	other.ImageRows = 12
	_, err = NewImageDataset(synthImages(64, 1), synthImages(64, 2), other)
	require.ErrorContains(t, err, "the model expects")
	bad = cfg
	bad.Data.Dir = filepath.Join(t.TempDir(), "missing")
	o.Dataset = nil
	_, err = Run(context.Background(), bad, o, nil)
	require.ErrorContains(t, err, "MNIST")
	_, err = NewTextDataset(&data.Corpus{Train: []byte("ab"), Valid: []byte("cd")}, tinyCfg(t, model.TaskText))
	require.ErrorContains(t, err, "context+1")
}

func TestPolyFinetune(t *testing.T) {
	cfg := tinyCfg(t, model.TaskMNIST)
	cfg.Norm = "layernorm"
	ds, err := NewImageDataset(synthImages(256, 1), synthImages(64, 2), cfg)
	require.NoError(t, err)
	o := opts(t.TempDir())
	o.Dataset, o.PolyFinetuneSteps = ds, 5
	// coarse polynomials so fine-tuning has something to adapt to; wide
	// margins because Goldschmidt diverges outside its interval
	o.Fit.Degree, o.Fit.Margin, o.CalibBatches = 15, 1, 8
	res, err := Run(context.Background(), cfg, o, nil)
	require.NoError(t, err)
	require.Empty(t, res.PolyError)
	require.NotNil(t, res.ExactBeforeFinetune)
	require.NotNil(t, res.Poly)
	var ft int
	for _, m := range readMetrics(t, o.OutDir) {
		if m.Kind == "poly_finetune" {
			ft++
			require.Greater(t, m.GradNorm, 0.0)
		}
	}
	require.Equal(t, 5, ft)
}

func TestPolyFinetuneReportsOutOfRange(t *testing.T) {
	cfg := tinyCfg(t, model.TaskMNIST)
	cfg.Norm = "layernorm"
	ds, err := NewImageDataset(synthImages(256, 1), synthImages(64, 2), cfg)
	require.NoError(t, err)
	o := opts(t.TempDir())
	// 2 small calibration batches, 10% margin, no headroom above the maximum
	o.Dataset, o.PolyFinetuneSteps, o.Fit.Degree, o.Fit.UpperFactor = ds, 5, 15, 1
	res, err := Run(context.Background(), cfg, o, nil)
	require.NoError(t, err, "a failing polynomial form is reported, not fatal")
	require.Contains(t, res.PolyError, "outside")
	require.Nil(t, res.Poly)
	saved, err := checkpoint.Load(o.OutDir)
	require.NoError(t, err, "the checkpoint is still saved")
	// with the exact weights of before the failed fine-tuning
	o2 := opts(t.TempDir())
	o2.Dataset, o2.CalibBatches = ds, 0
	_, err = Run(context.Background(), cfg, o2, nil)
	require.NoError(t, err)
	ref, err := checkpoint.Load(o2.OutDir)
	require.NoError(t, err)
	for i, p := range ref.Params() {
		require.Equal(t, p.Value.Data, saved.Params()[i].Value.Data, p.Name)
	}
}
