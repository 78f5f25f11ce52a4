package compiler

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/he/circuit"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/golden-circuits.json with the current circuits and simulator outputs")

// goldenRecord pins a recorded checkpoint's compiled circuit bit for bit: the
// SHA-256 of its circuit file (ops, constants, polynomials, levels, keys,
// parameters) and of the simulator's output bits on fixed inputs. Since the
// encrypted executor runs exactly the ops of the file, an unchanged circuit
// file means an unchanged encrypted computation; the simulator hash pins
// the float64 twin.
type goldenRecord struct {
	Preset     string `json:"preset"`
	Ops        int    `json:"ops"`
	CircuitSHA string `json:"circuit_sha256"`
	SimSHA     string `json:"simulator_sha256"`
}

// TestRecordedCircuitsUnchanged is the refactoring guard: the recorded
// benchmark checkpoints compile to byte-identical circuit files, and the
// simulator gives bit-identical outputs, before and after a change that is
// meant to keep behaviour. A deliberate layout change rewrites the record
// with -update-golden and says so in its commit.
func TestRecordedCircuitsUnchanged(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the benchmark checkpoints")
	}
	cases := []struct {
		name, dir, preset string
		boot              bool
	}{
		{"demo", "../cmd/polyformer/demodata", "n15", false},
		{"mnist-small", "../benchmarks/compiler/mnist-small", "n16", false},
		{"mnist-wn", "../benchmarks/compiler/mnist-wn", "n16", false},
		{"lm2", "../benchmarks/compiler/lm2", "n16-boot", true},
	}
	path := filepath.Join("testdata", "golden-circuits.json")
	want := map[string]goldenRecord{}
	if !*updateGolden {
		b, err := os.ReadFile(path)
		require.NoError(t, err, "recorded circuits (run with -update-golden to record)")
		require.NoError(t, json.Unmarshal(b, &want))
	}
	got := map[string]goldenRecord{}
	for _, tc := range cases {
		m := loadCheckpointForCompile(t, tc.dir)
		c, p, err := CompileFor(m, tc.preset, Options{AllowBootstrap: tc.boot})
		require.NoError(t, err, tc.name)
		var buf bytes.Buffer
		require.NoError(t, circuit.WriteCircuitFor(&buf, c, p), tc.name)
		cs := sha256.Sum256(buf.Bytes())

		h := sha256.New()
		rng := rand.New(rand.NewPCG(1, uint64(len(tc.name))))
		for k := 0; k < 2; k++ {
			in := make([]float64, c.Layout.Slots())
			for i := range in {
				in[i] = rng.Float64()*2 - 1
			}
			out, _, err := c.Simulate(in, circuit.SimOptions{})
			require.NoError(t, err, tc.name)
			var b [8]byte
			for _, v := range out {
				binary.LittleEndian.PutUint64(b[:], math.Float64bits(v))
				h.Write(b[:])
			}
		}
		got[tc.name] = goldenRecord{Preset: p.Name(), Ops: len(c.Ops),
			CircuitSHA: hex.EncodeToString(cs[:]), SimSHA: hex.EncodeToString(h.Sum(nil))}
		if !*updateGolden {
			require.Equal(t, want[tc.name], got[tc.name], "%s: the compiled circuit or the simulator output changed", tc.name)
		}
	}
	if *updateGolden {
		b, err := json.MarshalIndent(got, "", "  ")
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, append(b, '\n'), 0o644))
	}
}
