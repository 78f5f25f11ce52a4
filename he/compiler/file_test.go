package compiler

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/polyformer/polyformer/he"
	"github.com/stretchr/testify/require"
)

func plannedTiny(t *testing.T) (*Circuit, *he.Parameters) {
	fit := shallowFit()
	fit.Degree = 3
	m, _ := tinyMNIST(t, nil, fit)
	c, err := Compile(m, CompileOptions{Batch: 1})
	require.NoError(t, err)
	p, err := he.ParametersFromPreset(he.PresetTestBootN13)
	require.NoError(t, err)
	pc, err := Plan(c, p, PlanOptions{AllowBootstrap: true, InsecureSecretKeyBootstrap: true})
	require.NoError(t, err)
	return pc, p
}

func TestCircuitFileRoundTrip(t *testing.T) {
	pc, p := plannedTiny(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "c.circuit")
	require.NoError(t, WriteCircuitFile(path, pc, false))
	require.Error(t, WriteCircuitFile(path, pc, false), "existing file")
	back, bp, err := LoadCircuitFile(path)
	require.NoError(t, err)
	require.Equal(t, p.Fingerprint(), bp.Fingerprint())
	require.Equal(t, pc, back)
	// made for other parameters
	var buf bytes.Buffer
	require.NoError(t, WriteCircuit(&buf, pc))
	other, err := he.ParametersFromPreset(he.PresetTestN12)
	require.NoError(t, err)
	_, err = DecodeCircuit(buf.Bytes(), other)
	require.True(t, errors.Is(err, he.ErrFingerprintMismatch), "%v", err)
	_, err = DecodeCircuit(buf.Bytes(), p)
	require.NoError(t, err)
	// corruption is detected
	data := append([]byte(nil), buf.Bytes()...)
	data[len(data)/2] ^= 1
	_, err = DecodeCircuit(data, nil)
	require.Error(t, err)
	_, err = DecodeCircuit(buf.Bytes()[:len(buf.Bytes())-10], nil)
	require.True(t, errors.Is(err, he.ErrTruncated), "%v", err)
	// an unplanned circuit cannot be written
	c2 := *pc
	c2.Planned = nil
	require.Error(t, WriteCircuit(&buf, &c2))
}

func FuzzDecodeCircuit(f *testing.F) {
	// seeds: a valid tiny circuit file, and envelopes around broken payloads
	c := &Circuit{Version: FormatVersion, Task: "mnist",
		Layout: Layout{Tokens: 2, Batch: 1, Block: 2, InputWidth: 1, Outputs: 1, OutputTokens: 1},
		Ops: []Op{{Kind: KindInput, Label: "input"}, {Kind: KindLinear, In: []int{0}, Mat: 0, Label: "l"},
			{Kind: KindRotSum, In: []int{1}, Rot: []int{2}, Label: "s"}, {Kind: KindOutput, In: []int{2}, Label: "output"}},
		Mats: []Matrix{{Name: "m", Blocks: [][]float64{{1, 0, 0, 1}}}},
	}
	p, err := he.ParametersFromPreset(he.PresetTestN12)
	require.NoError(f, err)
	pc, err := Plan(c, p, PlanOptions{})
	require.NoError(f, err)
	var buf bytes.Buffer
	require.NoError(f, WriteCircuit(&buf, pc))
	f.Add(buf.Bytes())
	for _, payload := range []string{`{}`, `{"version":1}`, `{"version":1,"layout":{"tokens":2,"batch":1,"block":2,"input_width":1,"outputs":1,"output_tokens":1},"ops":[{"kind":"input","label":""},{"kind":"output","in":[5],"label":""}]}`,
		`{"version":1,"layout":{"tokens":1073741824,"batch":1,"block":1073741824,"input_width":1,"outputs":1,"output_tokens":1}}`} {
		var b bytes.Buffer
		require.NoError(f, he.WriteEnvelope(&b, he.KindCircuit, p.Fingerprint(), p.Name(), []byte(payload)))
		f.Add(b.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeCircuit(data, nil)
		if err != nil {
			return
		}
		// a decoded circuit is safe to simulate
		in := make([]float64, c.Layout.Slots())
		_, _, _ = c.Simulate(in, SimOptions{})
	})
}
