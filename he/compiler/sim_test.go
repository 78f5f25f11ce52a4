package compiler

import (
	"testing"

	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/nn"
	"github.com/stretchr/testify/require"
)

// Every architecture option the lowering supports: the float64 simulation of
// the compiled circuit reproduces the model's poly-mode logits.
func TestSimulatorMatchesPolyMode(t *testing.T) {
	fit := nn.DefaultFitOptions()
	fit.Degree = 15
	cases := map[string]func(c *model.Config){
		"power-softmax-gelu-none": nil,
		"power-softmax-p2-scaled-resid-temp-quad": func(c *model.Config) {
			c.Attention.P = 2
			c.Attention.Temperature = true
			c.Activation = nn.ActQuad
			c.ScaledResidual = true
			c.Depth = 2
		},
		"power-softmax-nolengthnorm-relu-layernorm": func(c *model.Config) {
			c.Attention.LengthNorm = false
			c.Activation = nn.ActReLU
			c.Norm = "layernorm"
		},
		"power-fixed-poly-rmsnorm": func(c *model.Config) {
			c.Attention = model.AttentionConfig{Kind: model.AttnPowerFixed, P: 2}
			c.Activation = nn.ActPoly
			c.Norm = "rmsnorm"
		},
		"heads-not-pow2-none-act": func(c *model.Config) {
			c.Width, c.Heads = 12, 2
			c.Activation = nn.ActNone
		},
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			m, b := tinyMNIST(t, mod, fit)
			want := polyLogits(t, m, b)
			for _, batch := range []int{1, 4} {
				c, err := Compile(m, CompileOptions{Batch: batch})
				require.NoError(t, err)
				got := simLogits(t, c, b, m.Cfg)
				require.Less(t, maxAbsDiff(want, got), 1e-9, "batch %d: want %v got %v", batch, want, got)
			}
		})
	}
}
