package model

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/polyformer/polyformer/model/nn"
	"github.com/stretchr/testify/require"
)

// Text and MNIST models with power-shifted attention build, train a step,
// calibrate and run in poly mode close to the exact function.
//
// The learned odd-p case starts at shift 8 rather than p = 3: the tiny MNIST
// model's second block has scores below -3 at init, and a learned shift
// does not guarantee x + c >= 0 (that is what the calibrated mode and the
// shifted-score range penalty are for); a negative row normalizer then has
// no positive reciprocal interval to calibrate.
func TestPowerShiftedModel(t *testing.T) {
	learnedInit := 8.0
	for _, task := range []string{TaskText, TaskMNIST} {
		for _, c := range []struct {
			p     int
			mode  string
			scope string
			init  *float64
		}{{3, ShiftLearned, TempScopeHead, &learnedInit}, {4, ShiftCalibrated, "", nil}, {5, ShiftCalibrated, TempScopePosition, nil}} {
			cfg := tinyConfig(t, task)
			cfg.Attention = AttentionConfig{Kind: AttnPowerShifted, P: c.p, Eps: 1e-2, LengthNorm: true,
				ShiftMode: c.mode, ShiftInit: c.init, Temperature: c.scope != "", TemperatureScope: c.scope}
			require.NoError(t, cfg.Validate())
			m, err := New(cfg)
			require.NoError(t, err)
			k, ok := m.Blocks[0].Attn.Kernel.(*nn.ShiftedPower)
			require.True(t, ok)
			if c.init == nil {
				require.Equal(t, float64(c.p), k.Shift.Value.Data[0], "default init is p")
			} else {
				require.Equal(t, *c.init, k.Shift.Value.Data[0])
			}
			if c.scope == TempScopeHead {
				require.Equal(t, []int{cfg.Heads, 1}, m.Blocks[0].Attn.Temp.Value.Shape)
			}
			b := synthBatch(cfg, 4, 1)
			res, err := m.Step(b)
			require.NoError(t, err)
			require.False(t, math.IsNaN(res.Loss))
			var g float64
			for _, v := range k.Shift.Grad.Data {
				g += math.Abs(v)
			}
			if c.mode == ShiftLearned {
				require.Greater(t, g, 0.0, "learned shift gets a gradient")
			} else {
				require.Equal(t, 1.0, k.Ready.Value.Data[0], "calibrated on the first batch")
				require.GreaterOrEqual(t, k.Shift.Value.Data[0], float64(c.p))
			}
			for l, blk := range m.Blocks {
				st := blk.Attn.Kernel.(*nn.ShiftedPower).ShiftStats()
				require.Positive(t, st.LastTotal)
				require.Zero(t, st.LastNegative, "%s p=%d block %d: shifted scores stay >= 0", task, c.p, l)
			}
			cal := []Batch{synthBatch(cfg, 8, 2), synthBatch(cfg, 8, 3)}
			exact, err := m.Forward(cal[0])
			require.NoError(t, err)
			fit := nn.DefaultFitOptions()
			fit.RelTol = 1e-6
			require.NoError(t, m.Calibrate(cal, fit, nil))
			require.NoError(t, m.SetMode(nn.ModePoly))
			poly, err := m.Forward(cal[0])
			require.NoError(t, err)
			// relative: the tiny untrained MNIST model has CE ~ 15
			require.InEpsilon(t, exact.CE, poly.CE, 1e-3, "%s p=%d", task, c.p)
			for _, st := range m.PolyStats() {
				require.Zero(t, st.Outside, st.Site)
			}
		}
	}
}

func TestPowerShiftedConfig(t *testing.T) {
	c := tinyConfig(t, TaskText)
	c.Attention = AttentionConfig{Kind: AttnPowerShifted, P: 1}
	require.NoError(t, c.Validate())
	require.Equal(t, 1.0, c.Attention.Shift())
	require.Equal(t, ShiftLearned, c.Attention.ShiftModeOrDefault())
	zero := 0.0
	c.Attention.ShiftInit = &zero
	require.Equal(t, 0.0, c.Attention.Shift())
	for _, bad := range []func(a *AttentionConfig){
		func(a *AttentionConfig) { a.P = 17 },
		func(a *AttentionConfig) { a.P = 0 },
		func(a *AttentionConfig) { a.ShiftMode = "fixed" },
		func(a *AttentionConfig) { a.ShiftMargin = -1 },
		func(a *AttentionConfig) { a.Eps = -1 },
		func(a *AttentionConfig) { a.TemperatureScope = "token" },
	} {
		cc := c
		cc.Attention = c.Attention
		bad(&cc.Attention)
		require.Error(t, cc.Validate())
	}
	c.Attention.TemperatureScope = TempScopeHead
	require.ErrorContains(t, c.Validate(), "needs temperature")
	c.Attention.Temperature = true
	require.NoError(t, c.Validate())
	// odd p is still rejected for the other power kinds, and shift fields too
	c = tinyConfig(t, TaskText)
	c.Attention.Kind = AttnPowerSoftmax
	c.Attention.P = 3
	require.ErrorContains(t, c.Validate(), "even")
	c = tinyConfig(t, TaskText)
	c.Attention.Kind = AttnPowerSoftmax
	c.Attention.ShiftMode = ShiftCalibrated
	require.ErrorContains(t, c.Validate(), "only to power-shifted")
	c.Attention.ShiftMode = ""
	c.Attention.Kind = "linear"
	require.ErrorContains(t, c.Validate(), "power-shifted")
	// old configs (no new fields) load unchanged and write no new fields
	old := tinyConfig(t, TaskMNIST)
	old.Attention.Temperature = true
	js, err := json.Marshal(old)
	require.NoError(t, err)
	for _, f := range []string{"shift_init", "shift_mode", "shift_margin", "temperature_scope"} {
		require.NotContains(t, string(js), f)
	}
	require.Equal(t, nn.TempPosition, old.Attention.TempScope())
	m, err := New(old)
	require.NoError(t, err)
	require.Equal(t, []int{old.Heads, old.Tokens()}, m.Blocks[0].Attn.Temp.Value.Shape)
	// a round trip keeps the new fields
	dir := t.TempDir()
	c = tinyConfig(t, TaskText)
	init := 2.5
	c.Attention = AttentionConfig{Kind: AttnPowerShifted, P: 3, ShiftInit: &init, ShiftMode: ShiftCalibrated, ShiftMargin: 0.1,
		Temperature: true, TemperatureScope: TempScopeHead}
	require.NoError(t, SaveConfig(dir+"/c.json", c))
	got, err := LoadConfig(dir + "/c.json")
	require.NoError(t, err)
	require.Equal(t, c, got)
}
