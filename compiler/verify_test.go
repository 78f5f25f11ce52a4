package compiler

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/nn"
)

// smallCircuit is a planned 4-op circuit at p (a linear layer and a rotation sum).
func smallCircuit(t testing.TB, p *he.Parameters) *circuit.Circuit {
	c := &circuit.Circuit{Version: circuit.FormatVersion, Task: "mnist",
		Layout: circuit.Layout{Tokens: 2, Batch: 1, Block: 2, InputWidth: 1, Outputs: 1, OutputTokens: 1},
		Ops: []circuit.Op{{Kind: circuit.KindInput, Label: "input"}, {Kind: circuit.KindLinear, In: []int{0}, Mat: 0, Label: "l"},
			{Kind: circuit.KindMul, In: []int{1, 1}, Label: "sq"},
			{Kind: circuit.KindRotSum, In: []int{2}, Rot: []int{2}, Label: "s"}, {Kind: circuit.KindOutput, In: []int{3}, Label: "output"}},
		Mats: []circuit.Matrix{{Name: "m", Blocks: [][]float64{{1, 2, 3, 1}}}},
	}
	pc, err := circuit.Plan(c, p, circuit.PlanOptions{})
	require.NoError(t, err)
	return pc
}

func TestVerifyCircuitSecurity(t *testing.T) {
	p, err := he.ParametersFromPreset(he.PresetTestN12)
	require.NoError(t, err)
	c := smallCircuit(t, p)
	_, err = circuit.VerifyCircuit(c, p, circuit.ClientPolicy{})
	require.ErrorIs(t, err, he.ErrInsecureParameters)
	b, err := circuit.VerifyCircuit(c, p, circuit.ClientPolicy{AllowInsecure: true})
	require.NoError(t, err)
	require.True(t, b.Relinearization)
	require.Equal(t, len(c.Planned.Keys.Rotations), b.RotationKeys)
	require.Equal(t, b.RotationKeys+1, b.Keys)
	require.Greater(t, b.KeyBytes, uint64(0))
	require.Equal(t, circuit.DefaultMaxKeyBytes, b.MaxKeyBytes)
	require.Contains(t, b.String(), "evaluation keys")

	s, err := he.ParametersFromPreset(he.PresetN14)
	require.NoError(t, err)
	b, err = circuit.VerifyCircuit(smallCircuit(t, s), s, circuit.ClientPolicy{})
	require.NoError(t, err, "a secure preset needs no flag")
	require.GreaterOrEqual(t, b.Security.EstimatedBits, 128.0)
}

// TestSpoofedPresetNameRefused: a circuit whose parameters are test
// parameters named after the secure preset n15 (as a hostile server would
// send) is refused from its parameters, through the file.
func TestSpoofedPresetNameRefused(t *testing.T) {
	test, err := he.LookupPreset(he.PresetTestN13)
	require.NoError(t, err)
	test.Name = he.PresetN15
	p, err := he.NewParameters(test)
	require.NoError(t, err)
	c := smallCircuit(t, p)
	path := filepath.Join(t.TempDir(), "spoof.circuit")
	require.NoError(t, circuit.WriteCircuitFileFor(path, c, p, false))
	lc, lp, err := circuit.LoadCircuitFile(path)
	require.NoError(t, err)
	require.Equal(t, he.PresetN15, lp.Name())
	require.Equal(t, 13, lp.LogN(), "the parameters are the file's, not the named preset's")
	_, err = circuit.VerifyCircuit(lc, lp, circuit.ClientPolicy{})
	require.ErrorIs(t, err, he.ErrInsecureParameters)
	require.Contains(t, err.Error(), `"n15"`)
	require.Contains(t, err.Error(), "logN=13")
	// Even with --insecure the name must not lie.
	_, err = circuit.VerifyCircuit(lc, lp, circuit.ClientPolicy{AllowInsecure: true})
	require.ErrorIs(t, err, he.ErrFingerprintMismatch)
	require.Contains(t, err.Error(), "parameters.name")
}

