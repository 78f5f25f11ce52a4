package he

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/polyapprox"
)

// TestReadyApproximationsEncrypted checks every ready approximation of
// polyapprox, by name and for both methods: the encrypted evaluation matches
// the float64 twin to at least evalTestMinBits bits (CKKS noise only), and the
// twin matches the true function within the error the approximation reports
// (approximation error only).
func TestReadyApproximationsEncrypted(t *testing.T) {
	c := newEvalTestCtx(t, 12, 7)
	ev := NewEvaluator(c.p, c.evalTestKeys(), nil)
	slots := c.params.MaxSlots()
	intervals := map[string]polyapprox.Interval{
		"exp":     {A: -4, B: 1},
		"gelu":    {A: -5, B: 5},
		"recip":   {A: 0.5, B: 8},
		"invsqrt": {A: 0.1, B: 10},
		"sigmoid": {A: -8, B: 8},
		"tanh":    {A: -3, B: 3},
	}
	for _, name := range polyapprox.Functions() {
		iv, ok := intervals[name]
		if !ok {
			iv = polyapprox.Interval{A: -1.5, B: 1.5} // powP
		}
		f, err := polyapprox.LookupFunction(name)
		require.NoError(t, err)
		for _, method := range []string{polyapprox.MethodChebyshev, polyapprox.MethodRemez} {
			t.Run(fmt.Sprintf("%s/%s", name, method), func(t *testing.T) {
				ap, err := polyapprox.Approximate(name, iv, 31, method)
				require.NoError(t, err)
				require.LessOrEqual(t, ap.Depth, c.params.MaxLevel())

				x := evalTestUniform(5, slots, iv.A, iv.B)
				out, err := ev.Polynomial(c.evalTestEncrypt(t, x, c.params.MaxLevel()), ap.Poly)
				require.NoError(t, err)
				got := c.evalTestDecrypt(t, out)
				twin := make([]float64, slots)
				for i, xi := range x {
					twin[i] = ap.Evaluate(xi)
					require.LessOrEqual(t, math.Abs(twin[i]-f(xi)), ap.MaxAbsError*(1+1e-9)+1e-15,
						"twin vs %s at %g exceeds the reported max abs error %g", name, xi, ap.MaxAbsError)
				}
				bits := evalTestRelPrecBits(got, twin)
				require.GreaterOrEqual(t, bits, float64(evalTestMinBits), "encrypted vs twin")
			})
		}
	}
}
