// Package dataset serves a model's training, evaluation and calibration
// batches from the corpora of model/data: MNIST-like labelled images and
// next-byte windows of a text corpus. Batches depend only on the config's
// seed and the step, so runs are reproducible and resumable. Training
// (model/train) and evaluation (model/eval) both import it.
package dataset

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/data"
)

// Dataset supplies batches. TrainBatch depends only on (seed, step), so a
// resumed run sees exactly the batches the uninterrupted run would have.
type Dataset interface {
	// Task is model.TaskMNIST or model.TaskText.
	Task() string
	// TrainBatch returns the training batch of a step.
	TrainBatch(step, batchSize int) (model.Batch, error)
	// EvalBatches returns the held-out set (test images or validation bytes)
	// cut into batches, using at most limit examples (all when limit <= 0): an
	// example is an image, or a window of Context bytes for text.
	EvalBatches(limit, batchSize int) ([]model.Batch, error)
	// CalibBatches returns n training batches for calibration.
	CalibBatches(n, batchSize int) ([]model.Batch, error)
}

// Load loads the data named by cfg.Data for cfg.Task.
func Load(cfg model.Config) (Dataset, error) {
	switch cfg.Task {
	case model.TaskMNIST:
		dir := cfg.Data.Dir
		if dir == "" {
			d, err := data.MNISTDir()
			if err != nil {
				return nil, fmt.Errorf("locate MNIST: %w", err)
			}
			dir = d
		}
		tr, te, err := data.LoadMNIST(dir)
		if err != nil {
			return nil, fmt.Errorf("load MNIST: %w", err)
		}
		return NewImage(tr, te, cfg)
	case model.TaskText:
		var c *data.Corpus
		var err error
		if cfg.Data.TextFile != "" {
			vf := cfg.Data.ValidFraction
			if vf == 0 {
				vf = 0.1
			}
			c, err = data.LoadTextFile(cfg.Data.TextFile, vf)
		} else {
			root := cfg.Data.GoRoot
			if root == "" {
				if root, err = data.GoRoot(); err != nil {
					return nil, fmt.Errorf("locate GOROOT: %w", err)
				}
			}
			c, err = data.LoadGoSource(root, cfg.Data.MaxBytes)
		}
		if err != nil {
			return nil, fmt.Errorf("load text corpus: %w", err)
		}
		return NewText(c, cfg)
	}
	return nil, fmt.Errorf("unknown task %q", cfg.Task)
}

// Image serves MNIST-like labelled images.
type Image struct {
	train, test *data.Images
	seed        uint64
	perm        []int
	permEpoch   int
}

// NewImage checks that the images match the config.
func NewImage(train, test *data.Images, cfg model.Config) (*Image, error) {
	for name, im := range map[string]*data.Images{"train": train, "test": test} {
		if im == nil || im.N == 0 {
			return nil, fmt.Errorf("%s images: empty", name)
		}
		if im.Rows != cfg.ImageRows || im.Cols != cfg.ImageCols {
			return nil, fmt.Errorf("%s images are %dx%d, the model expects %dx%d", name, im.Rows, im.Cols, cfg.ImageRows, cfg.ImageCols)
		}
		if len(im.Labels) != im.N {
			return nil, fmt.Errorf("%s images: %d labels for %d images", name, len(im.Labels), im.N)
		}
		for _, l := range im.Labels {
			if l < 0 || l >= cfg.Classes {
				return nil, fmt.Errorf("%s images: label %d outside [0, %d)", name, l, cfg.Classes)
			}
		}
	}
	return &Image{train: train, test: test, seed: cfg.Seed, permEpoch: -1}, nil
}

// TrainSize is the number of training images.
func (d *Image) TrainSize() int { return d.train.N }

// Task returns model.TaskMNIST.
func (d *Image) Task() string { return model.TaskMNIST }

func (d *Image) batch(im *data.Images, idx []int) model.Batch {
	sz := im.Size()
	b := model.Batch{B: len(idx), T: 0, Pixels: make([]float64, len(idx)*sz), Targets: make([]int, len(idx))}
	for i, j := range idx {
		copy(b.Pixels[i*sz:], im.Image(j))
		b.Targets[i] = im.Labels[j]
	}
	return b
}

