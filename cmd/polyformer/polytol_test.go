package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/model/checkpoint"
	"github.com/polyformer/polyformer/model/nn"
	"github.com/polyformer/polyformer/polyapprox"
)

// TestTrainPolyTol checks that --poly-tol reaches calibration: every
// Chebyshev site of a softmax + LayerNorm + GELU model is fitted at the
// least depth meeting the target (the recorded error meets it, the next
// smaller depth-optimal degree does not), the inverse square root meets
// --poly-rel-tol, and the fit options are stored in the checkpoint.
func TestTrainPolyTol(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "corpus.txt")
	require.NoError(t, os.WriteFile(text, []byte(strings.Repeat("for i := range xs { s += xs[i] }\n", 60)), 0o644))
	out := filepath.Join(dir, "run")
	args := tinyTextArgs(text, out, "3")
	for i, a := range args {
		if a == "--calib-batches" {
			args[i+1] = "2"
		}
	}
	const tol, relTol = 1e-3, 1e-2
	res, err := runCLI(t, append(args, "--attention", "softmax", "--norm", "layernorm",
		"--poly-tol", "1e-3", "--poly-rel-tol", "1e-2", "--poly-degree", "63")...)
	require.NoError(t, err, res)
	m, err := checkpoint.Load(out)
	require.NoError(t, err)
	require.NotNil(t, m.Cfg.Poly)
	require.Equal(t, tol, m.Cfg.Poly.Fit.Tol)
	kinds := map[string]int{}
	for _, s := range m.Cfg.Poly.Specs {
		kinds[s.Kind]++
		switch s.Method {
		case "chebyshev":
			require.Greater(t, s.MaxErr, 0.0, s.Site)
			require.LessOrEqual(t, s.MaxErr, tol, s.Site)
			d := len(s.Coeffs) - 1
			if d > 1 {
				smaller := (d+1)/2 - 1
				exact, err := nn.Exact(s.Kind)
				require.NoError(t, err)
				iv := polyapprox.Interval{A: s.Interval[0], B: s.Interval[1]}
				p, err := polyapprox.Interpolate(exact, iv, smaller)
				require.NoError(t, err)
				e, err := nn.ChebyshevFitError(s.Kind, p)
				require.NoError(t, err)
				require.Greater(t, e, tol, "%s: degree %d already meets the target, %d is not least depth", s.Site, smaller, d)
			}
		case "newton":
			require.LessOrEqual(t, s.MaxErr, relTol, s.Site)
		}
	}
	require.Positive(t, kinds[nn.FnExp])
	require.Positive(t, kinds[nn.FnInvSqrt])
}

// TestTrainAttentionFlags checks that the power-shifted and temperature
// flags reach the saved config, and that invalid combinations are errors
// that name the problem.
func TestTrainAttentionFlags(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "corpus.txt")
	require.NoError(t, os.WriteFile(text, []byte(strings.Repeat("if err != nil { return err }\n", 60)), 0o644))
	out := filepath.Join(dir, "run")
	res, err := runCLI(t, append(tinyTextArgs(text, out, "2"), "--attention", "power-shifted", "--p", "3",
		"--shift-mode", "calibrated", "--shift-margin", "0.5", "--shift-init", "2", "--eps", "0.05",
		"--temperature", "--temperature-scope", "head")...)
	require.NoError(t, err, res)
	m, err := checkpoint.Load(out)
	require.NoError(t, err)
	a := m.Cfg.Attention
	require.Equal(t, "power-shifted", a.Kind)
	require.Equal(t, 3, a.P)
	require.Equal(t, "calibrated", a.ShiftMode)
	require.Equal(t, 0.5, a.ShiftMargin)
	require.NotNil(t, a.ShiftInit)
	require.Equal(t, 2.0, *a.ShiftInit)
	require.Equal(t, 0.05, a.Eps)
	require.Equal(t, "head", a.TemperatureScope)
	require.Equal(t, []int{m.Cfg.Heads, 1}, m.Blocks[0].Attn.Temp.Value.Shape)

	_, err = runCLI(t, append(tinyTextArgs(text, filepath.Join(dir, "bad1"), "1"), "--attention", "power-softmax", "--p", "3")...)
	require.ErrorContains(t, err, "even")
	_, err = runCLI(t, append(tinyTextArgs(text, filepath.Join(dir, "bad2"), "1"), "--attention", "power-softmax", "--shift-mode", "calibrated")...)
	require.ErrorContains(t, err, "power-shifted")
	_, err = runCLI(t, append(tinyTextArgs(text, filepath.Join(dir, "bad3"), "1"), "--temperature-scope", "head")...)
	require.ErrorContains(t, err, "temperature")
}
