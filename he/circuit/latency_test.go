package circuit

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/he"
)

// roundTimings is a table in round numbers at test-n12's ring degree and top
// level (logN 12, level 8, one special prime), so that only the level
// scaling applies: key switches by (l+2)² / 100, the rest by (l+1) / 9.
// One hoisted rotation is (36-8)/7 = 4 and the decomposition 8-4 = 4.
func roundTimings() OpTimings {
	return OpTimings{Source: "round", LogN: 12, Level: 8, PCount: 1,
		Add: 1, MulPlain: 2, MulRelin: 10, Rescale: 3, Rotate: 8, RotateHoisted8: 36, Encode: 5,
		Bootstrap: 100, BootstrapLogN: 16}
}

// forkCircuit rotates its input by 1 and 2 (hoisted together when group >
// 0), adds the copies, squares the sum and outputs it.
func forkCircuit(group int) *Circuit {
	L := Layout{Tokens: 2, Batch: 2, Block: 8, InputWidth: 8, Outputs: 8, OutputTokens: 2}
	ops := []Op{{Kind: KindInput, Label: "input", Ref: -1}}
	add := func(op Op) int {
		op.Ref = -1
		ops = append(ops, op)
		return len(ops) - 1
	}
	a := add(Op{Kind: KindRotate, In: []int{0}, Rot: []int{1}, Group: group, Label: "rot"})
	b := add(Op{Kind: KindRotate, In: []int{0}, Rot: []int{2}, Group: group, Label: "rot"})
	s := add(Op{Kind: KindAdd, In: []int{a, b}, Label: "sum"})
	sq := add(Op{Kind: KindMul, In: []int{s, s}, Label: "square"})
	add(Op{Kind: KindOutput, In: []int{sq}, Label: "output"})
	return &Circuit{Version: FormatVersion, Task: "mnist", Layout: L, Ops: ops}
}

// TestEstimateLatencyHandSums checks the model on a small circuit against
// sums computed by hand: at level 1 (the plan's input level: one
// multiplication) a rotation costs 8·9/100 = 0.72, an addition 1·2/9, the
// square 10·9/100 + 3·2/9; two hoisted rotations 0.09·(4+4) + 0.09·4.
func TestEstimateLatencyHandSums(t *testing.T) {
	p, err := he.ParametersFromPreset(he.PresetTestN12)
	require.NoError(t, err)
	for _, tc := range []struct {
		name             string
		group            int
		serial, critical float64
	}{
		// two rotations on parallel branches: the critical path holds one
		{"separate", 0, 0.72 + 0.72 + 2.0/9 + 0.9 + 6.0/9, 0.72 + 2.0/9 + 0.9 + 6.0/9},
		// one hoisting group: one task, serial = critical path
		{"hoisted", 1, 0.72 + 0.36 + 2.0/9 + 0.9 + 6.0/9, 0.72 + 0.36 + 2.0/9 + 0.9 + 6.0/9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Plan(forkCircuit(tc.group), p, PlanOptions{})
			require.NoError(t, err)
			require.Equal(t, []int{1, 1, 1, 1, 0, 0}, c.Planned.Levels, "the hand sums assume these levels")
			l, err := EstimateLatency(c, p, roundTimings())
			require.NoError(t, err)
			require.InDelta(t, tc.serial, l.Serial, 1e-12)
			require.InDelta(t, tc.critical, l.CriticalPath, 1e-12)
			require.InDelta(t, tc.serial/2, l.PerInput, 1e-12, "2 inputs per ciphertext")
			require.InDelta(t, 2.0/9+6.0/9, l.Other, 1e-12, "the addition and the rescale")
			require.Zero(t, l.Bootstrapping)
			require.InDelta(t, math.Max(tc.critical, tc.serial/4), l.Bound(4), 1e-12)
			require.Equal(t, "round", l.Source)
		})
	}
}

// TestEstimateLatencyScaling checks the ring-degree and level scaling of
// a key switch, a bootstrap and a plain op against hand values.
func TestEstimateLatencyScaling(t *testing.T) {
	pr := pricer{t: roundTimings(), ring: 2 * 13.0 / 12, pCount: 3}
	// n13-like target with 3 special primes at level 5: (6+3)·(2+1) = 27 vs
	// the table's (9+1)·(9+1) = 100
	require.InDelta(t, 8*2*13.0/12*27/100, pr.ks(8, 5), 1e-12)
	require.InDelta(t, 1*2*13.0/12*6/9, pr.lin(1, 5), 1e-12)
	require.InDelta(t, 1*2*13.0/12*9/10, pr.linQP(1, 5), 1e-12)
	require.Equal(t, 100.0, keySwitchWork(8, 1))
	require.Equal(t, 140.0, keySwitchWork(16, 3), "n15 at the top: 20 limbs, 6 digits")
}

// TestEstimateLatencyBootstraps prices the bootstraps of a planned chain:
// each is Bootstrap scaled by N log N from logN 16 to 13.
func TestEstimateLatencyBootstraps(t *testing.T) {
	p, err := he.ParametersFromPreset(he.PresetTestBootN13)
	require.NoError(t, err)
	c, err := Plan(goldschmidtCircuit(3), p, PlanOptions{AllowBootstrap: true, InsecureSecretKeyBootstrap: true})
	require.NoError(t, err)
	require.Positive(t, c.Planned.Bootstraps)
	tm := roundTimings()
	l, err := EstimateLatency(c, p, tm)
	require.NoError(t, err)
	want := float64(c.Planned.Bootstraps) * 100 * (8192 * 13) / (65536 * 16)
	require.InDelta(t, want, l.Bootstrapping, 1e-9)
	require.InDelta(t, l.Serial, l.KeySwitching+l.Bootstrapping+l.Other, 1e-9)
	require.LessOrEqual(t, l.CriticalPath, l.Serial+1e-9)
}

