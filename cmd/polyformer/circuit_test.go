package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/checkpoint"
	"github.com/polyformer/polyformer/model/nn"
	"github.com/polyformer/polyformer/pipeline"
	"github.com/polyformer/polyformer/service/client"
)

// tinyCheckpoint saves an untrained, calibrated MNIST-shaped model small and
// shallow enough for the insecure test-n13 preset.
func tinyCheckpoint(t *testing.T, dir string) {
	t.Helper()
	c, err := model.DefaultConfig(model.TaskMNIST)
	require.NoError(t, err)
	c.Width, c.Depth, c.Heads, c.Hidden, c.Activation = 8, 1, 2, 16, nn.ActReLU
	c.Attention = model.AttentionConfig{Kind: model.AttnPowerFixed, P: 2} // no encrypted division: shallow enough for test-n13
	m, err := model.New(c)
	require.NoError(t, err)
	_, test, err := pipeline.LoadMNIST("")
	require.NoError(t, err)
	cal := test.Subset(64)
	fit := nn.DefaultFitOptions()
	fit.Degree = 7
	require.NoError(t, m.Calibrate([]model.Batch{{B: cal.N, Pixels: cal.Pixels, Targets: cal.Labels}}, fit, nil))
	require.NoError(t, checkpoint.Save(dir, m, nil, nil))
}

