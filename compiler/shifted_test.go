package compiler

import (
	"fmt"
	"math"
	"testing"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/nn"
	"github.com/stretchr/testify/require"
)

// shiftedCase is one power-shifted architecture of the compiler tests.
type shiftedCase struct {
	p     int
	mode  string // nn.ShiftLearned or nn.ShiftCalibrated
	scope string // temperature scope ("" none)
	eps   float64
	ctx   int  // text context (0: tinyText's 8)
	noAct bool // activation none instead of quad (two levels fewer)
}

func (c shiftedCase) String() string {
	return fmt.Sprintf("p%d-%s-temp%q", c.p, c.mode, c.scope)
}

func (c shiftedCase) apply(cfg *model.Config) {
	eps := c.eps
	if eps == 0 {
		eps = 0.05
	}
	if c.ctx > 0 && cfg.Task == model.TaskText {
		cfg.Context = c.ctx
	}
	cfg.Attention = model.AttentionConfig{Kind: model.AttnPowerShifted, P: c.p, Eps: eps, LengthNorm: true,
		ShiftMode: c.mode, Temperature: c.scope != "", TemperatureScope: c.scope}
	cfg.Activation = nn.ActQuad
	if c.noAct {
		cfg.Activation = nn.ActNone
	}
}

// shiftedModel builds and calibrates a tiny power-shifted model (task mnist
// or text); learned shifts are set apart per head and temperatures are
// random around 1, so a misplaced shift or temperature shows. The model is
// (re)calibrated after these changes.
func shiftedModel(t *testing.T, task string, c shiftedCase, fit nn.FitOptions) (*model.Model, model.Batch) {
	t.Helper()
	var (
		m   *model.Model
		b   model.Batch
		cal []model.Batch
	)
	if task == model.TaskMNIST {
		m, b = tinyMNIST(t, c.apply, fit)
		cal = []model.Batch{synthImages(m.Cfg, 16, 1), synthImages(m.Cfg, 16, 2)}
	} else {
		m, b = tinyText(t, c.apply, fit)
		cal = []model.Batch{synthText(m.Cfg, 8, 1), synthText(m.Cfg, 8, 2)}
	}
	for l, blk := range m.Blocks {
		k, ok := blk.Attn.Kernel.(*nn.ShiftedPower)
		require.True(t, ok)
		if c.mode == nn.ShiftLearned {
			for h := range k.Shift.Value.Data {
				k.Shift.Value.Data[h] = float64(c.p) + 0.4*float64(h) - 0.2*float64(l)
			}
		} else {
			require.Equal(t, 1.0, k.Ready.Value.Data[0], "calibrated on the first batch")
		}
		if tp := blk.Attn.Temp; tp != nil {
			for i := range tp.Value.Data {
				tp.Value.Data[i] = 0.8 + 0.1*float64(i%5)
			}
		}
	}
	require.NoError(t, m.Calibrate(cal, fit, nil))
	return m, b
}

// textSimLogits simulates the compiled LM on b: logits [B*T][vocab].
func textSimLogits(t *testing.T, c *circuit.Circuit, b model.Batch) [][]float64 {
	t.Helper()
	vecs, err := c.EncodeBytes(b.Inputs, b.B, b.T)
	require.NoError(t, err)
	outs := make([][]float64, len(vecs))
	for i, v := range vecs {
		outs[i], _, err = c.Simulate(v, circuit.SimOptions{})
		require.NoError(t, err)
	}
	got, err := c.DecodeLogits(outs, b.B)
	require.NoError(t, err)
	return got
}

// textPolyLogits returns the LM's poly-mode logits in DecodeLogits' shape.
func textPolyLogits(t *testing.T, m *model.Model, b model.Batch, rows, cols int) [][]float64 {
	t.Helper()
	require.NoError(t, m.SetMode(nn.ModePoly))
	defer func() { require.NoError(t, m.SetMode(nn.ModeExact)) }()
	lg, err := m.Logits(b)
	require.NoError(t, err)
	require.Equal(t, rows*cols, len(lg.Data))
	out := make([][]float64, rows)
	for i := range out {
		out[i] = append([]float64(nil), lg.Data[i*cols:(i+1)*cols]...)
	}
	return out
}

