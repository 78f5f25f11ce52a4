package compiler

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/nn"
	"github.com/stretchr/testify/require"
)

func plannedLeveled(t *testing.T, preset string) (*circuit.Circuit, *he.Parameters) {
	t.Helper()
	m, _ := tinyMNIST(t, func(c *model.Config) {
		c.Attention.P = 2
		c.Attention.Eps = 0.5
		c.Activation = nn.ActQuad
	}, shallowFit())
	c, err := Compile(m, CompileOptions{Batch: 2})
	require.NoError(t, err)
	p, err := he.ParametersFromPreset(preset)
	require.NoError(t, err)
	pc, err := circuit.Plan(c, p, circuit.PlanOptions{})
	require.NoError(t, err)
	return pc, p
}

// The key spec and the dry run recomputed from the public description
// equal the full circuit's, and the description holds no weight.
func TestPublicCircuitKeySpec(t *testing.T) {
	c, p := plannedLeveled(t, he.PresetTestN13)
	checkPublicKeySpec(t, c, p)
	c, p = plannedTiny(t) // with bootstraps
	checkPublicKeySpec(t, c, p)
}

func checkPublicKeySpec(t *testing.T, c *circuit.Circuit, p *he.Parameters) {
	pub, err := c.Public()
	require.NoError(t, err)
	data, err := json.Marshal(pub)
	require.NoError(t, err)
	dec, err := circuit.DecodePublicCircuit(bytes.NewReader(data))
	require.NoError(t, err)

	k, err := dec.KeyNeeds(p)
	require.NoError(t, err)
	want, err := c.KeyNeeds(p)
	require.NoError(t, err)
	require.Equal(t, want, k)
	require.Equal(t, c.Planned.Keys, k)

	sk, err := dec.Skeleton()
	require.NoError(t, err)
	r1, err := circuit.NewReport(c, p)
	require.NoError(t, err)
	r2, err := circuit.NewReport(sk, p)
	require.NoError(t, err)
	require.Equal(t, r1.KeyBytes, r2.KeyBytes)
	require.Equal(t, r1.KeySwitches, r2.KeySwitches)
	require.Equal(t, r1.RotationAmounts, r2.RotationAmounts)
	require.Equal(t, r1.Depth, r2.Depth)

	// No weight value appears in the description.
	require.NotContains(t, string(data), `"blocks":`)
	require.NotContains(t, string(data), `"coeffs":`)
	for _, m := range c.Mats {
		for _, b := range m.Blocks {
			for _, v := range b[:8] {
				if v != 0 && v != 1 {
					s, _ := json.Marshal(v)
					require.NotContains(t, string(data), string(s))
				}
			}
		}
	}
}

func TestPublicCircuitRejectsHostile(t *testing.T) {
	c, _ := plannedLeveled(t, he.PresetTestN13)
	pub, err := c.Public()
	require.NoError(t, err)
	mutate := func(f func(pc *circuit.PublicCircuit)) string {
		data, _ := json.Marshal(pub)
		var cp circuit.PublicCircuit
		require.NoError(t, json.Unmarshal(data, &cp))
		f(&cp)
		data, _ = json.Marshal(cp)
		_, err := circuit.DecodePublicCircuit(bytes.NewReader(data))
		require.Error(t, err)
		return err.Error()
	}
	require.Contains(t, mutate(func(pc *circuit.PublicCircuit) { pc.Mats[0].Diagonals = []int{3, 1} }), "diagonal")
	require.Contains(t, mutate(func(pc *circuit.PublicCircuit) { pc.Mats[0].Diagonals = make([]int, 1<<12) }), "diagonals")
	require.Contains(t, mutate(func(pc *circuit.PublicCircuit) { pc.Vecs = 1 << 30 }), "limits")
	require.Contains(t, mutate(func(pc *circuit.PublicCircuit) { pc.Ops[1].In = []int{5} }), "earlier")
	require.Contains(t, mutate(func(pc *circuit.PublicCircuit) { pc.Planned = nil }), "not planned")
	require.Contains(t, mutate(func(pc *circuit.PublicCircuit) { pc.Layout.Block = 3 }), "power")
	_, err = circuit.DecodePublicCircuit(strings.NewReader(`{"version":1} {}`))
	require.Error(t, err)
	_, err = circuit.DecodePublicCircuit(strings.NewReader(`{"version":1,"extra":2}`))
	require.Error(t, err)
}

func FuzzDecodePublicCircuit(f *testing.F) {
	f.Add([]byte(`{"version":1,"task":"mnist","layout":{"tokens":4,"batch":1,"block":16,"input_width":16,"outputs":3,"output_tokens":1},"ops":[{"kind":"input","label":"in","ref":-1},{"kind":"output","in":[0],"label":"out","ref":-1}],"mats":[],"vecs":0,"planned":{"preset":"test-n12","fingerprint":"00","levels":[1,1],"keys":{"relinearization":false,"rotations":null,"bootstrapping":false}}}`))
	f.Add([]byte(`{"mats":[{"diagonals":[-1,0,1]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		pc, err := circuit.DecodePublicCircuit(bytes.NewReader(data))
		if err == nil {
			_, err = pc.Skeleton()
			require.NoError(t, err)
		}
	})
}
