package train

import (
	"testing"

	"github.com/polyformer/polyformer/model"
	"github.com/stretchr/testify/require"
)

func benchCfg(b *testing.B, task string) model.Config {
	c, err := model.DefaultConfig(task)
	require.NoError(b, err)
	return c
}

// BenchmarkTrainThroughput measures training tokens/s of the default MNIST
// ViT and byte LM, with the achieved GFLOP/s of their matrix work next to a
// plain gonum 256^3 matrix multiply timed in the same run:
//
//	go test ./model/train -run '^$' -bench TrainThroughput -benchtime 3x
func BenchmarkTrainThroughput(b *testing.B) {
	for _, task := range []string{model.TaskMNIST, model.TaskText} {
		b.Run(task, func(b *testing.B) {
			cfg := benchCfg(b, task)
			var last Throughput
			for i := 0; i < b.N; i++ {
				r, err := MeasureThroughput(cfg, 32, 5, 256)
				require.NoError(b, err)
				last = r
			}
			b.ReportMetric(last.TokensPerSec, "tokens/s")
			b.ReportMetric(last.GFLOPS, "GFLOP/s")
			b.ReportMetric(last.GemmGFLOPS, "gemm-GFLOP/s")
			b.ReportMetric(last.GFLOPS/last.GemmGFLOPS, "fraction-of-gemm")
		})
	}
}

func TestMeasureThroughput(t *testing.T) {
	cfg := tinyCfg(t, model.TaskText)
	r, err := MeasureThroughput(cfg, 4, 2, 64)
	require.NoError(t, err)
	require.Greater(t, r.TokensPerSec, 0.0)
	require.Greater(t, r.GFLOPS, 0.0)
	require.Greater(t, r.GemmGFLOPS, 0.0)
	_, err = MeasureThroughput(cfg, 0, 2, 64)
	require.Error(t, err)
}