// The simulator reproduces poly mode for power-shifted attention (odd and
// even p, learned and calibrated shifts, both temperature scopes), causal
// (text) and not (mnist), packed and unpacked.
func TestSimulatorMatchesPolyModeShifted(t *testing.T) {
	fit := nn.DefaultFitOptions()
	fit.Degree = 15
	cases := []shiftedCase{
		{p: 3, mode: nn.ShiftLearned, scope: nn.TempHead},
		{p: 4, mode: nn.ShiftCalibrated, scope: nn.TempPosition},
		{p: 3, mode: nn.ShiftCalibrated},
		{p: 4, mode: nn.ShiftLearned, scope: nn.TempHead},
		{p: 1, mode: nn.ShiftLearned},
		{p: 5, mode: nn.ShiftCalibrated, scope: nn.TempHead},
	}
	for _, task := range []string{model.TaskMNIST, model.TaskText} {
		for _, sc := range cases {
			t.Run(task+"-"+sc.String(), func(t *testing.T) {
				m, b := shiftedModel(t, task, sc, fit)
				var want [][]float64
				if task == model.TaskMNIST {
					want = polyLogits(t, m, b)
				}
				sizes := map[bool]int{}
				for _, unpacked := range []bool{false, true} {
					c, err := Compile(m, CompileOptions{Batch: 2, OneDiagonalPerCiphertext: unpacked})
					require.NoError(t, err)
					sizes[unpacked] = len(c.Ops)
					var got [][]float64
					if task == model.TaskMNIST {
						got = simLogits(t, c, b, m.Cfg)
					} else {
						got = textSimLogits(t, c, b)
						want = textPolyLogits(t, m, b, len(got), len(got[0]))
					}
					require.Less(t, maxAbsDiff(want, got), 1e-8, "unpacked %v", unpacked)
				}
				require.NotEqual(t, sizes[false], sizes[true], "the packed and unpacked lowerings both ran")
			})
		}
	}
}

// The lowering really adds the shift on unmasked slots only: with a shift
// the circuit differs from the same model whose shift is zeroed, and for a
// causal model a shift that leaked into masked slots would give those slots
// weight c^p (the simulator comparison above would then fail); here we check
// that the compiled circuit depends on c_h at all.
func TestShiftedLoweringUsesShift(t *testing.T) {
	fit := nn.DefaultFitOptions()
	fit.Degree = 15
	m, b := shiftedModel(t, model.TaskText, shiftedCase{p: 3, mode: nn.ShiftLearned}, fit)
	c, err := Compile(m, CompileOptions{Batch: 2})
	require.NoError(t, err)
	before := textSimLogits(t, c, b)
	k := m.Blocks[0].Attn.Kernel.(*nn.ShiftedPower)
	k.Shift.Value.Data[1] += 0.5
	c2, err := Compile(m, CompileOptions{Batch: 2})
	require.NoError(t, err)
	after := textSimLogits(t, c2, b)
	require.Greater(t, maxAbsDiff(before, after), 1e-6)
	want := textPolyLogits(t, m, b, len(after), len(after[0]))
	require.Less(t, maxAbsDiff(want, after), 1e-8)
}

