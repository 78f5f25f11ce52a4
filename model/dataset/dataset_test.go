package dataset

import (
	"bytes"
	"testing"

	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/data"
	"github.com/stretchr/testify/require"
)

func images(n int, offset float64) *data.Images {
	im := &data.Images{N: n, Rows: 4, Cols: 4, Pixels: make([]float64, n*16), Labels: make([]int, n)}
	for i := 0; i < n; i++ {
		im.Labels[i] = i % 3
		for j := 0; j < 16; j++ {
			im.Pixels[i*16+j] = offset + float64(i)
		}
	}
	return im
}

func imageCfg(t *testing.T) model.Config {
	c, err := model.DefaultConfig(model.TaskMNIST)
	require.NoError(t, err)
	c.ImageRows, c.ImageCols, c.Patch, c.Classes, c.Seed = 4, 4, 2, 3, 5
	return c
}

func textCfg(t *testing.T) model.Config {
	c, err := model.DefaultConfig(model.TaskText)
	require.NoError(t, err)
	c.Context, c.Seed = 4, 5
	return c
}

func corpus() *data.Corpus {
	return &data.Corpus{Name: "synthetic", Train: bytes.Repeat([]byte("abcdefg\n"), 20), Valid: []byte("0123456789abcdefghij")}
}

func TestNewRejectsMismatchedData(t *testing.T) {
	cfg := imageCfg(t)
	other := cfg
	other.ImageRows = 6
	_, err := NewImage(images(8, 0), images(8, 0), other)
	require.ErrorContains(t, err, "the model expects")
	few := cfg
	few.Classes = 2
	_, err = NewImage(images(8, 0), images(8, 0), few)
	require.ErrorContains(t, err, "label 2 outside [0, 2)")
	_, err = NewImage(images(8, 0), &data.Images{}, cfg)
	require.ErrorContains(t, err, "test images: empty")
	_, err = NewText(&data.Corpus{Train: []byte("ab"), Valid: []byte("cd")}, textCfg(t))
	require.ErrorContains(t, err, "context+1")
	_, err = NewText(nil, textCfg(t))
	require.ErrorContains(t, err, "nil")
	bad := cfg
	bad.Task = "audio"
	_, err = Load(bad)
	require.ErrorContains(t, err, `unknown task "audio"`)
}

// TestTrainBatchesDependOnSeedAndStep: a fresh dataset of the same config
// serves the same batch for a step (so resumed runs see the same data),
// image epochs are permutations of the training set, and calibration
// batches are the training batches of steps 0..n-1.
func TestTrainBatchesDependOnSeedAndStep(t *testing.T) {
	cfg := imageCfg(t)
	for name, mk := range map[string]func() (Dataset, error){
		"image": func() (Dataset, error) { return NewImage(images(12, 0), images(5, 100), cfg) },
		"text":  func() (Dataset, error) { return NewText(corpus(), textCfg(t)) },
	} {
		a, err := mk()
		require.NoError(t, err)
		b, err := mk()
		require.NoError(t, err)
		late, err := a.TrainBatch(7, 4)
		require.NoError(t, err, name)
		first, err := b.TrainBatch(0, 4)
		require.NoError(t, err, name)
		again, err := b.TrainBatch(7, 4)
		require.NoError(t, err, name)
		require.Equal(t, late, again, name)
		calib, err := a.CalibBatches(2, 4)
		require.NoError(t, err, name)
		require.Len(t, calib, 2, name)
		require.Equal(t, first, calib[0], name)
	}
	d, err := NewImage(images(12, 0), images(5, 100), cfg)
	require.NoError(t, err)
	require.Equal(t, model.TaskMNIST, d.Task())
	require.Equal(t, 12, d.TrainSize())
	seen := map[float64]bool{}
	for step := 0; step < 3; step++ { // epoch 0: 3 batches of 4 cover the 12 images once
		b, err := d.TrainBatch(step, 4)
		require.NoError(t, err)
		for i := 0; i < b.B; i++ {
			seen[b.Pixels[i*16]] = true
		}
	}
	require.Len(t, seen, 12)
	_, err = d.TrainBatch(0, 13)
	require.ErrorContains(t, err, "batch size 13 outside [1, 12]")
}

// TestEvalBatches: the held-out set is cut in order into batches of at most
// batchSize examples, the first limit of them when limit > 0.
func TestEvalBatches(t *testing.T) {
	d, err := NewImage(images(12, 0), images(5, 100), imageCfg(t))
	require.NoError(t, err)
	bs, err := d.EvalBatches(0, 2)
	require.NoError(t, err)
	require.Len(t, bs, 3)
	require.Equal(t, []int{2, 2, 1}, []int{bs[0].B, bs[1].B, bs[2].B})
	require.Equal(t, 104.0, bs[2].Pixels[0], "the last test image comes last")
	bs, err = d.EvalBatches(3, 2)
	require.NoError(t, err)
	require.Equal(t, 3, bs[0].B+bs[1].B)
	_, err = d.EvalBatches(0, 0)
	require.ErrorContains(t, err, "batch size must be positive")

	tx, err := NewText(corpus(), textCfg(t))
	require.NoError(t, err)
	require.Equal(t, model.TaskText, tx.Task())
	bs, err = tx.EvalBatches(0, 3) // (20 - 1) / 4 = 4 windows
	require.NoError(t, err)
	require.Len(t, bs, 2)
	require.Equal(t, 3, bs[0].B)
	require.Equal(t, 1, bs[1].B)
	require.Equal(t, []int{'0', '1', '2', '3'}, bs[0].Inputs[:4])
	require.Equal(t, []int{'1', '2', '3', '4'}, bs[0].Targets[:4])
}
