package compiler

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/polyformer/polyformer/he/circuit"
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
		"softmax-temp-gelu": func(c *model.Config) {
			c.Attention = model.AttentionConfig{Kind: model.AttnSoftmax, Temperature: true}
		},
		"three-heads-packed-with-padding": func(c *model.Config) {
			c.Width, c.Heads, c.Hidden = 12, 3, 32 // heads use 12 of W = 16 channels, D = 32: 2 copies
			c.Attention.Temperature = true
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
				for _, unpacked := range []bool{false, true} {
					c, err := Compile(m, CompileOptions{Batch: batch, OneDiagonalPerCiphertext: unpacked})
					require.NoError(t, err)
					got := simLogits(t, c, b, m.Cfg)
					require.Less(t, maxAbsDiff(want, got), 1e-9, "batch %d unpacked %v: want %v got %v", batch, unpacked, want, got)
				}
			}
		})
	}
}

func tinyText(t *testing.T, mod func(c *model.Config), fit nn.FitOptions) (*model.Model, model.Batch) {
	t.Helper()
	c, err := model.DefaultConfig(model.TaskText)
	require.NoError(t, err)
	c.Width, c.Depth, c.Heads, c.Hidden, c.Context = 8, 1, 2, 16, 8
	if mod != nil {
		mod(&c)
	}
	m, err := model.New(c)
	require.NoError(t, err)
	cal := []model.Batch{synthText(c, 8, 1), synthText(c, 8, 2)}
	require.NoError(t, m.Calibrate(cal, fit, nil))
	return m, synthText(c, 2, 3)
}

func synthText(c model.Config, b int, seed uint64) model.Batch {
	r := rand.New(rand.NewPCG(seed, 9))
	t := c.Context
	in, tg := make([]int, b*t), make([]int, b*t)
	for i := range in {
		in[i] = 'a' + r.IntN(6)
		tg[i] = 'a' + r.IntN(6)
	}
	return model.Batch{B: b, T: t, Inputs: in, Targets: tg}
}

func TestSimulatorMatchesPolyModeLM(t *testing.T) {
	fit := nn.DefaultFitOptions()
	fit.Degree = 15
	for name, mod := range map[string]func(c *model.Config){
		"power-softmax-gelu": nil,
		"rmsnorm-quad-2blocks-nolen": func(c *model.Config) {
			c.Norm = "rmsnorm"
			c.Activation = nn.ActQuad
			c.Depth = 2
			c.Attention.LengthNorm = false
		},
		"powerfixed-layernorm-scaled": func(c *model.Config) {
			c.Attention = model.AttentionConfig{Kind: model.AttnPowerFixed, P: 2}
			c.Norm = "layernorm"
			c.ScaledResidual = true
		},
	} {
		t.Run(name, func(t *testing.T) {
			m, b := tinyText(t, mod, fit)
			require.NoError(t, m.SetMode(nn.ModePoly))
			lg, err := m.Logits(b)
			require.NoError(t, err)
			require.NoError(t, m.SetMode(nn.ModeExact))
			for _, unpacked := range []bool{false, true} {
				c, err := Compile(m, CompileOptions{Batch: 2, OneDiagonalPerCiphertext: unpacked})
				require.NoError(t, err)
				got := textSimLogits(t, c, b)
				worst := 0.0
				for i := range got {
					for j, v := range got[i] {
						worst = math.Max(worst, math.Abs(v-lg.Data[i*len(got[i])+j]))
					}
				}
				require.Less(t, worst, 1e-9, "unpacked %v", unpacked)
			}
		})
	}
}

// Slots that LiveSlots calls dead do not influence the result: perturbing
// them in a simulation leaves the output unchanged.
func TestLiveSlots(t *testing.T) {
	fit := nn.DefaultFitOptions()
	fit.Degree = 7
	m, b := tinyMNIST(t, func(c *model.Config) { c.Norm = "layernorm" }, fit)
	c, err := Compile(m, CompileOptions{Batch: 2})
	require.NoError(t, err)
	live := c.LiveSlots()
	vecs, err := c.EncodeImages(b.Pixels[:2*64], 2, m.Cfg.ImageRows, m.Cfg.ImageCols)
	require.NoError(t, err)
	want, _, err := c.Simulate(vecs[0], circuit.SimOptions{})
	require.NoError(t, err)
	// add noise to the dead slots of every op's output
	noisy := &circuit.Circuit{Version: c.Version, Task: c.Task, Layout: c.Layout, Mats: c.Mats, Vecs: append([][]float64(nil), c.Vecs...)}
	remap := make([]int, len(c.Ops))
	dead := 0
	for i, op := range c.Ops {
		ins := make([]int, len(op.In))
		for j, in := range op.In {
			ins[j] = remap[in]
		}
		op.In = ins
		noisy.Ops = append(noisy.Ops, op)
		remap[i] = len(noisy.Ops) - 1
		if op.Kind == circuit.KindOutput {
			continue
		}
		pat := make([]float64, c.Layout.Tokens*c.Layout.Block)
		// a pattern is per (token, channel); perturb only if dead for every input of the batch
		for tk := 0; tk < c.Layout.Tokens; tk++ {
			for ch := 0; ch < c.Layout.Block; ch++ {
				isDead := true
				for bb := 0; bb < c.Layout.Batch; bb++ {
					if live[i][c.Layout.Slot(tk, bb, ch)] {
						isDead = false
					}
				}
				if isDead {
					pat[tk*c.Layout.Block+ch] = 1e-3 // small: junk must stay finite through iterations (0·Inf is NaN)
					dead++
				}
			}
		}
		noisy.Vecs = append(noisy.Vecs, pat)
		noisy.Ops = append(noisy.Ops, circuit.Op{Kind: circuit.KindAddPlain, In: []int{remap[i]}, Vec: len(noisy.Vecs) - 1, Label: op.Label, Ref: -1})
		remap[i] = len(noisy.Ops) - 1
	}
	require.Greater(t, dead, 1000, "dead (token, channel) pairs")
	got, _, err := noisy.Simulate(vecs[0], circuit.SimOptions{})
	require.NoError(t, err)
	require.Less(t, circuit.OutputErr(c, want, got), 1e-9)
}

// Models still wearing their training-time range penalties compile to the
// same circuit (the penalties do not change the function).
func TestCompileUnwrapsRangePenalties(t *testing.T) {
	fit := nn.DefaultFitOptions()
	fit.Degree = 15
	// Power-Softmax (TestCompileUnwrapsShiftedPenalty covers power-shifted)
	m, b := tinyMNIST(t, func(c *model.Config) {
		c.Attention = model.AttentionConfig{Kind: model.AttnPowerSoftmax, P: 4, Eps: 1e-2, LengthNorm: true, Delta: 1e-2}
	}, fit)
	want := polyLogits(t, m, b)
	plain, err := Compile(m, CompileOptions{Batch: 4})
	require.NoError(t, err)
	blk := m.Blocks[0]
	pen, err := nn.NewRangePenalty("x", 0.1, 10, 1)
	require.NoError(t, err)
	blk.Attn.Kernel, err = nn.PenalizeKernel(blk.Attn.Kernel, pen)
	require.NoError(t, err)
	blk.FFN.Act = nn.PenalizeModule(blk.FFN.Act, pen)
	c, err := Compile(m, CompileOptions{Batch: 4})
	require.NoError(t, err)
	require.Equal(t, plain, c)
	require.Less(t, maxAbsDiff(want, simLogits(t, c, b, m.Cfg)), 1e-9)
}
