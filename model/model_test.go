package model

import (
	"math/rand/v2"
	"os"
	"testing"

	"github.com/polyformer/polyformer/model/nn"
	"github.com/stretchr/testify/require"
)

func tinyConfig(t *testing.T, task string) Config {
	c, err := DefaultConfig(task)
	require.NoError(t, err)
	c.Width, c.Depth, c.Heads, c.Hidden = 8, 2, 2, 16
	if task == TaskMNIST {
		c.ImageRows, c.ImageCols, c.Patch, c.Classes = 8, 8, 4, 3
	} else {
		c.Context = 6
	}
	return c
}

func synthBatch(c Config, b int, seed uint64) Batch {
	r := rand.New(rand.NewPCG(seed, 5))
	if c.Task == TaskMNIST {
		px := make([]float64, b*c.ImageRows*c.ImageCols)
		tg := make([]int, b)
		for i := 0; i < b; i++ {
			tg[i] = r.IntN(c.Classes)
			for j := 0; j < c.ImageRows*c.ImageCols; j++ {
				// class-dependent bright band plus noise
				v := 0.1 * r.Float64()
				if (j/c.ImageCols)%c.Classes == tg[i] {
					v += 0.9
				}
				px[i*c.ImageRows*c.ImageCols+j] = v
			}
		}
		return Batch{B: b, Pixels: px, Targets: tg}
	}
	t := c.Context
	in, tg := make([]int, b*t), make([]int, b*t)
	for i := 0; i < b; i++ {
		start := r.IntN(4)
		for j := 0; j < t; j++ {
			in[i*t+j] = 'a' + (start+j)%4
			tg[i*t+j] = 'a' + (start+j+1)%4
		}
	}
	return Batch{B: b, T: t, Inputs: in, Targets: tg}
}

func TestModelGradCheck(t *testing.T) {
	cases := map[string]func(c *Config){
		"power-softmax": func(c *Config) {},
		"power-softmax-scaled-eps0": func(c *Config) {
			c.Attention = AttentionConfig{Kind: AttnPowerSoftmax, P: 4, Scaled: true, Delta: 0.1}
		},
		"softmax-layernorm-entropy": func(c *Config) {
			c.Attention = AttentionConfig{Kind: AttnSoftmax, Temperature: true}
			c.Norm = "layernorm"
			c.Entropy = EntropyConfig{Enabled: true, Gamma: 0.01, Lambda: 0.5, Theta0: 0.1}
		},
		"powerfixed-rms-quad-scaled": func(c *Config) {
			c.Attention = AttentionConfig{Kind: AttnPowerFixed, P: 2, Learned: true}
			c.Norm, c.Activation, c.ScaledResidual = "rmsnorm", nn.ActQuad, true
		},
		"power-entropy-fused": func(c *Config) {
			c.Attention.Eps = 1e-3
			c.Activation, c.ScaledResidual = nn.ActNone, true
			c.Entropy = EntropyConfig{Enabled: true, Gamma: 0.01, Lambda: 0.5, Theta0: 0.9}
		},
	}
	for _, task := range []string{TaskMNIST, TaskText} {
		for name, mod := range cases {
			t.Run(task+"/"+name, func(t *testing.T) {
				c := tinyConfig(t, task)
				mod(&c)
				m, err := New(c)
				require.NoError(t, err)
				b := synthBatch(c, 3, 1)
				m.Reg.ZeroGrad()
				res, err := m.Step(b)
				require.NoError(t, err)
				if c.Entropy.Enabled {
					require.Greater(t, res.EntLoss, 0.0)
				}
				rng := rand.New(rand.NewPCG(1, 2))
				loss := func() float64 {
					r, err := m.Forward(b)
					require.NoError(t, err)
					return r.Loss
				}
				for _, p := range m.Params() {
					if p.Frozen {
						continue
					}
					g := append([]float64(nil), p.Grad.Data...)
					r := nn.GradCheck(p.Name, loss, p.Value.Data, g, 1e-6, 6, rng)
					require.Less(t, r.AggRelErr, 1e-6, r.String())
				}
			})
		}
	}
}

