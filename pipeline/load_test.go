package pipeline_test

import (
	"testing"

	"github.com/polyformer/polyformer/compiler"
	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/checkpoint"
	"github.com/polyformer/polyformer/model/nn"
	"github.com/polyformer/polyformer/model/norm"
	"github.com/polyformer/polyformer/pipeline"
	"github.com/stretchr/testify/require"
)

// TestLoadForCompileFoldsNorms checks that a model with a foldable normalization
// compiles (the norm folded into the weights) and that the circuit's
// float64 simulation equals the unfolded model's poly-mode logits.
func TestLoadForCompileFoldsNorms(t *testing.T) {
	for _, kind := range []string{norm.MethodBatchNorm, norm.MethodWeightNorm} {
		t.Run(kind, func(t *testing.T) {
			c, err := model.DefaultConfig(model.TaskMNIST)
			require.NoError(t, err)
			c.Width, c.Depth, c.Heads, c.Hidden, c.Activation, c.Norm = 8, 1, 2, 16, nn.ActQuad, kind
			c.Attention = model.AttentionConfig{Kind: model.AttnPowerFixed, P: 2}
			m, err := model.New(c)
			require.NoError(t, err)
			_, test, err := pipeline.LoadMNIST("")
			require.NoError(t, err)
			train := test.Subset(64)
			batch := model.Batch{B: train.N, Pixels: train.Pixels, Targets: train.Labels}
			for i := 0; i < 3; i++ { // a few steps: running statistics and reparametrized weights move
				_, err := m.Step(batch)
				require.NoError(t, err)
				for _, p := range m.Params() {
					for j := range p.Value.Data {
						p.Value.Data[j] -= 1e-2 * p.Grad.Data[j]
					}
					p.Grad.Zero()
				}
			}
			require.NoError(t, m.Calibrate([]model.Batch{batch}, nn.DefaultFitOptions(), nil))
			dir := t.TempDir()
			require.NoError(t, checkpoint.Save(dir, m, nil, nil))

			mf, err := pipeline.LoadForCompile(dir)
			require.NoError(t, err)
			require.Equal(t, norm.MethodNone, mf.Cfg.Norm)
			circ, _, err := compiler.CompileFor(mf, he.PresetTestN13, compiler.Options{Batch: 2, AllowInsecure: true})
			require.NoError(t, err)

			m2, err := checkpoint.Load(dir)
			require.NoError(t, err)
			require.NoError(t, m2.SetMode(nn.ModePoly))
			few := test.Subset(2)
			want, err := m2.Logits(model.Batch{B: few.N, Pixels: few.Pixels, Targets: few.Labels})
			require.NoError(t, err)
			vecs, err := circ.EncodeImages(few.Pixels, few.N, few.Rows, few.Cols)
			require.NoError(t, err)
			out, _, err := circ.Simulate(vecs[0], circuit.SimOptions{})
			require.NoError(t, err)
			got, err := circ.DecodeLogits([][]float64{out}, few.N)
			require.NoError(t, err)
			for i := range got {
				for j := range got[i] {
					require.InDelta(t, want.Data[i*c.Classes+j], got[i][j], 1e-8, "image %d class %d", i, j)
				}
			}
		})
	}
}