func TestVerifyCircuitKeySpec(t *testing.T) {
	p, err := he.ParametersFromPreset(he.PresetTestN12)
	require.NoError(t, err)
	pol := circuit.ClientPolicy{AllowInsecure: true}
	tamper := func(mod func(c *circuit.Circuit)) error {
		c := smallCircuit(t, p)
		pl := *c.Planned
		pl.Keys.Rotations = append([]int(nil), pl.Keys.Rotations...)
		pl.Levels = append([]int(nil), pl.Levels...)
		c.Planned = &pl
		mod(c)
		_, err := circuit.VerifyCircuit(c, p, pol)
		return err
	}
	// 4095 Galois elements the ops never use (the 64 GB key list).
	err = tamper(func(c *circuit.Circuit) {
		c.Planned.Keys.Rotations = nil
		for r := 1; r < p.Slots(); r++ {
			c.Planned.Keys.Rotations = append(c.Planned.Keys.Rotations, r)
		}
	})
	require.ErrorIs(t, err, circuit.ErrKeySpec)
	require.Contains(t, err.Error(), "no op uses")
	require.NotContains(t, err.Error(), "\n")
	err = tamper(func(c *circuit.Circuit) { c.Planned.Keys.Rotations = c.Planned.Keys.Rotations[1:] })
	require.ErrorIs(t, err, circuit.ErrKeySpec)
	require.Contains(t, err.Error(), "missing")
	err = tamper(func(c *circuit.Circuit) { c.Planned.Keys.Relinearization = false })
	require.ErrorIs(t, err, circuit.ErrKeySpec)
	err = tamper(func(c *circuit.Circuit) { c.Planned.Keys.Bootstrapping = true })
	require.ErrorIs(t, err, circuit.ErrKeySpec)
	// levels that do not follow from the ops
	err = tamper(func(c *circuit.Circuit) { c.Planned.Levels[2]++ })
	require.ErrorContains(t, err, "plan.levels[2]")
	err = tamper(func(c *circuit.Circuit) { c.Planned.InputLevel = p.MaxLevel() + 1 })
	require.ErrorContains(t, err, "plan.input_level")
	// key budget
	_, err = circuit.VerifyCircuit(smallCircuit(t, p), p, circuit.ClientPolicy{AllowInsecure: true, MaxKeyBytes: 1000})
	require.ErrorIs(t, err, circuit.ErrKeyBudget)
	require.Contains(t, err.Error(), "--max-key-bytes")
}

func TestVerifyCircuitCompiled(t *testing.T) {
	// a real compiled, leveled circuit (drop_level and match_scale ops included)
	m, _ := tinyMNIST(t, func(c *model.Config) {
		c.Attention.P = 2
		c.Attention.Eps = 0.5
		c.Activation = nn.ActQuad
	}, shallowFit())
	c, err := Compile(m, CompileOptions{Batch: 2})
	require.NoError(t, err)
	p, err := he.ParametersFromPreset(he.PresetTestN13)
	require.NoError(t, err)
	pc, err := circuit.Plan(c, p, circuit.PlanOptions{})
	require.NoError(t, err)
	_, err = circuit.VerifyCircuit(pc, p, circuit.ClientPolicy{AllowInsecure: true})
	require.NoError(t, err)

	// a bootstrapped plan for the secret-key test bootstrapper: insecure only
	bc, bp := plannedTiny(t)
	_, err = circuit.VerifyCircuit(bc, bp, circuit.ClientPolicy{})
	require.ErrorIs(t, err, he.ErrInsecureParameters)
	b, err := circuit.VerifyCircuit(bc, bp, circuit.ClientPolicy{AllowInsecure: true})
	require.NoError(t, err)
	require.Greater(t, b.BootstrappingKeys, 0)
}

