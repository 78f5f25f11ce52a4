package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
)

// TestRerenderFromRecordedCounts re-renders a recorded frontier.json: a
// compiled row gets the counts estimate, a failed one keeps its error, and
// the table and the three plots are written.
func TestRerenderFromRecordedCounts(t *testing.T) {
	dir := t.TempDir()
	rows := []Point{
		{Label: "base", Task: "text", Attention: "softmax", Exact: 3.4, PolyError: "range", CompileError: "no polynomial forms", Preset: "n16-boot"},
		{Label: "a", Task: "text", Attention: "power-shifted", P: 4, Exact: 3.8, Poly: 3.8, PolyOK: true, Preset: "n16-boot", Batch: 1, KeySwitches: 1400, Bootstraps: 23},
		{Label: "b", Task: "text", Attention: "power-softmax", P: 4, Exact: 4.0, Poly: 4.0, PolyOK: true, Preset: "n16-boot", Batch: 1, KeySwitches: 1350, Bootstraps: 10},
	}
	b, err := json.Marshal(rows)
	require.NoError(t, err)
	from := filepath.Join(dir, "recorded.json")
	require.NoError(t, os.WriteFile(from, b, 0o644))
	out := filepath.Join(dir, "out")
	require.NoError(t, rerender(out, from, circuit.DefaultOpTimings(), io.Discard))

	var got []Point
	b, err = os.ReadFile(filepath.Join(out, "frontier.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &got))
	p, err := he.ParametersFromPreset("n16-boot")
	require.NoError(t, err)
	want, err := circuit.EstimateFromCounts(1400, 23, 1, p, circuit.DefaultOpTimings())
	require.NoError(t, err)
	require.Equal(t, want.Serial, got[1].SecondsPerCiphertext)
	require.Equal(t, "recorded counts", got[1].SecondsFrom)
	require.Zero(t, got[0].SecondsPerCiphertext, "no circuit, no estimate")
	require.False(t, got[0].PolyOK)
	for _, f := range []string{"frontier.md", "bpb-vs-depth.png", "bpb-vs-keyswitches.png", "bpb-vs-seconds.png"} {
		_, err := os.Stat(filepath.Join(out, f))
		require.NoError(t, err, f)
	}
	md, err := os.ReadFile(filepath.Join(out, "frontier.md"))
	require.NoError(t, err)
	require.Contains(t, string(md), "s / ciphertext (est.)")
	require.Contains(t, string(md), "from recorded counts")

	require.ErrorContains(t, rerender(out, filepath.Join(dir, "none.json"), circuit.DefaultOpTimings(), io.Discard), "none.json")
}
