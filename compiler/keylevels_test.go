package compiler

import (
	"strconv"
	"testing"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/nn"
	"github.com/stretchr/testify/require"
)

// checkTraceKeyLevels: the level of every key in the key spec is exactly the
// highest level at which the executor used it (from the trace's key uses),
// and the executor used no key the spec lacks.
func checkTraceKeyLevels(t *testing.T, pc *circuit.Circuit, p *he.Parameters, tr *he.Trace) {
	t.Helper()
	k := pc.Planned.Keys
	require.NotNil(t, k.Levels)
	used := map[uint64]int{}
	for _, r := range tr.Records() {
		for _, u := range r.KeyUses {
			if l, ok := used[u.GaloisElement]; !ok || u.Level > l {
				used[u.GaloisElement] = u.Level
			}
		}
	}
	want := map[uint64]int{}
	if k.Relinearization {
		want[0] = k.Levels.Relinearization
	}
	for i, r := range k.Rotations {
		want[p.GaloisElement(r)] = k.Levels.Rotations[i]
	}
	require.Equal(t, want, used, "key levels in the spec (element 0: relinearization) vs the levels the executor used them at")
}

func tinyLeveledCircuit(t *testing.T) (*circuit.Circuit, *he.Parameters, model.Batch, *model.Model) {
	t.Helper()
	m, b := tinyMNIST(t, func(c *model.Config) {
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
	return pc, p, b, m
}

// TestKeyLevelsRecorded: the plan records a level per key, below the top
// for keys used low in the circuit, and the keys generated from the spec
// have exactly those levels.
func TestKeyLevelsRecorded(t *testing.T) {
	pc, p, _, _ := tinyLeveledCircuit(t)
	k := pc.Planned.Keys
	require.NotNil(t, k.Levels)
	require.Len(t, k.Levels.Rotations, len(k.Rotations))
	below := 0
	for _, l := range k.Levels.Rotations {
		require.LessOrEqual(t, l, pc.Planned.InputLevel)
		if l < p.MaxLevel() {
			below++
		}
	}
	require.Positive(t, below)
	require.True(t, k.Relinearization)
	require.Less(t, k.Levels.Relinearization, pc.Planned.InputLevel)

	// the report's bytes come from these levels: less than top-level keys,
	// and the file (seeded) about half the memory
	rep, err := circuit.NewReport(pc, p)
	require.NoError(t, err)
	kb := rep.KeyBytes
	require.Less(t, kb.Memory, kb.TopLevelMemory)
	require.Less(t, kb.Total, kb.Memory/2+int64(len(k.Rotations)+1)*64)
	require.Len(t, kb.Keys, len(k.Rotations)+1)
	var sum int64
	for _, e := range kb.Keys {
		sum += e.FileBytes
	}
	require.Equal(t, kb.Total, sum)
	b, err := circuit.VerifyCircuit(pc, p, circuit.ClientPolicy{AllowInsecure: true})
	require.NoError(t, err)
	require.Equal(t, uint64(kb.Total), b.KeyBytes)

	_, evk, err := he.GenerateKeys(p, k.KeySpec())
	require.NoError(t, err)
	require.Equal(t, uint64(kb.Total), evk.SizeBytes()-5, "the report's file bytes are the key file's payload (less its 5-byte header)")
	l, ok := evk.RelinearizationKeyLevel()
	require.True(t, ok)
	require.Equal(t, k.Levels.Relinearization, l)
	for i, r := range k.Rotations {
		l, ok := evk.GaloisKeyLevel(p.GaloisElement(r))
		require.True(t, ok)
		require.Equal(t, k.Levels.Rotations[i], l, "rotation %d", r)
	}
}

// TestExecutorRefusesLowKeys: keys below the level where the circuit uses
// them are refused before evaluating, with an error naming the key, its
// level and the use level.
func TestExecutorRefusesLowKeys(t *testing.T) {
	pc, p, _, _ := tinyLeveledCircuit(t)
	k := pc.Planned.Keys
	spec := k.KeySpec()
	// the highest-level rotation key, one level lower
	hi := 0
	for i, l := range spec.Levels.Rotations {
		if l > spec.Levels.Rotations[hi] {
			hi = i
		}
	}
	spec.Levels.Rotations[hi]--
	spec.Levels.Relinearization--
	_, evk, err := he.GenerateKeys(p, spec)
	require.NoError(t, err)
	_, err = circuit.NewExecutor(pc, p, evk, circuit.ExecOptions{})
	require.ErrorIs(t, err, he.ErrKeyLevel)
	require.ErrorContains(t, err, "the relinearization key is at level")
	r := k.Rotations[hi]
	require.ErrorContains(t, err, "the key for rotation "+itoa(r)+" (Galois element "+utoa(p.GaloisElement(r))+") is at level "+
		itoa(k.Levels.Rotations[hi]-1)+", the circuit uses it at level "+itoa(k.Levels.Rotations[hi]))
	require.NotContains(t, err.Error(), "\n")

	// keys at the top level (no levels in the spec: circuits of earlier builds) are fine
	top := k.KeySpec()
	top.Levels = nil
	_, evkTop, err := he.GenerateKeys(p, top)
	require.NoError(t, err)
	_, err = circuit.NewExecutor(pc, p, evkTop, circuit.ExecOptions{})
	require.NoError(t, err)

	// a spec whose levels differ from the ops' is refused by VerifyCircuit
	bad := *pc
	pl := *pc.Planned
	bad.Planned = &pl
	lv := *k.Levels
	lv.Rotations = append([]int(nil), k.Levels.Rotations...)
	lv.Rotations[hi]--
	pl.Keys.Levels = &lv
	_, err = circuit.VerifyCircuit(&bad, p, circuit.ClientPolicy{AllowInsecure: true})
	require.ErrorIs(t, err, circuit.ErrKeySpec)
	require.ErrorContains(t, err, "rotation key "+itoa(r)+" at level "+itoa(k.Levels.Rotations[hi]-1)+", the ops use it at level "+itoa(k.Levels.Rotations[hi]))
	// and a spec without levels (earlier build) is accepted
	pl.Keys.Levels = nil
	_, err = circuit.VerifyCircuit(&bad, p, circuit.ClientPolicy{AllowInsecure: true})
	require.NoError(t, err)
}

func itoa(n int) string    { return strconv.Itoa(n) }
func utoa(n uint64) string { return strconv.FormatUint(n, 10) }