func TestDecodeCircuitHostile(t *testing.T) {
	p, err := he.ParametersFromPreset(he.PresetTestN12)
	require.NoError(t, err)
	c := smallCircuit(t, p)
	params, err := he.MarshalParametersJSON(p)
	require.NoError(t, err)
	wrapPayload := func(payload string) []byte {
		var b bytes.Buffer
		require.NoError(t, he.WriteEnvelope(&b, he.FileCircuit, p.Fingerprint(), p.Name(), []byte(payload)))
		return b.Bytes()
	}
	head := `{"format":"polyformer-circuit-v2","parameters":` + string(params) + `,"circuit":`
	layout := `{"version":1,"layout":{"tokens":2,"batch":1,"block":2,"input_width":1,"outputs":1,"output_tokens":1}`
	cases := map[string]struct {
		payload string
		want    string
	}{
		"huge layout":      {head + `{"version":1,"layout":{"tokens":1073741824,"batch":1,"block":1073741824,"input_width":1,"outputs":1,"output_tokens":1}}}`, "layout.tokens: 1073741824 tokens exceeds the limit 4096"},
		"block":            {head + `{"version":1,"layout":{"tokens":2,"batch":1,"block":4096,"input_width":1,"outputs":1,"output_tokens":1}}}`, "layout.block: 4096 channels exceeds the limit 1024"},
		"ops before":       {head + `{"version":1,"ops":[]}}`, "comes before circuit.layout"},
		"oversized matrix": {head + layout + `,"mats":[{"name":"m","blocks":[[` + repeatNum(100) + `]]}]}}`, "circuit.mats[0]: 102 entries exceeds the limit"},
		"oversized vector": {head + layout + `,"vecs":[[` + repeatNum(10) + `]]}}`, "circuit.vecs[0]: 11 entries exceeds the limit 4"},
		"NaN-like weight":  {head + layout + `,"mats":[{"name":"m","blocks":[[1e300,0,0,1]]}]}}`, "beyond the limit"},
		"old format":       {`{"version":1,"task":"mnist"}`, "older build"},
		"unknown field":    {head + layout + `,"evil":1}}`, `unknown field "evil"`},
		"duplicate field":  {head + layout + `,"layout":{}}}`, `"layout" twice`},
		"trailing":         {head + layout + `}} {}`, "data after the circuit"},
		"huge op":          {head + layout + `,"ops":[{"kind":"input","label":"` + string(bytes.Repeat([]byte("x"), 70000)) + `"}]}}`, "circuit.ops[0]: more than 65536 bytes"},
	}
	for name, tc := range cases {
		_, err := circuit.DecodeCircuit(wrapPayload(tc.payload), nil)
		require.Error(t, err, name)
		require.Contains(t, err.Error(), tc.want, name)
		require.NotContains(t, err.Error(), "\n", name)
	}
	// a header declaring more than the cap is refused before any body byte is read
	var b bytes.Buffer
	ew, err := he.NewEnvelopeWriter(&b, he.FileCircuit, p.Fingerprint(), p.Name(), circuit.MaxCircuitPayload+1)
	require.NoError(t, err)
	_ = ew
	_, err = circuit.DecodeCircuit(b.Bytes(), nil)
	require.ErrorIs(t, err, he.ErrTooLarge)
	// truncations of a valid file
	var good bytes.Buffer
	require.NoError(t, circuit.WriteCircuit(&good, c))
	for _, n := range []int{0, 7, 44, 60, good.Len() / 2, good.Len() - 33, good.Len() - 1} {
		_, err := circuit.DecodeCircuit(good.Bytes()[:n], nil)
		require.Error(t, err, n)
		require.True(t, errors.Is(err, he.ErrTruncated) || errors.Is(err, he.ErrMalformed), "%d: %v", n, err)
	}
	back, bp, err := circuit.DecodeCircuitAndParameters(good.Bytes(), nil)
	require.NoError(t, err)
	require.Equal(t, c, back)
	require.Equal(t, p.Fingerprint(), bp.Fingerprint())
}

func repeatNum(n int) string {
	var b bytes.Buffer
	for i := 0; i <= n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('0')
	}
	return b.String()
}