// TrainBatch returns batch step of the epoch-wise permutations seeded by (seed, epoch).
func (d *Image) TrainBatch(step, batchSize int) (model.Batch, error) {
	if batchSize <= 0 || batchSize > d.train.N {
		return model.Batch{}, fmt.Errorf("batch size %d outside [1, %d]", batchSize, d.train.N)
	}
	per := d.train.N / batchSize
	epoch, k := step/per, step%per
	if epoch != d.permEpoch {
		d.perm = rand.New(rand.NewPCG(d.seed, uint64(epoch)+1)).Perm(d.train.N)
		d.permEpoch = epoch
	}
	return d.batch(d.train, d.perm[k*batchSize:(k+1)*batchSize]), nil
}

// EvalBatches cuts the first limit test images into batches.
func (d *Image) EvalBatches(limit, batchSize int) ([]model.Batch, error) {
	if batchSize <= 0 {
		return nil, errors.New("eval batch size must be positive")
	}
	n := d.test.N
	if limit > 0 && limit < n {
		n = limit
	}
	var out []model.Batch
	for s := 0; s < n; s += batchSize {
		e := min(s+batchSize, n)
		idx := make([]int, e-s)
		for i := range idx {
			idx[i] = s + i
		}
		out = append(out, d.batch(d.test, idx))
	}
	return out, nil
}

// CalibBatches returns the first n training batches of epoch 0.
func (d *Image) CalibBatches(n, batchSize int) ([]model.Batch, error) {
	return firstTrainBatches(d, n, batchSize)
}

// Text serves next-byte prediction windows.
type Text struct {
	corpus  *data.Corpus
	context int
	seed    uint64
}

// NewText checks that both splits hold at least one window.
func NewText(c *data.Corpus, cfg model.Config) (*Text, error) {
	if c == nil {
		return nil, errors.New("text corpus is nil")
	}
	if len(c.Train) < cfg.Context+1 || len(c.Valid) < cfg.Context+1 {
		return nil, fmt.Errorf("corpus %q: train (%d bytes) and validation (%d bytes) need at least context+1 = %d bytes", c.Name, len(c.Train), len(c.Valid), cfg.Context+1)
	}
	return &Text{corpus: c, context: cfg.Context, seed: cfg.Seed}, nil
}

// Task returns model.TaskText.
func (d *Text) Task() string { return model.TaskText }

func flatten(in, tg [][]int, t int) model.Batch {
	b := model.Batch{B: len(in), T: t, Inputs: make([]int, 0, len(in)*t), Targets: make([]int, 0, len(in)*t)}
	for i := range in {
		b.Inputs = append(b.Inputs, in[i]...)
		b.Targets = append(b.Targets, tg[i]...)
	}
	return b
}

// TrainBatch samples random windows with an rng seeded by (seed, step).
func (d *Text) TrainBatch(step, batchSize int) (model.Batch, error) {
	rng := rand.New(rand.NewPCG(d.seed, uint64(step)+1))
	in, tg, err := d.corpus.SampleBatch(rng, data.TrainSplit, batchSize, d.context)
	if err != nil {
		return model.Batch{}, fmt.Errorf("train batch: %w", err)
	}
	return flatten(in, tg, d.context), nil
}

// EvalBatches cuts the validation split into consecutive non-overlapping
// windows (the first limit of them when limit > 0).
func (d *Text) EvalBatches(limit, batchSize int) ([]model.Batch, error) {
	if batchSize <= 0 {
		return nil, errors.New("eval batch size must be positive")
	}
	v := d.corpus.Valid
	n := (len(v) - 1) / d.context
	if limit > 0 && limit < n {
		n = limit
	}
	var out []model.Batch
	for s := 0; s < n; s += batchSize {
		e := min(s+batchSize, n)
		var in, tg [][]int
		for w := s; w < e; w++ {
			row, trow := make([]int, d.context), make([]int, d.context)
			for t := 0; t < d.context; t++ {
				row[t] = int(v[w*d.context+t])
				trow[t] = int(v[w*d.context+t+1])
			}
			in, tg = append(in, row), append(tg, trow)
		}
		out = append(out, flatten(in, tg, d.context))
	}
	return out, nil
}

// CalibBatches returns the training batches of steps 0..n-1.
func (d *Text) CalibBatches(n, batchSize int) ([]model.Batch, error) {
	return firstTrainBatches(d, n, batchSize)
}

// firstTrainBatches returns the training batches of steps 0..n-1 of d.
func firstTrainBatches(d Dataset, n, batchSize int) ([]model.Batch, error) {
	var out []model.Batch
	for i := 0; i < n; i++ {
		b, err := d.TrainBatch(i, batchSize)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}
