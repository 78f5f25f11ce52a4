package polyapprox_test

import (
	"fmt"

	"github.com/polyformer/polyformer/polyapprox"
)

// Approximate GELU on [-4, 4] by a depth-optimal minimax polynomial and
// evaluate its float64 twin, the exact polynomial a ciphertext would compute.
func Example() {
	a, err := polyapprox.Approximate("gelu", polyapprox.Interval{A: -4, B: 4}, 15, polyapprox.MethodRemez)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("degree %d, depth %d, ct-ct products %d\n", a.Degree, a.Depth, a.CtMults)
	fmt.Printf("max abs error %.1e\n", a.MaxAbsError)
	fmt.Printf("gelu(1) ~ %.4f\n", a.Evaluate(1))
	fmt.Printf("same via Chebyshev.Evaluate: %v\n", a.Poly.Evaluate(1) == a.Evaluate(1))
	// Output:
	// degree 15, depth 5, ct-ct products 8
	// max abs error 1.7e-04
	// gelu(1) ~ 0.8413
	// same via Chebyshev.Evaluate: true
}

// Pick the Goldschmidt iteration count for 1/x on [0.1, 1.9] at 2e-6
// relative error and report its cost.
func ExampleGoldschmidtIterationsFor() {
	iv := polyapprox.Interval{A: 0.1, B: 1.9}
	k, err := polyapprox.GoldschmidtIterationsFor(iv, 2e-6)
	if err != nil {
		fmt.Println(err)
		return
	}
	g, err := polyapprox.NewGoldschmidtInv(iv, k)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("iterations %d, depth %d, ct-ct products %d, bound %.1e\n", k, g.Depth(), g.CtMults(), g.RelErrorBound())
	// Output:
	// iterations 6, depth 9, ct-ct products 12, bound 1.4e-06
}