func TestConfigErrors(t *testing.T) {
	_, err := DefaultConfig("video")
	require.Error(t, err)
	c := tinyConfig(t, TaskMNIST)
	c.Heads = 3
	require.ErrorContains(t, c.Validate(), "divisible")
	c = tinyConfig(t, TaskText)
	c.Attention.Kind = AttnPowerSoftmax
	c.Attention.P = 3
	c.Norm = "foo"
	err = c.Validate()
	require.ErrorContains(t, err, "even")
	require.ErrorContains(t, err, "unknown norm")
	m, err := New(tinyConfig(t, TaskText))
	require.NoError(t, err)
	_, err = m.Step(Batch{B: 1, T: 7, Inputs: make([]int, 7), Targets: make([]int, 7)})
	require.ErrorContains(t, err, "sequence length")
	_, err = m.Step(Batch{B: 1, T: 2, Inputs: []int{1, 300}, Targets: []int{1, 2}})
	require.ErrorContains(t, err, "outside vocabulary")
}

func TestCalibrateAndPolyMode(t *testing.T) {
	for _, mod := range []func(c *Config){
		func(c *Config) { c.Norm = "layernorm" },
		func(c *Config) { c.Attention = AttentionConfig{Kind: AttnSoftmax}; c.Norm = "rmsnorm" },
	} {
		c := tinyConfig(t, TaskText)
		mod(&c)
		m, err := New(c)
		require.NoError(t, err)
		require.Error(t, m.SetMode(nn.ModePoly))
		cal := []Batch{synthBatch(c, 8, 1), synthBatch(c, 8, 2)}
		exact, err := m.Forward(cal[0])
		require.NoError(t, err)
		fit := nn.DefaultFitOptions()
		fit.RelTol = 1e-6
		require.NoError(t, m.Calibrate(cal, fit, nil))
		require.NotNil(t, m.Cfg.Poly)
		require.Len(t, m.Cfg.Poly.Specs, len(m.Sites()))
		require.NoError(t, m.SetMode(nn.ModePoly))
		poly, err := m.Forward(cal[0])
		require.NoError(t, err)
		require.InDelta(t, exact.CE, poly.CE, 1e-3)
		for _, st := range m.PolyStats() {
			require.Zero(t, st.Outside, st.Site)
			require.Greater(t, st.Total, int64(0), st.Site)
		}
		// a model rebuilt from the config (as after loading) has the same polynomials
		m2, err := New(m.Cfg)
		require.NoError(t, err)
		require.NoError(t, m2.SetMode(nn.ModePoly))
	}
}

func TestConfigFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	c := tinyConfig(t, TaskMNIST)
	c.Attention.Temperature = true
	path := dir + "/config.json"
	require.NoError(t, SaveConfig(path, c))
	got, err := LoadConfig(path)
	require.NoError(t, err)
	require.Equal(t, c, got)
	require.NoError(t, os.WriteFile(path, []byte(`{"task": "mnist",`), 0o644))
	_, err = LoadConfig(path)
	require.ErrorContains(t, err, "parse config")
	require.NoError(t, os.WriteFile(path, []byte(`{"version": 1, "task": "mnist", "width": 8}`), 0o644))
	_, err = LoadConfig(path)
	require.ErrorContains(t, err, "invalid model config")
	_, err = LoadConfig(dir + "/missing.json")
	require.Error(t, err)
	require.NoError(t, os.WriteFile(path, []byte(`{"width": 32, "attention": {"kind": "softmax"}, "norm": "layernorm"}`), 0o644))
	base, err := DefaultConfig(TaskMNIST)
	require.NoError(t, err)
	over, err := LoadConfigOver(path, base)
	require.NoError(t, err)
	require.Equal(t, 32, over.Width)
	require.Equal(t, base.Depth, over.Depth)
	require.Equal(t, AttnSoftmax, over.Attention.Kind)
	require.NoError(t, os.WriteFile(path, []byte(`{"widht": 32}`), 0o644))
	_, err = LoadConfigOver(path, base)
	require.ErrorContains(t, err, "unknown field")
	c.Attention = AttentionConfig{Kind: AttnPowerSoftmax, P: 4, Scaled: true, Eps: 0.1, Delta: 0.1}
	require.NotEmpty(t, c.PolyCaveat())
	c.Attention.Eps = 0
	require.Empty(t, c.PolyCaveat())
}
