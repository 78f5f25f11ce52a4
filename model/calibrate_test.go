package model

import (
	"testing"

	"github.com/polyformer/polyformer/model/nn"
	"github.com/stretchr/testify/require"
)

// TestCalibrateTargets: without targets every site is fitted on its
// observed range; a target widens the fitted interval to the hull of both
// (the observed range is kept in Spec.Observed), and a target with a hard
// floor starts the interval exactly at the floor.
func TestCalibrateTargets(t *testing.T) {
	cfg := tinyConfig(t, TaskMNIST)
	m, err := New(cfg)
	require.NoError(t, err)
	b := []Batch{synthBatch(cfg, 16, 1), synthBatch(cfg, 16, 2)}
	fit := nn.DefaultFitOptions()
	require.ErrorContains(t, m.Calibrate(nil, fit, nil), "no batches")
	require.NoError(t, m.Calibrate(b, fit, nil))
	free := map[string]nn.PolySpec{}
	for _, s := range m.Cfg.Poly.Specs {
		free[s.Site] = s
	}
	targets := map[string]Target{}
	for _, s := range m.Sites() {
		switch s.Kind {
		case nn.FnGELU:
			targets[s.Name] = Target{Lo: -50, Hi: 50}
		case nn.FnRecip:
			targets[s.Name] = Target{Lo: cfg.Attention.Eps, Hi: 1e3, Floor: true}
		}
	}
	require.NotEmpty(t, targets)
	require.NoError(t, m.Calibrate(b, fit, targets))
	require.Equal(t, nn.ModeExact, m.Mode())
	for _, s := range m.Cfg.Poly.Specs {
		require.Equal(t, free[s.Site].Observed, s.Observed, "observed ranges are kept")
		switch s.Kind {
		case nn.FnGELU:
			require.Less(t, s.Interval[0], -50.0)
			require.Greater(t, s.Interval[1], 50.0)
		case nn.FnRecip:
			require.Equal(t, cfg.Attention.Eps, s.Interval[0])
			require.Greater(t, s.Interval[1], 1e3)
			require.Greater(t, s.Iterations, free[s.Site].Iterations, "a wider interval needs more iterations")
		}
	}
}

// TestCalibrateFuncStopsAtABadBatch: a batch that cannot be fetched or run
// is reported by index and leaves the model in exact mode.
func TestCalibrateFuncStopsAtABadBatch(t *testing.T) {
	cfg := tinyConfig(t, TaskText)
	m, err := New(cfg)
	require.NoError(t, err)
	err = m.CalibrateFunc(2, func(i int) (Batch, error) {
		if i == 1 {
			return Batch{B: 1, T: 2, Inputs: []int{1, 300}, Targets: []int{1, 2}}, nil
		}
		return synthBatch(cfg, 4, 1), nil
	}, nn.DefaultFitOptions(), nil)
	require.ErrorContains(t, err, "calibrate batch 1")
	require.Equal(t, nn.ModeExact, m.Mode())
	require.Nil(t, m.Cfg.Poly)
}
