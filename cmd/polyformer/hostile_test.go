package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/compiler"
	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model/checkpoint"
)

// TestSpoofedPresetCircuitRefused: a circuit that claims preset n15 but
// carries test parameters (logN=13) is refused by keygen, infer and bench
// layers without --insecure, before any key is generated or read.
func TestSpoofedPresetCircuitRefused(t *testing.T) {
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "ckpt")
	tinyCheckpoint(t, ckpt)
	m, err := checkpoint.Load(ckpt)
	require.NoError(t, err)
	c, err := compiler.Compile(m, compiler.CompileOptions{Batch: 1})
	require.NoError(t, err)
	test, err := he.LookupPreset(he.PresetTestN13)
	require.NoError(t, err)
	test.Name = he.PresetN15
	p, err := he.NewParameters(test)
	require.NoError(t, err)
	pc, err := circuit.Plan(c, p, circuit.PlanOptions{})
	require.NoError(t, err)
	circ := filepath.Join(dir, "spoof.circuit")
	require.NoError(t, circuit.WriteCircuitFileFor(circ, pc, p, false))

	keys := filepath.Join(dir, "keys")
	for _, args := range [][]string{
		{"keygen", circ, "--out", keys},
		{"keygen", circ, "--dry-run"},
		{"infer", circ, "--keys", keys, "--mnist", "1"},
		{"bench", "layers", circ, "--keys", keys, "--mnist", "1"},
	} {
		out, err := runCLI(t, args...)
		require.ErrorIs(t, err, he.ErrInsecureParameters, "%v: %s", args, out)
		require.Contains(t, err.Error(), `"n15"`)
		require.Contains(t, err.Error(), "logN=13")
		require.NotContains(t, err.Error(), "\n")
	}
	require.NoDirExists(t, keys)
	// With --insecure the lie in the name is still refused.
	_, err = runCLI(t, "keygen", circ, "--out", keys, "--insecure")
	require.ErrorIs(t, err, he.ErrFingerprintMismatch)
	require.NoDirExists(t, keys)
}

// TestCompileHostileCheckpoint: a checkpoint with a NaN or huge weight or an
// absurd width is refused by compile with a one-line error naming the
// tensor or field, not an "internal error" nor a hint about bootstrapping.
func TestCompileHostileCheckpoint(t *testing.T) {
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "ckpt")
	tinyCheckpoint(t, ckpt)
	m, err := checkpoint.Load(ckpt)
	require.NoError(t, err)
	name := m.Params()[4].Name
	for _, v := range []float64{math.NaN(), 1e300} {
		bad := filepath.Join(dir, fmt.Sprintf("bad-%g", v))
		require.NoError(t, os.MkdirAll(bad, 0o755))
		m.Params()[4].Value.Data[0] = v
		require.NoError(t, checkpoint.Save(bad, m, nil, nil))
		_, err := runCLI(t, "compile", bad, "--out", filepath.Join(dir, "c"), "--preset", "test-n13", "--insecure")
		require.Error(t, err)
		require.Contains(t, err.Error(), "tensor "+name+": entry 0 is")
		require.NotContains(t, err.Error(), "internal error")
		require.NotContains(t, err.Error(), "allow-bootstrap")
		require.NotContains(t, err.Error(), "\n")
	}
	cfg := filepath.Join(ckpt, checkpoint.ConfigFile)
	b, err := os.ReadFile(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(cfg, []byte(strings.Replace(string(b), `"width": 8,`, `"width": 16777216,`, 1)), 0o644))
	_, err = runCLI(t, "compile", ckpt, "--out", filepath.Join(dir, "c"))
	require.ErrorContains(t, err, "width = 16777216 exceeds the limit 4096")
	require.NotContains(t, err.Error(), "\n")
}
