package compiler

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/nn"
	"github.com/stretchr/testify/require"
)

// shallowFit keeps tiny circuits within the insecure test presets' levels.
func shallowFit() nn.FitOptions {
	fit := nn.DefaultFitOptions()
	fit.Degree = 7
	fit.InitDegree = 3
	fit.RelTol = 2e-2
	fit.UpperFactor = 1
	return fit
}

// encryptedRun plans c for preset, generates exactly the planned keys,
// benches the images of b and checks encrypted == simulated (within tol)
// and simulated == poly mode; it returns the report.
func encryptedRun(t *testing.T, m *model.Model, c *circuit.Circuit, b model.Batch, preset string, opt circuit.PlanOptions, tol float64) *circuit.Report {
	t.Helper()
	p, err := he.ParametersFromPreset(preset)
	require.NoError(t, err)
	pc, err := circuit.Plan(c, p, opt)
	require.NoError(t, err)
	spec := pc.Planned.Keys.KeySpec() // each key at its level
	spec.Bootstrapping = false        // the secret-key test bootstrapper needs none
	sk, evk, err := he.GenerateKeys(p, spec)
	require.NoError(t, err)
	client, err := he.NewClient(p, sk)
	require.NoError(t, err)
	eo := circuit.ExecOptions{Chunk: 1, Trace: he.NewTrace()} // one ciphertext at a time: exercises chunking
	if pc.Planned.Bootstraps > 0 {
		eo.Bootstrapper, err = he.NewSecretKeyBootstrapper(p, sk)
		require.NoError(t, err)
	}
	vecs, err := pc.EncodeImages(b.Pixels, b.B, m.Cfg.ImageRows, m.Cfg.ImageCols)
	require.NoError(t, err)
	rep, dec, err := circuit.Bench(pc, p, evk, client, vecs, eo)
	require.NoError(t, err)
	got, err := pc.DecodeLogits(dec, b.B)
	require.NoError(t, err)
	want := polyLogits(t, m, b)
	sim := simLogits(t, pc, b, m.Cfg)
	require.Less(t, maxAbsDiff(want, sim), 1e-9, "simulator vs poly mode")
	e := maxAbsDiff(sim, got)
	require.InDelta(t, rep.MaxLogitErr, e, 1e-12)
	t.Logf("%s: max |encrypted - simulated| logit error %.3g (predicted 2^%.1f), bootstraps %d, key switches %d",
		preset, e, rep.PredictedLog2Err, pc.Planned.Bootstraps, rep.KeySwitches)
	require.Less(t, e, tol)
	require.Less(t, math.Log2(e), rep.PredictedLog2Err, "the dry run's precision prediction holds")
	checkTraceKeyLevels(t, pc, p, eo.Trace)
	for _, l := range rep.Layers {
		require.False(t, math.IsNaN(l.Log2Err), "layer %s has no error measurement", l.Layer)
		require.Less(t, l.Log2Err, math.Log2(tol)+10, "layer %s", l.Layer)
	}
	return rep
}

func TestEncryptedMatchesSimulator(t *testing.T) {
	m, b := tinyMNIST(t, func(c *model.Config) {
		c.Attention.P = 2
		c.Attention.Eps = 0.5
		c.Activation = nn.ActQuad
	}, shallowFit())
	c, err := Compile(m, CompileOptions{Batch: 2})
	require.NoError(t, err)
	rep := encryptedRun(t, m, c, b, he.PresetTestN13, circuit.PlanOptions{}, 1e-5)
	require.Zero(t, rep.Bootstraps)
	// the dry run counted what the trace measured
	for _, l := range rep.Layers {
		require.Equal(t, l.KeySwitches*2, l.MeasuredKeySwitches, "layer %s (2 ciphertexts)", l.Layer)
	}
	var buf bytes.Buffer
	require.NoError(t, rep.WriteTable(&buf))
	require.Contains(t, buf.String(), "blocks.0.attn.qkv")
	buf.Reset()
	require.NoError(t, rep.WriteJSON(&buf))
	var back map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &back))
	require.Equal(t, float64(rep.KeySwitches), back["key_switches"])
	buf.Reset()
	require.NoError(t, rep.WriteCSV(&buf))
	require.Equal(t, len(rep.Layers)+1, strings.Count(buf.String(), "\n"))
	// the unpacked layout of docs/design.md §3 (one diagonal per ciphertext) is correct too, and costlier
	cu, err := Compile(m, CompileOptions{Batch: 2, OneDiagonalPerCiphertext: true})
	require.NoError(t, err)
	repU := encryptedRun(t, m, cu, b, he.PresetTestN13, circuit.PlanOptions{}, 1e-5)
	require.Greater(t, repU.KeySwitches, rep.KeySwitches)
}