// TestCircuitPipelineCLI runs compile, keygen, infer and bench layers
// through the CLI and checks that encrypted predictions equal the
// plaintext ones and that bad inputs are clear errors.
func TestCircuitPipelineCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("encrypted pipeline")
	}
	dir := t.TempDir()
	ckpt, circ, keys := filepath.Join(dir, "ckpt"), filepath.Join(dir, "m.circuit"), filepath.Join(dir, "keys")
	tinyCheckpoint(t, ckpt)

	out, err := runCLI(t, "compile", ckpt, "--out", circ, "--preset", "test-n13")
	require.ErrorContains(t, err, "--insecure", "an insecure preset needs --insecure")
	out, err = runCLI(t, "compile", ckpt, "--out", circ, "--preset", "test-n13", "--insecure", "--batch", "2")
	require.NoError(t, err, out)
	require.Contains(t, out, "key switches")
	_, err = runCLI(t, "compile", ckpt, "--out", circ, "--preset", "test-n13", "--insecure")
	require.ErrorContains(t, err, "exists", "an existing circuit is not overwritten silently")
	require.Contains(t, out, "latency estimate (one thread)", "the dry run prices the circuit with the built-in table")
	out, err = runCLI(t, "compile", ckpt, "--out", circ, "--preset", "test-n13", "--insecure", "--batch", "2", "--force",
		"--op-timings", "../../benchmarks/ops/n15.json", "--json")
	require.NoError(t, err, out)
	require.Contains(t, out, `"latency_estimate_seconds"`)
	require.Contains(t, out, "benchmarks/ops/n15.json (bench ops rows at logN 15 level 16")
	_, err = runCLI(t, "compile", ckpt, "--out", circ, "--preset", "test-n13", "--insecure", "--force", "--op-timings", filepath.Join(dir, "none.json"))
	require.ErrorContains(t, err, "op timings")

	// The circuit carries insecure test parameters: every client command refuses them
	// without --insecure, before any key exists.
	_, err = runCLI(t, "keygen", circ, "--out", keys)
	require.ErrorIs(t, err, he.ErrInsecureParameters)
	require.ErrorContains(t, err, "128")
	_, statErr := os.Stat(keys)
	require.True(t, os.IsNotExist(statErr), "no key directory before the checks pass")
	out, err = runCLI(t, "keygen", circ, "--out", keys, "--insecure", "--max-key-bytes", "1000")
	require.ErrorIs(t, err, circuit.ErrKeyBudget, out)
	out, err = runCLI(t, "keygen", circ, "--out", keys, "--insecure")
	require.NoError(t, err, out)
	require.Contains(t, out, "evaluation keys (1 relinearization", "the budget is printed before generation")
	_, err = runCLI(t, "infer", circ, "--keys", keys, "--mnist", "2")
	require.ErrorIs(t, err, he.ErrInsecureParameters)
	_, err = runCLI(t, "bench", "layers", circ, "--keys", keys, "--mnist", "2")
	require.ErrorIs(t, err, he.ErrInsecureParameters)
	st, err := os.Stat(filepath.Join(keys, client.SecretKeyFile))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "the secret key is private")

	out, err = runCLI(t, "infer", circ, "--keys", keys, "--mnist", "2", "--insecure")
	require.NoError(t, err, out)
	require.Contains(t, out, "encrypted = plaintext prediction on 2 of 2", out)

	out, err = runCLI(t, "bench", "layers", circ, "--keys", keys, "--mnist", "2", "--insecure", "--json", "--png", filepath.Join(dir, "layers.png"))
	require.NoError(t, err, out)
	var rep map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.NotEmpty(t, rep["layers"])
	_, err = os.Stat(filepath.Join(dir, "layers.png"))
	require.NoError(t, err)

	// Bad input: missing keys, missing data, wrong input kind, keys made for other parameters, garbage circuit.
	_, err = runCLI(t, "infer", circ, "--keys", filepath.Join(dir, "nokeys"), "--mnist", "1", "--insecure")
	require.ErrorContains(t, err, "polyformer keygen")
	noData := filepath.Join(dir, "no-mnist")
	_, err = runCLI(t, "infer", circ, "--keys", keys, "--mnist", "1", "--data", noData, "--insecure")
	require.ErrorContains(t, err, noData)
	require.ErrorContains(t, err, "--data DIR")
	_, err = runCLI(t, "infer", circ, "--keys", keys, "--text", "hello", "--insecure")
	require.ErrorContains(t, err, "image classifier")
	bad := filepath.Join(dir, "bad.circuit")
	require.NoError(t, os.WriteFile(bad, []byte("not a circuit"), 0o644))
	_, err = runCLI(t, "keygen", bad, "--out", filepath.Join(dir, "k2"), "--insecure")
	require.Error(t, err)

	// Keys that lack the circuit's rotations, and keys made for other parameters.
	_, p, err := circuit.LoadCircuitFile(circ)
	require.NoError(t, err)
	writeKeys := func(name string, p *he.Parameters, spec he.KeySpec) string {
		kd := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(kd, 0o700))
		sk, evk, err := he.GenerateKeys(p, spec)
		require.NoError(t, err)
		require.NoError(t, he.WriteSecretKeyFile(filepath.Join(kd, client.SecretKeyFile), sk, false))
		require.NoError(t, he.WriteEvaluationKeysFile(filepath.Join(kd, client.EvalKeysFile), evk, false))
		return kd
	}
	_, err = runCLI(t, "infer", circ, "--keys", writeKeys("norot", p, he.KeySpec{Relinearization: true}), "--mnist", "1", "--insecure")
	require.ErrorContains(t, err, "do not cover")
	p12, err := he.ParametersFromPreset(he.PresetTestN12)
	require.NoError(t, err)
	_, err = runCLI(t, "infer", circ, "--keys", writeKeys("n12", p12, he.KeySpec{}), "--mnist", "1", "--insecure")
	require.ErrorContains(t, err, "fingerprint")
}

// TestPrintPredictionsPerPosition checks that byte-LM logits (positions ×
// outputs per input) are compared position by position.
func TestPrintPredictionsPerPosition(t *testing.T) {
	c := &circuit.Circuit{Task: model.TaskText, Layout: circuit.Layout{Tokens: 2, Batch: 1, Block: 4, InputWidth: 4, Outputs: 3, OutputTokens: 2}}
	run := pipeline.NewResult(c, &circuit.Report{}, [][]float64{{0, 5, 1, 9, 0, 1}}, [][]float64{{0, 4, 1, 0, 0, 1}}, nil)
	var out strings.Builder
	require.NoError(t, printPredictions(&out, run))
	// position 0: argmax 1 = 1; position 1: 0 vs 2 disagree.
	require.Contains(t, out.String(), "encrypted = plaintext prediction on 1 of 2")
}
