package convert

import (
	"math/rand/v2"
	"testing"

	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/checkpoint"
	"github.com/polyformer/polyformer/model/nn"
	"github.com/polyformer/polyformer/model/norm"
	"github.com/polyformer/polyformer/model/optim"
	"github.com/stretchr/testify/require"
)

func tinyCfg(t *testing.T, task, method string, no *norm.Options) model.Config {
	t.Helper()
	c, err := model.DefaultConfig(task)
	require.NoError(t, err)
	c.Width, c.Depth, c.Heads, c.Hidden = 8, 2, 2, 16
	if task == model.TaskText {
		c.Context = 6
	} else {
		c.ImageRows, c.ImageCols, c.Patch = 8, 8, 4
	}
	c.Norm, c.NormOptions = method, no
	return c
}

func batch(task string, seed uint64) model.Batch {
	rng := rand.New(rand.NewPCG(seed, 3))
	if task == model.TaskText {
		b := model.Batch{B: 3, T: 6}
		for i := 0; i < 18; i++ {
			b.Inputs = append(b.Inputs, rng.IntN(256))
			b.Targets = append(b.Targets, rng.IntN(256))
		}
		return b
	}
	b := model.Batch{B: 3}
	for i := 0; i < 3*64; i++ {
		b.Pixels = append(b.Pixels, rng.Float64())
	}
	for i := 0; i < 3; i++ {
		b.Targets = append(b.Targets, rng.IntN(10))
	}
	return b
}

// train takes a few optimizer steps so that weights, gains, running
// statistics and schedules all move away from their initial values.
func train(t *testing.T, m *model.Model, task string, steps int) {
	t.Helper()
	opt := optim.NewAdamW(m.Params(), 0.9, 0.98, 1e-8, 0.01)
	for s := 0; s < steps; s++ {
		m.Reg.ZeroGrad()
		_, err := m.Step(batch(task, uint64(s)))
		require.NoError(t, err)
		require.NoError(t, opt.Update(m.Params(), 3e-2))
	}
}

func requireSameLogits(t *testing.T, a, b *model.Model, task string, tol float64) {
	t.Helper()
	for s := uint64(50); s < 53; s++ {
		x := batch(task, s)
		la, err := a.Logits(x)
		require.NoError(t, err)
		lb, err := b.Logits(x)
		require.NoError(t, err)
		require.Equal(t, la.Shape, lb.Shape)
		for i := range la.Data {
			require.InDelta(t, la.Data[i], lb.Data[i], tol, "logit %d", i)
		}
	}
}

func TestFoldEquivalence(t *testing.T) {
	foldable := []string{norm.MethodNone, norm.MethodBatchNorm, norm.MethodRepBN, norm.MethodPRepBN, norm.MethodPowerNorm,
		norm.MethodUnified, norm.MethodFixedScale, norm.MethodSigmaReparam, norm.MethodWeightNorm, norm.MethodScaledWS}
	for _, task := range []string{model.TaskText, model.TaskMNIST} {
		for _, method := range foldable {
			for _, place := range []string{norm.PlacePre, norm.PlaceLNScaling} {
				t.Run(task+"/"+method+"/"+place, func(t *testing.T) {
					m, err := model.New(tinyCfg(t, task, method, &norm.Options{Placement: place, DecaySteps: 3}))
					require.NoError(t, err)
					train(t, m, task, 5)
					f, err := Fold(m)
					require.NoError(t, err)
					require.Equal(t, norm.MethodNone, f.Cfg.Norm)
					require.Empty(t, f.Reparams)
					for _, n := range f.Norms() {
						require.Equal(t, norm.MethodNone, n.Method())
					}
					requireSameLogits(t, m, f, task, 1e-9)
				})
			}
		}
	}
}

func TestFoldRefusesWhatDoesNotFold(t *testing.T) {
	for _, c := range []struct {
		method string
		no     norm.Options
	}{
		{norm.MethodLayerNorm, norm.Options{}},
		{norm.MethodRMSNorm, norm.Options{}},
		{norm.MethodPRepBN, norm.Options{DecaySteps: 100}},
		{norm.MethodPowerNorm, norm.Options{Groups: 2}},
		{norm.MethodBatchNorm, norm.Options{Placement: norm.PlacePost}},
	} {
		m, err := model.New(tinyCfg(t, model.TaskText, c.method, &c.no))
		require.NoError(t, err)
		_, err = Fold(m)
		require.ErrorIs(t, err, ErrNotFoldable, c.method)
	}
}

