package compiler

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/polyapprox"
)

// simulateOps lowers plan on the op-graph builder from the input op of a
// one-token circuit (one slot per point of xs) and returns the simulated
// output and the ops.
func simulateOps(t *testing.T, plan func(polyapprox.Builder[int], int) int, xs []float64) ([]float64, []circuit.Op) {
	t.Helper()
	c := &circuit.Circuit{Version: circuit.FormatVersion,
		Layout: circuit.Layout{Tokens: 1, Batch: 1, Block: len(xs), InputWidth: 1, Outputs: 1, OutputTokens: 1}}
	b := &builder{c: c}
	in := b.op(circuit.Op{Kind: circuit.KindInput})
	out := plan(opBuilder{b: b, Label: "plan"}, in)
	b.op(circuit.Op{Kind: circuit.KindOutput, In: []int{out}})
	got, _, err := c.Simulate(xs, circuit.SimOptions{})
	require.NoError(t, err)
	return got, c.Ops[:len(c.Ops)-1]
}

// Each plan is evaluated through the three builders: the float64 twin
// (polyapprox.Float), the op graph (opBuilder, simulated in float64: bit
// for bit the twin) and the ciphertexts of he (within CKKS precision).
func TestPlanStepsThroughAllBuilders(t *testing.T) {
	p, err := he.ParametersFromPreset(he.PresetTestN13)
	require.NoError(t, err)
	sk, evk, err := he.GenerateKeys(p, he.KeySpec{Relinearization: true})
	require.NoError(t, err)
	client, err := he.NewClient(p, sk)
	require.NoError(t, err)
	ev := he.NewEvaluator(p, evk, nil)

	iv := polyapprox.Interval{A: 0.1, B: 4}
	init, err := polyapprox.Interpolate(func(x float64) float64 { return 1 / math.Sqrt(x) }, iv, 7)
	require.NoError(t, err)
	newton := polyapprox.NewtonInvSqrt{Init: init, Iterations: 2}
	gold := polyapprox.GoldschmidtInv{Interval: iv, Iterations: 3}
	exp, err := polyapprox.Interpolate(math.Exp, polyapprox.Interval{A: -3, B: 1}, 15)
	require.NoError(t, err)

	cases := []struct {
		name   string
		iv     polyapprox.Interval
		twin   func(float64) float64
		ops    func(polyapprox.Builder[int], int) int
		ct     func(xs []float64) ([]float64, error) // encrypt, evaluate, decrypt
		kinds  map[circuit.Kind]int
		relTol float64
	}{
		{"newton", iv, newton.Evaluate,
			func(b polyapprox.Builder[int], x int) int { return polyapprox.EvalNewtonInvSqrt(b, newton, x) },
			func(xs []float64) ([]float64, error) {
				ct, err := client.EncryptReal(xs, p.MaxLevel())
				if err != nil {
					return nil, err
				}
				if ct, err = ev.EvaluateNewtonInvSqrt(ct, newton); err != nil {
					return nil, err
				}
				return client.DecryptReal(ct)
			},
			map[circuit.Kind]int{circuit.KindMulConst: 1 + 2, circuit.KindPoly: 1, circuit.KindMul: 3 * 2, circuit.KindSub: 2}, 1e-5},
		{"goldschmidt", iv, gold.Evaluate,
			func(b polyapprox.Builder[int], x int) int { return polyapprox.EvalGoldschmidtInv(b, gold, x) },
			func(xs []float64) ([]float64, error) {
				ct, err := client.EncryptReal(xs, p.MaxLevel())
				if err != nil {
					return nil, err
				}
				if ct, err = ev.EvaluateGoldschmidtInv(ct, gold); err != nil {
					return nil, err
				}
				return client.DecryptReal(ct)
			},
			map[circuit.Kind]int{circuit.KindMulConst: 2, circuit.KindAddConst: 2 + 3, circuit.KindMul: 2 * 3}, 1e-5},
		{"chebyshev", exp.Interval, exp.Evaluate,
			func(b polyapprox.Builder[int], x int) int { return polyapprox.EvalChebyshev(b, exp, x) },
			func(xs []float64) ([]float64, error) {
				ct, err := client.EncryptReal(xs, p.MaxLevel())
				if err != nil {
					return nil, err
				}
				if ct, err = ev.Polynomial(ct, exp); err != nil {
					return nil, err
				}
				return client.DecryptReal(ct)
			},
			map[circuit.Kind]int{circuit.KindPoly: 1}, 1e-5},
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			xs := make([]float64, 64)
			for i := range xs {
				xs[i] = tc.iv.A + (tc.iv.B-tc.iv.A)*rng.Float64()
			}
			xs[0], xs[1] = tc.iv.A, tc.iv.B
			want := make([]float64, len(xs))
			for i, x := range xs {
				want[i] = tc.twin(x)
			}

			got, ops := simulateOps(t, tc.ops, xs)
			require.Equal(t, want, got, "op graph, simulated, vs the float64 twin")
			kinds := map[circuit.Kind]int{}
			for _, op := range ops[1:] {
				kinds[op.Kind]++
				require.Equal(t, "plan", op.Label)
			}
			require.Equal(t, tc.kinds, kinds, "ops emitted")

			dec, err := tc.ct(xs)
			require.NoError(t, err)
			for i := range xs {
				require.InDelta(t, 0, (dec[i]-want[i])/math.Abs(want[i]), tc.relTol, "ciphertext vs twin at x = %g", xs[i])
			}
		})
	}
}
