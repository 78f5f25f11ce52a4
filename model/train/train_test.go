package train

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/checkpoint"
	"github.com/polyformer/polyformer/model/data"
	"github.com/polyformer/polyformer/model/dataset"
	"github.com/polyformer/polyformer/model/nn"
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
	ds, err := dataset.NewText(synthCorpus(), cfg)
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
	ds, err := dataset.NewImage(synthImages(256, 1), synthImages(64, 2), cfg)
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
	o.Dataset, _ = dataset.NewImage(synthImages(64, 1), synthImages(64, 2), cfg)
	_, err = Run(context.Background(), bad, o, nil)
	require.ErrorContains(t, err, "divisible")
	bad = cfg
	bad.Data.Dir = filepath.Join(t.TempDir(), "missing")
	o.Dataset = nil
	_, err = Run(context.Background(), bad, o, nil)
	require.ErrorContains(t, err, "MNIST")
}

func TestPolyFinetune(t *testing.T) {
	cfg := tinyCfg(t, model.TaskMNIST)
	cfg.Norm = "layernorm"
	ds, err := dataset.NewImage(synthImages(256, 1), synthImages(64, 2), cfg)
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
	// Power-Softmax, whose normalizers leave a 10%-widened range here
	cfg.Attention = model.AttentionConfig{Kind: model.AttnPowerSoftmax, P: 4, Eps: 1e-2, LengthNorm: true, Delta: 1e-2}
	ds, err := dataset.NewImage(synthImages(256, 1), synthImages(64, 2), cfg)
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

func TestRangeRegularization(t *testing.T) {
	cfg := tinyCfg(t, model.TaskMNIST)
	ds, err := dataset.NewImage(synthImages(256, 1), synthImages(64, 2), cfg)
	require.NoError(t, err)
	o := opts(t.TempDir())
	o.Dataset, o.CalibBatches = ds, -1
	o.Range = RangeOptions{Weight: 1, ActBound: 3, RecipHi: 0.5}
	var log bytes.Buffer
	res, err := Run(context.Background(), cfg, o, &log)
	require.NoError(t, err, log.String())
	require.Empty(t, res.PolyError)
	require.NotNil(t, res.Poly)
	require.Len(t, res.RangeStats, 2, "one normalizer and one activation per block")
	var sawRange bool
	for _, m := range readMetrics(t, o.OutDir) {
		if m.Kind == "train" && m.RangeLoss > 0 {
			sawRange = true
		}
	}
	require.True(t, sawRange, "the penalty is recorded in the metrics")
	require.NotNil(t, res.Config.Poly)
	for _, s := range res.Config.Poly.Specs {
		switch s.Kind {
		case "gelu":
			// fitted on the hull of the target and the observed range
			require.LessOrEqual(t, s.Interval[0], -3.0)
			require.GreaterOrEqual(t, s.Interval[1], 3.0)
		case "recip":
			require.Equal(t, cfg.Attention.Eps, s.Interval[0], "the normalizer is never below eps: no margin below")
			require.GreaterOrEqual(t, s.Interval[1], 0.5)
		}
		require.LessOrEqual(t, s.Interval[0], s.Observed[0])
		require.GreaterOrEqual(t, s.Interval[1], s.Observed[1])
	}
	_, err = AttachRangePenalties(nil, RangeOptions{Weight: -1})
	require.ErrorContains(t, err, "must be finite and >= 0")
	_, err = AttachRangePenalties(nil, RangeOptions{Weight: 1, RecipLo: 2, RecipHi: 1})
	require.ErrorContains(t, err, "below")
	soft := cfg
	soft.Attention.Kind, soft.Activation = model.AttnSoftmax, "quad"
	m, err := model.New(soft)
	require.NoError(t, err)
	_, err = AttachRangePenalties(m, RangeOptions{Weight: 1, ActBound: 3, RecipHi: 1})
	require.ErrorContains(t, err, "no power-softmax or power-shifted normalizer")
}

func TestRangePenaltyNarrowsRanges(t *testing.T) {
	// the same run with and without the penalty: the penalized run's
	// activation inputs end far closer to the target
	cfg := tinyCfg(t, model.TaskMNIST)
	ds, err := dataset.NewImage(synthImages(256, 1), synthImages(64, 2), cfg)
	require.NoError(t, err)
	width := func(r RangeOptions) float64 {
		o := opts(t.TempDir())
		o.Dataset, o.CalibBatches, o.Steps, o.LR = ds, 4, 60, 3e-2
		o.Range = r
		res, err := Run(context.Background(), cfg, o, nil)
		require.NoError(t, err)
		for _, s := range res.Config.Poly.Specs {
			if s.Kind == "gelu" {
				return s.Observed[1] - s.Observed[0]
			}
		}
		t.Fatal("no gelu site")
		return 0
	}
	free := width(RangeOptions{})
	bound := width(RangeOptions{Weight: 10, ActBound: 0.5})
	require.Less(t, bound, 0.7*free, "free %g, penalized %g", free, bound)
}

func TestInitFrom(t *testing.T) {
	cfg := tinyCfg(t, model.TaskMNIST)
	ds, err := dataset.NewImage(synthImages(256, 1), synthImages(64, 2), cfg)
	require.NoError(t, err)
	o := opts(t.TempDir())
	o.Dataset, o.CalibBatches = ds, 0
	first, err := Run(context.Background(), cfg, o, nil)
	require.NoError(t, err)
	o2 := opts(t.TempDir())
	o2.Dataset, o2.CalibBatches, o2.InitFrom, o2.Steps, o2.LR, o2.EvalEvery = ds, 0, o.OutDir, 1, 1e-12, 0
	bad := cfg
	bad.Width = 8 // ignored: the checkpoint's config is used
	second, err := Run(context.Background(), bad, o2, nil)
	require.NoError(t, err)
	require.Equal(t, cfg.Width, second.Config.Width)
	require.InDelta(t, first.Exact.Loss, second.Exact.Loss, 1e-6, "starts from the trained weights")
	o2.InitFrom = filepath.Join(t.TempDir(), "missing")
	_, err = Run(context.Background(), cfg, o2, nil)
	require.ErrorContains(t, err, "init from")
}

// spikyDataset amplifies the pixels of the training batches of the listed steps.
type spikyDataset struct {
	*dataset.Image
	spike map[int]bool
}

func (d spikyDataset) TrainBatch(step, bs int) (model.Batch, error) {
	b, err := d.Image.TrainBatch(step, bs)
	if d.spike[step] {
		for i := range b.Pixels {
			b.Pixels[i] *= 1e3
		}
	}
	return b, err
}

func TestPolyFinetuneSkipsOutOfRangeSteps(t *testing.T) {
	cfg := tinyCfg(t, model.TaskMNIST)
	img, err := dataset.NewImage(synthImages(256, 1), synthImages(64, 2), cfg)
	require.NoError(t, err)
	o := opts(t.TempDir())
	// fine-tuning uses the batches of steps 40..47; step 42 is out of range
	o.Dataset, o.PolyFinetuneSteps, o.CalibBatches = spikyDataset{img, map[int]bool{42: true}}, 8, 8
	o.Fit.Margin = 0.5
	res, err := Run(context.Background(), cfg, o, nil)
	require.NoError(t, err)
	require.Empty(t, res.PolyError)
	require.Equal(t, 1, res.PolyFinetuneSkipped)
	var skipped []metric
	for _, m := range readMetrics(t, o.OutDir) {
		if m.Kind == "poly_finetune" && m.Skipped != "" {
			skipped = append(skipped, m)
		}
	}
	require.Len(t, skipped, 1)
	require.Equal(t, 43, skipped[0].Step)
	require.Contains(t, skipped[0].Skipped, "outside")

	// too many skipped steps: fine-tuning fails and is reported
	o = opts(t.TempDir())
	o.Dataset, o.PolyFinetuneSteps, o.CalibBatches = spikyDataset{img, map[int]bool{41: true, 42: true, 43: true}}, 8, 8
	o.Fit.Margin = 0.5
	res, err = Run(context.Background(), cfg, o, nil)
	require.NoError(t, err)
	require.Contains(t, res.PolyError, "3 of 4 steps skipped")
	require.Nil(t, res.Poly)
}

// TestShiftedRangePenalty checks the wiring of the power-shifted penalties:
// with a learned shift started at -1 (most shifted scores of p = 3
// negative) the shifted-score penalty is positive and counts the negative
// inputs, one normalizer and one shifted-score penalty are attached per
// block, a normalizer below eps is penalized, the normalizer target (no hard floor for odd p) is recorded for
// calibration, and Detach restores the kernels.
func TestShiftedRangePenalty(t *testing.T) {
	cfg := tinyCfg(t, model.TaskMNIST)
	cfg.Attention = model.AttentionConfig{Kind: model.AttnPowerShifted, P: 3, Eps: 0.05, LengthNorm: true}
	shift := -1.0
	cfg.Attention.ShiftInit = &shift
	ds, err := dataset.NewImage(synthImages(64, 1), synthImages(16, 2), cfg)
	require.NoError(t, err)
	b, err := ds.TrainBatch(0, 16)
	require.NoError(t, err)
	m, err := model.New(cfg)
	require.NoError(t, err)

	p, err := AttachRangePenalties(m, RangeOptions{Weight: 1, RecipHi: 1e6})
	require.NoError(t, err)
	require.Len(t, p.List, cfg.Depth, "normalizer penalties only")
	_, err = m.Logits(b)
	require.NoError(t, err)
	require.Positive(t, p.Value(), "odd p with negative shifted scores puts normalizers below eps")
	p.Detach()

	p, err = AttachRangePenalties(m, RangeOptions{Weight: 1, RecipHi: 1e6, ShiftHi: 20})
	require.NoError(t, err)
	require.Len(t, p.List, 2*cfg.Depth)
	require.Equal(t, "blocks.0.attn.shifted.scores", p.List[1].Site)
	tg, ok := p.Targets["blocks.0.attn.shifted.recip"]
	require.True(t, ok)
	require.False(t, tg.Floor, "odd p: the normalizer has no hard floor")
	_, err = m.Logits(b)
	require.NoError(t, err)
	require.Positive(t, p.Value(), "negative shifted scores are penalized")
	var outside int
	for _, st := range p.Stats() {
		outside += st.Outside
	}
	sp, ok := nn.AsShiftedPower(m.Blocks[0].Attn.Kernel)
	require.True(t, ok)
	require.Positive(t, sp.ShiftStats().LastNegative)
	require.Positive(t, outside)
	p.Detach()
	_, isPlain := m.Blocks[0].Attn.Kernel.(*nn.ShiftedPower)
	require.True(t, isPlain, "Detach restores the kernel")
}

// TestEntropyRecordNonFinite: a non-finite attention entropy is written as
// null (the record, and so the run, does not fail), finite values as they are.
func TestEntropyRecordNonFinite(t *testing.T) {
	b, err := json.Marshal(metric{Step: 1, Kind: "train", Entropy: entropyRecord{{0.5, math.NaN()}, {math.Inf(1), 1}}})
	require.NoError(t, err)
	require.Contains(t, string(b), `"entropy":[[0.5,null],[null,1]]`)
	var back metric
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, 0.5, back.Entropy[0][0])
}