// Encrypted power-shifted inference (p = 3 and 4) equals the simulator
// within 1e-5 (logits; measured about 1e-7) and the dry run's predicted
// precision on the insecure test-n13 preset, with a per-head temperature.
// Four runs cover every pair of p in {3 (calibrated shift), 4 (learned)},
// task (mnist: not causal, text: causal) and layout (packed, unpacked);
// -short keeps two (about 5 s of CPU each).
func TestEncryptedShifted(t *testing.T) {
	fit := shallowFit()
	p13, err := he.ParametersFromPreset(he.PresetTestN13)
	require.NoError(t, err)
	p3 := shiftedCase{p: 3, mode: nn.ShiftCalibrated, scope: nn.TempHead, eps: 0.5, ctx: 4, noAct: true}
	p4 := shiftedCase{p: 4, mode: nn.ShiftLearned, scope: nn.TempHead, eps: 0.5, ctx: 4, noAct: true}
	for _, run := range []struct {
		task     string
		sc       shiftedCase
		unpacked bool
		short    bool
	}{
		{model.TaskMNIST, p3, false, true},
		{model.TaskMNIST, p4, true, false},
		{model.TaskText, p3, true, false},
		{model.TaskText, p4, false, true},
	} {
		task, sc, unpacked := run.task, run.sc, run.unpacked
		name := fmt.Sprintf("%s-%s-unpacked%v", task, sc, unpacked)
		if testing.Short() && !run.short {
			continue
		}
		t.Run(name, func(t *testing.T) {
			m, b := shiftedModel(t, task, sc, fit)
			c, err := Compile(m, CompileOptions{Batch: 2, OneDiagonalPerCiphertext: unpacked})
			require.NoError(t, err)
			if task == model.TaskMNIST {
				rep := encryptedRun(t, m, c, b, he.PresetTestN13, circuit.PlanOptions{}, 1e-5)
				require.Zero(t, rep.Bootstraps)
				return
			}
			pc, err := circuit.Plan(c, p13, circuit.PlanOptions{})
			require.NoError(t, err)
			sk, evk, err := he.GenerateKeys(p13, he.KeySpec{Relinearization: pc.Planned.Keys.Relinearization, Rotations: pc.Planned.Keys.Rotations})
			require.NoError(t, err)
			client, err := he.NewClient(p13, sk)
			require.NoError(t, err)
			vecs, err := pc.EncodeBytes(b.Inputs, b.B, b.T)
			require.NoError(t, err)
			rep, dec, err := circuit.Bench(pc, p13, evk, client, vecs, circuit.ExecOptions{})
			require.NoError(t, err)
			got, err := pc.DecodeLogits(dec, b.B)
			require.NoError(t, err)
			sim := textSimLogits(t, pc, b)
			want := textPolyLogits(t, m, b, len(sim), len(sim[0]))
			require.Less(t, maxAbsDiff(want, sim), 1e-8, "simulator vs poly mode")
			e := maxAbsDiff(sim, got)
			t.Logf("%s: max |encrypted - simulated| logit error %.3g (predicted 2^%.1f), key switches %d", name, e, rep.PredictedLog2Err, rep.KeySwitches)
			require.Less(t, e, 1e-5)
			require.Less(t, math.Log2(e), rep.PredictedLog2Err, "the dry run's precision prediction holds")
		})
	}
}

// A range-penalized power-shifted kernel compiles to the same circuit.
func TestCompileUnwrapsShiftedPenalty(t *testing.T) {
	fit := nn.DefaultFitOptions()
	fit.Degree = 15
	m, b := shiftedModel(t, model.TaskMNIST, shiftedCase{p: 3, mode: nn.ShiftLearned}, fit)
	want := polyLogits(t, m, b)
	plain, err := Compile(m, CompileOptions{Batch: 2})
	require.NoError(t, err)
	norm, err := nn.NewRangePenalty("n", 0.1, 10, 1)
	require.NoError(t, err)
	shifted, err := nn.NewRangePenalty("s", 0, 10, 1)
	require.NoError(t, err)
	blk := m.Blocks[0]
	blk.Attn.Kernel, err = nn.PenalizeShiftedKernel(blk.Attn.Kernel, norm, shifted)
	require.NoError(t, err)
	c, err := Compile(m, CompileOptions{Batch: 2})
	require.NoError(t, err)
	require.Equal(t, plain, c)
	require.Less(t, maxAbsDiff(want, simLogits(t, c, b, m.Cfg)), 1e-8)
}
