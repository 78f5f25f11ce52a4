package checkpoint

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/optim"
	"github.com/stretchr/testify/require"
)

func tiny(t *testing.T, width int) *model.Model {
	c, err := model.DefaultConfig(model.TaskText)
	require.NoError(t, err)
	c.Width, c.Depth, c.Heads, c.Hidden, c.Context = width, 1, 2, 8, 4
	c.Attention.Temperature = true
	m, err := model.New(c)
	require.NoError(t, err)
	return m
}

func TestSaveLoadResume(t *testing.T) {
	dir := t.TempDir()
	m := tiny(t, 4)
	opt := optim.NewAdamW(m.Params(), 0.9, 0.95, 1e-8, 0.01)
	for _, p := range m.Params() {
		for i := range p.Grad.Data {
			p.Grad.Data[i] = 0.1 * float64(i%3+1)
		}
	}
	require.NoError(t, opt.Update(m.Params(), 1e-2))
	require.NoError(t, Save(dir, m, opt, &TrainState{Step: 1}))

	m2, err := Load(dir)
	require.NoError(t, err)
	require.Equal(t, m.Cfg, m2.Cfg)
	// Load derives the weights of weight-side reparametrizations (the default
	// norm is weight normalization); derive m's too before comparing.
	m.Materialize()
	for i, p := range m.Params() {
		require.Equal(t, p.Value.Data, m2.Params()[i].Value.Data, p.Name)
	}
	m3, opt3, st, err := LoadResumable(dir)
	require.NoError(t, err)
	require.Equal(t, 1, st.Step)
	require.Equal(t, opt.T, opt3.T)
	require.Equal(t, opt.M, opt3.M)
	require.Equal(t, opt.V, opt3.V)
	require.Len(t, m3.Params(), len(m.Params()))
}

func TestOtherArchitecture(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, Save(dir, tiny(t, 4), nil, nil))
	_, _, _, err := LoadResumable(dir)
	require.ErrorContains(t, err, "not resumable")
	// swap in the config of a wider model: weights no longer match
	other := t.TempDir()
	require.NoError(t, Save(other, tiny(t, 6), nil, nil))
	b, err := os.ReadFile(filepath.Join(other, ConfigFile))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, ConfigFile), b, 0o644))
	_, err = Load(dir)
	require.ErrorContains(t, err, "another architecture")
	require.ErrorContains(t, err, "shape mismatch")

	require.NoError(t, os.WriteFile(filepath.Join(dir, ConfigFile), []byte(`{"task": "mnist", "bogus": 1}`), 0o644))
	_, err = Load(dir)
	require.ErrorContains(t, err, "unknown field")
	_, err = Load(t.TempDir())
	require.ErrorContains(t, err, "config")
}

// TestLoadMaterializesWeightSideReparams checks that a loaded model whose
// linear weights are derived (weight normalization) holds the weights it
// computes with, not the ones saved before the last optimizer update.
func TestLoadMaterializesWeightSideReparams(t *testing.T) {
	for _, kind := range []string{"weightnorm", "sigmareparam"} {
		t.Run(kind, func(t *testing.T) {
			c, err := model.DefaultConfig(model.TaskText)
			require.NoError(t, err)
			c.Width, c.Depth, c.Heads, c.Hidden, c.Context, c.Norm = 4, 1, 2, 8, 4, kind
			m, err := model.New(c)
			require.NoError(t, err)
			require.NotEmpty(t, m.Reparams)
			m.Materialize()
			opt := optim.NewAdamW(m.Params(), 0.9, 0.95, 1e-8, 0)
			for _, p := range m.Params() {
				for i := range p.Grad.Data {
					p.Grad.Data[i] = 0.1 * float64(i%3+1)
				}
			}
			require.NoError(t, opt.Update(m.Params(), 1e-1)) // changes the reparam's parameters, not yet W
			dir := t.TempDir()
			require.NoError(t, Save(dir, m, opt, &TrainState{Step: 1}))
			stale := append([]float64(nil), m.Reparams[0].Linear().W.Value.Data...)
			m.Materialize()
			fresh := m.Reparams[0].Linear().W.Value.Data
			require.NotEqual(t, stale, fresh, "the update must change the derived weights")

			m2, err := Load(dir)
			require.NoError(t, err)
			require.InDeltaSlice(t, fresh, m2.Reparams[0].Linear().W.Value.Data, 1e-12)
		})
	}
}