// TestDefaultOpTimingsAreTheRecordedRun checks that the built-in table is
// what ParseOpTimings reads from the recorded bench ops run, plus the
// default bootstrap, and that a measured bootstrap row replaces it.
func TestDefaultOpTimingsAreTheRecordedRun(t *testing.T) {
	b, err := os.ReadFile("../../benchmarks/ops/n15.json")
	require.NoError(t, err)
	got, err := ParseOpTimings(b)
	require.NoError(t, err)
	want := DefaultOpTimings()
	got.Source, want.Source = "", ""
	require.Equal(t, want, got)

	var rows []he.OpBenchmark
	require.NoError(t, json.Unmarshal(b, &rows))
	rows = append(rows, he.OpBenchmark{Op: "bootstrap", MedianSeconds: 31.5, Runs: 1, LogN: 16, LevelIn: 9})
	b2, err := json.Marshal(rows)
	require.NoError(t, err)
	got, err = ParseOpTimings(b2)
	require.NoError(t, err)
	require.Equal(t, 31.5, got.Bootstrap)
	require.Equal(t, 16, got.BootstrapLogN)
	require.Contains(t, got.Source, "bootstrap measured")
}

func TestParseOpTimingsErrors(t *testing.T) {
	_, err := ParseOpTimings([]byte(`[{"op":"add","median_seconds":0.01,"runs":5,"logn":15,"level_in":16}]`))
	require.ErrorContains(t, err, `no measured "mul_plain" row`)
	_, err = ParseOpTimings([]byte(`{`))
	require.ErrorContains(t, err, "parse bench ops rows")
	rows := `[{"op":"add","median_seconds":0.01,"runs":5,"logn":15,"level_in":16},
{"op":"mul_plain","median_seconds":0.01,"runs":5,"logn":16,"level_in":24}]`
	_, err = ParseOpTimings([]byte(rows))
	require.ErrorContains(t, err, `row "mul_plain" measured at logN 16 level 24`)
	_, err = ReadOpTimings("/nonexistent/ops.json")
	require.ErrorContains(t, err, "op timings")
	bad := roundTimings()
	bad.Rotate = 0
	p, err := he.ParametersFromPreset(he.PresetTestN12)
	require.NoError(t, err)
	c, err := Plan(forkCircuit(0), p, PlanOptions{})
	require.NoError(t, err)
	_, err = EstimateLatency(c, p, bad)
	require.ErrorContains(t, err, "primitive time is 0")
	_, err = EstimateLatency(forkCircuit(0), p, roundTimings())
	require.ErrorContains(t, err, "not planned")
}

// TestEstimateLatencyLinear checks the pricing of a BSGS transform on its
// own input: one decomposition, its baby steps hoisted, its giant steps
// key-switched, per diagonal a product in Q·P (MulPlain + Add without a
// linear_transform_64 row) and an encoding, and a rescale.
func TestEstimateLatencyLinear(t *testing.T) {
	p, err := he.ParametersFromPreset(he.PresetTestN12)
	require.NoError(t, err)
	L := Layout{Tokens: 2, Batch: 2, Block: 8, InputWidth: 8, Outputs: 8, OutputTokens: 2}
	m := make([]float64, 64)
	for i := range m {
		m[i] = float64(i%5) - 2
	}
	c := &Circuit{Version: FormatVersion, Task: "mnist", Layout: L, Mats: []Matrix{{Name: "w", Blocks: [][]float64{m}}},
		Ops: []Op{{Kind: KindInput, Label: "input", Ref: -1}, {Kind: KindLinear, In: []int{0}, Mat: 0, Label: "lin", Ref: -1},
			{Kind: KindOutput, In: []int{1}, Label: "output", Ref: -1}}}
	pc, err := Plan(c, p, PlanOptions{})
	require.NoError(t, err)
	require.Equal(t, 1, pc.Planned.Levels[0])
	lts, err := pc.transforms(p)
	require.NoError(t, err)
	lt := lts[0]
	nb, ng, nd := float64(len(lt.BabySteps())), float64(len(lt.GiantSteps())), float64(len(lt.Diagonals()))
	require.Positive(t, nb*ng)
	l, err := EstimateLatency(pc, p, roundTimings())
	require.NoError(t, err)
	// level 1: key switch ×9/100; Q·P limbs 3 of the table's 10; Q limbs 2 of 9
	ks := 0.09 * (4 + 4*nb + 8*ng)
	other := nd*(2+1)*3/10 + nd*5*3/9 + 3*2.0/9
	require.InDelta(t, ks, l.KeySwitching, 1e-12)
	require.InDelta(t, other, l.Other, 1e-12)
}

// TestEstimateFromCounts: key switches as rotations at the middle level,
// bootstraps at the table's price scaled to the ring.
func TestEstimateFromCounts(t *testing.T) {
	p, err := he.ParametersFromPreset(he.PresetTestN12)
	require.NoError(t, err)
	l, err := EstimateFromCounts(10, 2, 4, p, roundTimings())
	require.NoError(t, err)
	// level 4 of 8, one special prime: (5+1)² / 100 of 8 s per key switch
	require.InDelta(t, 10*8*0.36, l.KeySwitching, 1e-12)
	require.InDelta(t, 2*100*(4096*12)/(65536*16.0), l.Bootstrapping, 1e-12)
	require.InDelta(t, (l.KeySwitching+l.Bootstrapping)/4, l.PerInput, 1e-12)
	require.Zero(t, l.Other)
	require.Zero(t, l.CriticalPath)
	_, err = EstimateFromCounts(-1, 0, 1, p, roundTimings())
	require.ErrorContains(t, err, "-1 key switches")
}