func TestPreLNToRMSNorm(t *testing.T) {
	for _, task := range []string{model.TaskText, model.TaskMNIST} {
		for _, v := range []struct {
			name   string
			no     *norm.Options
			scaled bool
		}{{"pre", nil, false}, {"pre-scaled-residual", nil, true}, {"lns", &norm.Options{Placement: norm.PlaceLNScaling}, false}} {
			t.Run(task+"/"+v.name, func(t *testing.T) {
				cfg := tinyCfg(t, task, norm.MethodLayerNorm, v.no)
				cfg.ScaledResidual = v.scaled
				m, err := model.New(cfg)
				require.NoError(t, err)
				train(t, m, task, 5)
				for _, n := range m.Norms() { // non-trivial gains and biases
					for _, p := range n.Params() {
						p.Value.FillNormal(rand.New(rand.NewPCG(uint64(len(p.Name)), 1)), 1)
					}
				}
				r, err := PreLNToRMSNorm(m)
				require.NoError(t, err)
				require.Equal(t, norm.MethodRMSNorm, r.Cfg.Norm)
				// no mean computation left: every norm is an RMSNorm
				for _, n := range r.Norms() {
					_, isRMS := n.(*norm.RMSNorm)
					require.True(t, isRMS, n.Method())
				}
				requireSameLogits(t, m, r, task, 1e-9)
				// and the residual stream is zero-mean at the input of every block
				if task == model.TaskText {
					for _, row := range [][]float64{r.Embed.Table.Value.Data[:8], r.Pos.Table.Value.Data[8:16]} {
						var s float64
						for _, x := range row {
							s += x
						}
						require.InDelta(t, 0, s, 1e-12)
					}
				}
			})
		}
	}
	m, err := model.New(tinyCfg(t, model.TaskText, norm.MethodRMSNorm, nil))
	require.NoError(t, err)
	_, err = PreLNToRMSNorm(m)
	require.ErrorContains(t, err, "want layernorm")
	m, err = model.New(tinyCfg(t, model.TaskText, norm.MethodLayerNorm, &norm.Options{Placement: norm.PlacePost}))
	require.NoError(t, err)
	_, err = PreLNToRMSNorm(m)
	require.ErrorContains(t, err, "placement")
}

// TestConversionKeepsPolySpecs: a calibrated Pre-LN model converts to a
// Pre-RMSNorm model whose poly mode also matches (the inverse square roots
// see the same inputs, so the same specs apply).
func TestConversionKeepsPolySpecs(t *testing.T) {
	m, err := model.New(tinyCfg(t, model.TaskText, norm.MethodLayerNorm, nil))
	require.NoError(t, err)
	train(t, m, model.TaskText, 3)
	require.NoError(t, m.Calibrate([]model.Batch{batch(model.TaskText, 50), batch(model.TaskText, 51)}, nn.DefaultFitOptions(), nil))
	r, err := PreLNToRMSNorm(m)
	require.NoError(t, err)
	require.NotNil(t, r.Cfg.Poly)
	require.NoError(t, m.SetMode(nn.ModePoly))
	require.NoError(t, r.SetMode(nn.ModePoly))
	requireSameLogits(t, m, r, model.TaskText, 1e-9)
}

func TestEveryKindAndPlacementTrains(t *testing.T) {
	places := []string{norm.PlacePre, norm.PlacePost, norm.PlacePeri, norm.PlaceMix, norm.PlaceLNScaling, norm.PlaceDeepNorm}
	for _, method := range norm.Methods() {
		for _, place := range places {
			m, err := model.New(tinyCfg(t, model.TaskText, method, &norm.Options{Placement: place}))
			require.NoError(t, err, method+"/"+place)
			train(t, m, model.TaskText, 2)
			res, err := m.Forward(batch(model.TaskText, 9))
			require.NoError(t, err, method+"/"+place)
			require.False(t, res.Loss != res.Loss, "NaN loss %s/%s", method, place)
		}
	}
	m, err := model.New(tinyCfg(t, model.TaskText, norm.MethodLayerNorm, &norm.Options{Placement: norm.PlaceMix}))
	require.NoError(t, err)
	require.Equal(t, nn.PlacementPost, m.Blocks[0].Placement)
	require.Equal(t, "", m.Blocks[1].Placement)
	m, err = model.New(tinyCfg(t, model.TaskText, norm.MethodLayerNorm, &norm.Options{Placement: norm.PlaceDeepNorm}))
	require.NoError(t, err)
	require.InDelta(t, 1.4142135623730951, m.Blocks[0].ResidScale, 1e-15) // (2 * 2)^(1/4)
	require.Equal(t, norm.MethodNone, m.FinalNorm.Method())
}

// TestTrainingModeOnlyInStep: BatchNorm uses batch statistics inside
// Model.Step only, and running statistics and schedules survive a checkpoint.
func TestTrainingModeOnlyInStepAndCheckpoint(t *testing.T) {
	m, err := model.New(tinyCfg(t, model.TaskText, norm.MethodPRepBN, &norm.Options{DecaySteps: 4}))
	require.NoError(t, err)
	b := batch(model.TaskText, 1)
	a1, err := m.Logits(b)
	require.NoError(t, err)
	a2, err := m.Logits(batch(model.TaskText, 1))
	require.NoError(t, err)
	require.Equal(t, a1.Data, a2.Data)
	train(t, m, model.TaskText, 6)
	p := m.Blocks[0].Norm1.(*norm.PRepBN)
	require.Equal(t, 0.0, p.Lambda())
	require.NotEqual(t, 0.0, p.Rep.BN.RunMean.Value.Data[0])
	dir := t.TempDir()
	require.NoError(t, checkpoint.Save(dir, m, nil, nil))
	l, err := checkpoint.Load(dir)
	require.NoError(t, err)
	require.Equal(t, 0.0, l.Blocks[0].Norm1.(*norm.PRepBN).Lambda())
	requireSameLogits(t, m, l, model.TaskText, 0)
}
