package compiler

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/stretchr/testify/require"
)

func plannedTiny(t *testing.T) (*circuit.Circuit, *he.Parameters) {
	fit := shallowFit()
	fit.Degree = 3
	m, _ := tinyMNIST(t, nil, fit)
	c, err := Compile(m, CompileOptions{Batch: 1})
	require.NoError(t, err)
	p, err := he.ParametersFromPreset(he.PresetTestBootN13)
	require.NoError(t, err)
	pc, err := circuit.Plan(c, p, circuit.PlanOptions{AllowBootstrap: true, InsecureSecretKeyBootstrap: true})
	require.NoError(t, err)
	return pc, p
}

func TestCircuitFileRoundTrip(t *testing.T) {
	pc, p := plannedTiny(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "c.circuit")
	require.NoError(t, circuit.WriteCircuitFile(path, pc, false))
	require.Error(t, circuit.WriteCircuitFile(path, pc, false), "existing file")
	back, bp, err := circuit.LoadCircuitFile(path)
	require.NoError(t, err)
	require.Equal(t, p.Fingerprint(), bp.Fingerprint())
	require.Equal(t, pc, back)
	// made for other parameters
	var buf bytes.Buffer
	require.NoError(t, circuit.WriteCircuit(&buf, pc))
	other, err := he.ParametersFromPreset(he.PresetTestN12)
	require.NoError(t, err)
	_, err = circuit.DecodeCircuit(buf.Bytes(), other)
	require.True(t, errors.Is(err, he.ErrFingerprintMismatch), "%v", err)
	_, err = circuit.DecodeCircuit(buf.Bytes(), p)
	require.NoError(t, err)
	// corruption is detected
	data := append([]byte(nil), buf.Bytes()...)
	data[len(data)/2] ^= 1
	_, err = circuit.DecodeCircuit(data, nil)
	require.Error(t, err)
	_, err = circuit.DecodeCircuit(buf.Bytes()[:len(buf.Bytes())-10], nil)
	require.True(t, errors.Is(err, he.ErrTruncated), "%v", err)
	// an unplanned circuit cannot be written
	c2 := *pc
	c2.Planned = nil
	require.Error(t, circuit.WriteCircuit(&buf, &c2))
}

// fuzzCircuitFile is a valid file of the 5-op circuit at test-n12, its
// parameters and their JSON.
func fuzzCircuitFile(t testing.TB) ([]byte, *he.Parameters, string) {
	p, err := he.ParametersFromPreset(he.PresetTestN12)
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, circuit.WriteCircuit(&buf, smallCircuit(t, p)))
	params, err := he.MarshalParametersJSON(p)
	require.NoError(t, err)
	return buf.Bytes(), p, string(params)
}

// circuitPayloadOf returns the payload of a circuit file (header and checksum stripped).
func circuitPayloadOf(file []byte) []byte {
	if len(file) < 45 {
		return nil
	}
	off := 45 + int(file[44]) + 8
	if off > len(file)-32 {
		return nil
	}
	return file[off : len(file)-32]
}

// FuzzDecodeCircuit follows docs/fuzzing.md: with wrap, data is a payload
// sealed into a valid circuit envelope (right kind, fingerprint, checksum),
// so mutations reach the JSON decoder; without, data is a whole file.
// Properties: no panic; an accepted circuit re-encodes to the same bytes,
// passes Validate and is safe to simulate.
func FuzzDecodeCircuit(f *testing.F) {
	file, p, params := fuzzCircuitFile(f)
	f.Add(file, false)
	pl := circuitPayloadOf(file)
	f.Add(pl, true)
	for _, n := range []int{0, 7, 8, 44, 60, len(file) / 2, len(file) - 33, len(file) - 1} {
		f.Add(file[:n], false)
	}
	for _, n := range []int{0, 1, 20, len(pl) / 3, len(pl) - 1} {
		f.Add(pl[:n], true)
	}
	head := `{"format":"polyformer-circuit-v2","parameters":` + params + `,"circuit":`
	for _, payload := range []string{`{}`, `{"version":1}`, head + `{}}`, head + `{"version":1}}`,
		head + `{"version":1,"layout":{"tokens":2,"batch":1,"block":2,"input_width":1,"outputs":1,"output_tokens":1},"ops":[{"kind":"input","label":""},{"kind":"output","in":[5],"label":""}]}}`,
		head + `{"version":1,"layout":{"tokens":1073741824,"batch":1,"block":1073741824,"input_width":1,"outputs":1,"output_tokens":1}}}`,
		head + `{"version":1,"layout":{"tokens":2,"batch":1,"block":2,"input_width":1,"outputs":1,"output_tokens":1},"mats":[{"name":"m","blocks":[[1,0,0,1,5]]}]}}`} {
		f.Add([]byte(payload), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, wrap bool) {
		if wrap {
			var b bytes.Buffer
			if err := he.WriteEnvelope(&b, he.FileCircuit, p.Fingerprint(), p.Name(), data); err != nil {
				return
			}
			data = b.Bytes()
		}
		c, cp, err := circuit.DecodeCircuitAndParameters(data, nil)
		if err != nil {
			return
		}
		require.NoError(t, c.Validate())
		var out bytes.Buffer
		require.NoError(t, circuit.WriteCircuitFor(&out, c, cp))
		back, _, err := circuit.DecodeCircuitAndParameters(out.Bytes(), nil)
		require.NoError(t, err)
		require.Equal(t, c, back)
		in := make([]float64, c.Layout.Slots())
		_, _, _ = c.Simulate(in, circuit.SimOptions{})
	})
}

// TestDecodeCircuitMutations runs the circuit decoder on a few thousand
// deterministic mutations of valid files and payloads (a short fuzz run
// that CI's plain `go test` executes): no panic, errors are one line.
func TestDecodeCircuitMutations(t *testing.T) {
	file, p, _ := fuzzCircuitFile(t)
	pl := circuitPayloadOf(file)
	r := rand.New(rand.NewPCG(12, 34))
	n := 3000
	if testing.Short() {
		n = 300
	}
	for i := 0; i < n; i++ {
		wrap := i%2 == 0
		src := file
		if wrap {
			src = pl
		}
		data := mutate(r, src)
		if wrap {
			var b bytes.Buffer
			require.NoError(t, he.WriteEnvelope(&b, he.FileCircuit, p.Fingerprint(), p.Name(), data))
			data = b.Bytes()
		}
		_, _, err := circuit.DecodeCircuitAndParameters(data, nil)
		if err != nil {
			require.NotContains(t, err.Error(), "\n", "mutation %d", i)
		}
	}
}

// mutate applies 1-4 random byte edits (flip, insert, delete, digit
// substitution, truncation) to a copy of src.
func mutate(r *rand.Rand, src []byte) []byte {
	b := append([]byte(nil), src...)
	for k := 1 + r.IntN(4); k > 0 && len(b) > 0; k-- {
		i := r.IntN(len(b))
		switch r.IntN(5) {
		case 0:
			b[i] ^= byte(1 << r.IntN(8))
		case 1:
			b = append(b[:i], append([]byte{"0123456789,[]{}\"-e."[r.IntN(17)]}, b[i:]...)...)
		case 2:
			b = append(b[:i], b[i+1:]...)
		case 3:
			b[i] = "0123456789"[r.IntN(10)]
		case 4:
			b = b[:i]
		}
	}
	return b
}
