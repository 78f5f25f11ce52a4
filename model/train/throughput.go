package train

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/nn"
	"github.com/polyformer/polyformer/model/optim"
)

// Throughput is a training-speed measurement.
type Throughput struct {
	Steps        int     `json:"steps"`
	BatchSize    int     `json:"batch_size"`
	Seconds      float64 `json:"seconds"`
	TokensPerSec float64 `json:"tokens_per_sec"`
	// GFLOPS is the achieved rate of the counted matrix work (Config.TrainFLOPs).
	GFLOPS float64 `json:"gflops"`
	// GemmGFLOPS is a plain gonum BLAS n x n x n matrix product measured in
	// the same call, the machine's reference rate.
	GemmGFLOPS float64 `json:"gemm_gflops"`
	GemmN      int     `json:"gemm_n"`
}

// MeasureThroughput trains cfg for steps optimizer steps on random batches
// (after one warm-up step) and measures tokens/s and GFLOP/s, next to a plain
// gonum matrix multiply of size gemmN (256 when 0).
func MeasureThroughput(cfg model.Config, batchSize, steps, gemmN int) (Throughput, error) {
	if steps <= 0 || batchSize <= 0 {
		return Throughput{}, fmt.Errorf("throughput: steps %d and batch size %d must be positive", steps, batchSize)
	}
	if gemmN <= 0 {
		gemmN = 256
	}
	m, err := model.New(cfg)
	if err != nil {
		return Throughput{}, fmt.Errorf("throughput: %w", err)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 77))
	batch := model.Batch{B: batchSize, T: cfg.Tokens()}
	if cfg.Task == model.TaskMNIST {
		batch.Pixels = make([]float64, batchSize*cfg.ImageRows*cfg.ImageCols)
		for i := range batch.Pixels {
			batch.Pixels[i] = rng.Float64()
		}
		batch.Targets = make([]int, batchSize)
		for i := range batch.Targets {
			batch.Targets[i] = rng.IntN(cfg.Classes)
		}
	} else {
		n := batchSize * cfg.Context
		batch.Inputs, batch.Targets = make([]int, n), make([]int, n)
		for i := 0; i < n; i++ {
			batch.Inputs[i], batch.Targets[i] = rng.IntN(256), rng.IntN(256)
		}
	}
	opt := optim.NewAdamW(m.Params(), 0.9, 0.98, 1e-8, 0)
	step := func() error {
		m.Reg.ZeroGrad()
		if _, err := m.Step(batch); err != nil {
			return err
		}
		optim.ClipGradNorm(m.Params(), 1)
		return opt.Update(m.Params(), 1e-4)
	}
	if err := step(); err != nil {
		return Throughput{}, fmt.Errorf("throughput: %w", err)
	}
	t0 := time.Now()
	for i := 0; i < steps; i++ {
		if err := step(); err != nil {
			return Throughput{}, fmt.Errorf("throughput: %w", err)
		}
	}
	sec := time.Since(t0).Seconds()
	r := Throughput{Steps: steps, BatchSize: batchSize, Seconds: sec, GemmN: gemmN,
		TokensPerSec: float64(steps*batchSize*cfg.Tokens()) / sec,
		GFLOPS:       cfg.TrainFLOPs(batchSize) * float64(steps) / sec / 1e9}
	r.GemmGFLOPS = gemmRate(gemmN)
	return r, nil
}

// gemmRate times repeated n x n x n gonum products for about 0.3 s.
func gemmRate(n int) float64 {
	a, b, c := nn.New(n, n), nn.New(n, n), nn.New(n, n)
	rng := rand.New(rand.NewPCG(1, 2))
	a.FillNormal(rng, 1)
	b.FillNormal(rng, 1)
	nn.Gemm(false, false, n, n, n, 1, a.Data, n, b.Data, n, 0, c.Data, n)
	reps := 0
	t0 := time.Now()
	for time.Since(t0) < 300*time.Millisecond {
		nn.Gemm(false, false, n, n, n, 1, a.Data, n, b.Data, n, 0, c.Data, n)
		reps++
	}
	return 2 * float64(n) * float64(n) * float64(n) * float64(reps) / time.Since(t0).Seconds() / 1e9
}
