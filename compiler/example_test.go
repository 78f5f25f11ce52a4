package compiler_test

import (
	"fmt"

	"github.com/polyformer/polyformer/compiler"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model/checkpoint"
)

// Compile a trained, calibrated checkpoint (the demo's MNIST model) into a
// CKKS circuit: the smallest secure preset whose levels suffice is chosen,
// and the dry-run report gives the cost of one ciphertext of inputs before
// any key exists. `polyformer compile CHECKPOINT --out C` does the same and
// writes the circuit file.
func Example() {
	m, err := checkpoint.Load("../cmd/polyformer/demodata")
	if err != nil {
		panic(err)
	}
	if m, err = compiler.FoldNorms(m); err != nil { // weight norm folds into the weights
		panic(err)
	}
	c, p, err := compiler.CompileFor(m, "", compiler.Options{})
	if err != nil {
		panic(err)
	}
	rep, err := circuit.NewReport(c, p)
	if err != nil {
		panic(err)
	}
	fmt.Printf("preset %s: %d inputs per ciphertext, depth %d, %d bootstraps\n", rep.Preset, rep.InputsPerCiphertext, rep.Depth, rep.Bootstraps)
	fmt.Printf("%d key switches per ciphertext with %d rotation keys\n", rep.KeySwitches, rep.RotationKeys)
	// Output:
	// preset n15: 16 inputs per ciphertext, depth 12, 0 bootstraps
	// 200 key switches per ciphertext with 28 rotation keys
}