// Deep variants (norms, GELU, p = 4, two blocks) run on the bootstrapping
// test preset: 2 levels after each bootstrap, with the insecure secret-key
// bootstrapper.
func TestEncryptedVariantsWithBootstrapping(t *testing.T) {
	cases := map[string]func(c *model.Config){
		"layernorm-gelu-p4": func(c *model.Config) {
			c.Norm = "layernorm"
		},
		"softmax-poly-act": func(c *model.Config) {
			c.Attention = model.AttentionConfig{Kind: model.AttnSoftmax}
			c.Activation, c.PolyActDegree = nn.ActPoly, 3
		},
		"rmsnorm-powerfixed-relu-2blocks-temp": func(c *model.Config) {
			c.Norm = "rmsnorm"
			c.Attention = model.AttentionConfig{Kind: model.AttnPowerFixed, P: 2, Temperature: true}
			c.Activation = nn.ActReLU
			c.Depth = 2
		},
	}
	fit := shallowFit()
	fit.Degree = 3 // depth 2: what one bootstrap leaves
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			m, b := tinyMNIST(t, mod, fit)
			c, err := Compile(m, CompileOptions{Batch: 4})
			require.NoError(t, err)
			p, err := he.ParametersFromPreset(he.PresetTestBootN13)
			require.NoError(t, err)
			_, err = circuit.Plan(c, p, circuit.PlanOptions{})
			var le *circuit.LevelError
			require.True(t, errors.As(err, &le), "%v", err)
			require.Greater(t, le.Needed, le.Available)
			require.Contains(t, err.Error(), "allow bootstrapping")
			rep := encryptedRun(t, m, c, b, he.PresetTestBootN13, circuit.PlanOptions{AllowBootstrap: true, InsecureSecretKeyBootstrap: true}, 1e-4)
			require.Greater(t, rep.Bootstraps, 0)
		})
	}
}

// Byte LM with 2 blocks: encrypted next-byte logits equal the simulator's
// within the predicted precision (times a safety factor), and the
// simulator equals poly mode.
func TestEncryptedByteLM(t *testing.T) {
	m, b := tinyText(t, func(c *model.Config) {
		c.Attention.P = 2
		c.Attention.Eps = 0.5
		c.Activation = nn.ActQuad
		c.Depth = 2
	}, shallowFit())
	c, err := Compile(m, CompileOptions{Batch: 1})
	require.NoError(t, err)
	p, err := he.ParametersFromPreset(he.PresetTestBootN13)
	require.NoError(t, err)
	pc, err := circuit.Plan(c, p, circuit.PlanOptions{AllowBootstrap: true, InsecureSecretKeyBootstrap: true})
	require.NoError(t, err)
	sk, evk, err := he.GenerateKeys(p, he.KeySpec{Relinearization: true, Rotations: pc.Planned.Keys.Rotations})
	require.NoError(t, err)
	client, err := he.NewClient(p, sk)
	require.NoError(t, err)
	btp, err := he.NewSecretKeyBootstrapper(p, sk)
	require.NoError(t, err)
	_, err = circuit.NewExecutor(pc, p, evk, circuit.ExecOptions{})
	require.ErrorContains(t, err, "secret-key test bootstrapper")
	vecs, err := pc.EncodeBytes(b.Inputs, b.B, b.T)
	require.NoError(t, err)
	rep, dec, err := circuit.Bench(pc, p, evk, client, vecs, circuit.ExecOptions{Bootstrapper: btp})
	require.NoError(t, err)
	got, err := pc.DecodeLogits(dec, b.B)
	require.NoError(t, err)
	require.NoError(t, m.SetMode(nn.ModePoly))
	lg, err := m.Logits(b)
	require.NoError(t, err)
	require.NoError(t, m.SetMode(nn.ModeExact))
	worst := 0.0
	for i := range got {
		for j, v := range got[i] {
			worst = math.Max(worst, math.Abs(v-lg.Data[i*len(got[i])+j]))
		}
	}
	t.Logf("LM: max |encrypted - poly mode| %.3g, predicted 2^%.1f, bootstraps %d, key switches %d", worst, rep.PredictedLog2Err, rep.Bootstraps, rep.KeySwitches)
	require.Less(t, math.Log2(worst), rep.PredictedLog2Err, "the dry run's precision prediction holds")
}

