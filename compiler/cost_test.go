package compiler

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/checkpoint"
)

var updateCost = flag.Bool("update-cost", false, "rewrite testdata/cost/*.json with the measured dry-run counts")

// costRecord is the recorded dry-run cost of a benchmark checkpoint: totals
// and, per layer, key switches and distinct rotation keys.
type costRecord struct {
	Checkpoint   string             `json:"checkpoint"`
	Preset       string             `json:"preset"`
	KeySwitches  int                `json:"key_switches"`
	Rotations    int                `json:"rotations"`
	Relins       int                `json:"relinearizations"`
	RotationKeys int                `json:"rotation_keys"`
	Bootstraps   int                `json:"bootstraps"`
	Depth        int                `json:"depth"`
	Layers       map[string][2]int  `json:"layers"` // layer -> [key switches, distinct rotation keys]
	Extra        map[string]float64 `json:"extra,omitempty"`
}

// loadCheckpointForCompile loads a checkpoint as `polyformer compile`
// (pipeline.LoadForCompile) does: foldable normalizations folded.
func loadCheckpointForCompile(t *testing.T, dir string) *model.Model {
	t.Helper()
	m, err := checkpoint.Load(dir)
	require.NoError(t, err)
	f, err := FoldNorms(m)
	require.NoError(t, err)
	return f
}

func costOf(t *testing.T, name, dir, preset string) (costRecord, *circuit.Report) {
	t.Helper()
	m := loadCheckpointForCompile(t, dir)
	c, p, err := CompileFor(m, preset, Options{})
	require.NoError(t, err)
	rep, err := circuit.NewReport(c, p)
	require.NoError(t, err)
	rec := costRecord{Checkpoint: name, Preset: p.Name(), KeySwitches: rep.KeySwitches, Rotations: rep.Rotations,
		Relins: rep.Relinearizations, RotationKeys: rep.RotationKeys, Bootstraps: rep.Bootstraps, Depth: rep.Depth,
		Layers: map[string][2]int{}}
	for _, l := range rep.Layers {
		rec.Layers[l.Layer] = [2]int{l.KeySwitches, l.RotationKeys}
	}
	return rec, rep
}

// TestRecordedCosts compiles the benchmark checkpoints (dry run, no keys)
// and checks key switches and distinct rotation keys, in total and per
// layer, against the recorded counts in testdata/cost (rewrite them with
// -update-cost after a layout change, and say so in the commit).
func TestRecordedCosts(t *testing.T) {
	if testing.Short() {
		t.Skip("dry runs at n15/n16")
	}
	cases := []struct{ name, dir, preset string }{
		{"demo", "../cmd/polyformer/demodata", "n15"},
		{"mnist-wn", "../benchmarks/compiler/mnist-wn", "n16"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, rep := costOf(t, tc.name, tc.dir, tc.preset)
			t.Logf("%s at %s: key switches %d (rotations %d, relins %d), rotation keys %d, depth %d",
				tc.name, got.Preset, got.KeySwitches, got.Rotations, got.Relins, got.RotationKeys, got.Depth)
			for _, l := range rep.Layers {
				t.Logf("  %-28s ks %3d keys %2d", l.Layer, l.KeySwitches, l.RotationKeys)
			}
			path := filepath.Join("testdata", "cost", tc.name+".json")
			if *updateCost {
				require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
				b, err := json.MarshalIndent(got, "", "  ")
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(path, append(b, '\n'), 0o644))
			}
			b, err := os.ReadFile(path)
			require.NoError(t, err, "recorded counts (run with -update-cost to record)")
			var want costRecord
			require.NoError(t, json.Unmarshal(b, &want))
			require.Equal(t, want, got)
		})
	}
}

// The replicated stream is cheaper than the layout without it and computes
// the same function (simulator = poly mode in both).
func TestReplicatedStreamCheaper(t *testing.T) {
	m, b := tinyMNIST(t, nil, shallowFit())
	p, err := he.ParametersFromPreset(he.PresetN16) // dry run only
	require.NoError(t, err)
	ks := map[bool]int{}
	for _, no := range []bool{false, true} {
		c, err := Compile(m, CompileOptions{Batch: 4, NoReplicatedStream: no})
		require.NoError(t, err)
		require.Less(t, maxAbsDiff(polyLogits(t, m, b), simLogits(t, c, b, m.Cfg)), 1e-9)
		pc, err := circuit.Plan(c, p, circuit.PlanOptions{})
		require.NoError(t, err)
		rep, err := circuit.NewReport(pc, p)
		require.NoError(t, err)
		ks[no] = rep.KeySwitches
	}
	t.Logf("key switches: replicated %d, not replicated %d", ks[false], ks[true])
	require.Less(t, ks[false], ks[true])
}