func TestBadInputs(t *testing.T) {
	fit := shallowFit()
	m, b := tinyMNIST(t, func(c *model.Config) { c.Attention.P = 2; c.Attention.Eps = 0.5; c.Activation = nn.ActQuad }, fit)
	c, err := Compile(m, CompileOptions{Batch: 2})
	require.NoError(t, err)
	// wrong image shape
	_, err = c.EncodeImages(b.Pixels, b.B, 8, 12)
	require.ErrorContains(t, err, "patches")
	_, err = c.EncodeImages(b.Pixels[:10], b.B, 8, 8)
	require.Error(t, err)
	_, err = c.EncodeBytes([]int{1, 2}, 1, 2)
	require.ErrorContains(t, err, "task")
	// batch that is not a power of two; too many tokens for the slots
	_, err = Compile(m, CompileOptions{Batch: 3})
	require.Error(t, err)
	p12, err := he.ParametersFromPreset(he.PresetTestN12)
	require.NoError(t, err)
	big, err := Compile(m, CompileOptions{Batch: 64})
	require.NoError(t, err)
	_, err = circuit.Plan(big, p12, circuit.PlanOptions{})
	require.ErrorContains(t, err, "slots")
	_, err = circuit.Plan(c, p12, circuit.PlanOptions{AllowBootstrap: true})
	require.ErrorContains(t, err, "no bootstrapping")
	// keys for other parameters, missing keys
	p13, err := he.ParametersFromPreset(he.PresetTestN13)
	require.NoError(t, err)
	pc, err := circuit.Plan(c, p13, circuit.PlanOptions{})
	require.NoError(t, err)
	_, evk12, err := he.GenerateKeys(p12, he.KeySpec{Relinearization: true})
	require.NoError(t, err)
	_, err = circuit.NewExecutor(pc, p12, evk12, circuit.ExecOptions{})
	require.True(t, errors.Is(err, he.ErrFingerprintMismatch), "%v", err)
	_, evk, err := he.GenerateKeys(p13, he.KeySpec{Relinearization: true, Rotations: pc.Planned.Keys.Rotations[1:]})
	require.NoError(t, err)
	_, err = circuit.NewExecutor(pc, p13, evk, circuit.ExecOptions{})
	require.ErrorContains(t, err, "rotation keys are missing")
	_, evk, err = he.GenerateKeys(p13, he.KeySpec{Rotations: pc.Planned.Keys.Rotations})
	require.NoError(t, err)
	_, err = circuit.NewExecutor(pc, p13, evk, circuit.ExecOptions{})
	require.ErrorContains(t, err, "relinearization key is missing")
	// uncalibrated model
	cfg := m.Cfg
	cfg.Poly = nil
	raw, err := model.New(cfg)
	require.NoError(t, err)
	_, err = Compile(raw, CompileOptions{})
	require.ErrorContains(t, err, "calibrate")
}

// A real bootstrapper (he.NewBootstrapper with fixed bootstrapping keys) on
// test-boot-n13, which leaves one usable level per bootstrap: a model whose
// ops all have depth 1 (power attention p = 2, no activation polynomial).
func TestEncryptedRealBootstrapping(t *testing.T) {
	if testing.Short() {
		t.Skip("real bootstrapping keys and bootstraps take about a minute")
	}
	m, b := tinyMNIST(t, func(c *model.Config) {
		c.Attention = model.AttentionConfig{Kind: model.AttnPowerFixed, P: 2}
		c.Activation = nn.ActNone
	}, shallowFit())
	c, err := Compile(m, CompileOptions{Batch: 4})
	require.NoError(t, err)
	p, err := he.ParametersFromPreset(he.PresetTestBootN13)
	require.NoError(t, err)
	pc, err := circuit.Plan(c, p, circuit.PlanOptions{AllowBootstrap: true})
	require.NoError(t, err)
	require.True(t, pc.Planned.Keys.Bootstrapping)
	sk, evk, err := he.GenerateKeys(p, pc.Planned.Keys.KeySpec())
	require.NoError(t, err)
	client, err := he.NewClient(p, sk)
	require.NoError(t, err)
	vecs, err := pc.EncodeImages(b.Pixels, b.B, m.Cfg.ImageRows, m.Cfg.ImageCols)
	require.NoError(t, err)
	rep, dec, err := circuit.Bench(pc, p, evk, client, vecs, circuit.ExecOptions{})
	require.NoError(t, err)
	got, err := pc.DecodeLogits(dec, b.B)
	require.NoError(t, err)
	want := polyLogits(t, m, b)
	e := maxAbsDiff(want, got)
	t.Logf("real bootstrapping: %d bootstraps, max |encrypted - poly mode| %.3g (predicted 2^%.1f)", pc.Planned.Bootstraps, e, rep.PredictedLog2Err)
	require.Greater(t, pc.Planned.Bootstraps, 0)
	require.Less(t, math.Log2(e), rep.PredictedLog2Err, "the dry run's precision prediction holds")
	require.Less(t, rep.PredictedLog2Err-math.Log2(e), 4.0, "the prediction is not more than 4 bits pessimistic")
}
