// Package testcircuit builds the hand-made circuit that the service tests
// serve: milliseconds per evaluation at the insecure test preset test-n12,
// so tests of the protocol do not pay for a model.
package testcircuit

import (
	mrand "math/rand/v2"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
)

// Toy returns a circuit planned at test-n12: a 4x4 "image" as one token of
// 16 channels, linear, square, linear, 4 outputs. The matrices are
// bidiagonal (diagonals 0 and 1 only: two rotation keys in all) with
// weights drawn from seed.
func Toy(seed uint64) (*circuit.Circuit, *he.Parameters, error) {
	r := mrand.New(mrand.NewPCG(seed, 9))
	const D = 16
	mat := func(name string, rows int) circuit.Matrix {
		b := make([]float64, D*D)
		for i := 0; i < rows; i++ {
			for j := i; j < min(i+2, D); j++ {
				b[i*D+j] = r.Float64() - 0.5
			}
		}
		return circuit.Matrix{Name: name, Blocks: [][]float64{b}}
	}
	c := &circuit.Circuit{
		Version: circuit.FormatVersion, Task: model.TaskMNIST,
		Layout: circuit.Layout{Tokens: 1, Batch: 1, Block: D, InputWidth: 16, Outputs: 4, OutputTokens: 1},
		Ops: []circuit.Op{
			{Kind: circuit.KindInput, Label: "input", Ref: -1},
			{Kind: circuit.KindLinear, In: []int{0}, Label: "l1", Mat: 0, Ref: -1},
			{Kind: circuit.KindMul, In: []int{1, 1}, Label: "square", Ref: -1},
			{Kind: circuit.KindLinear, In: []int{2}, Label: "l2", Mat: 1, Ref: -1},
			{Kind: circuit.KindOutput, In: []int{3}, Label: "output", Ref: -1},
		},
		Mats: []circuit.Matrix{mat("l1", D), mat("l2", 4)},
	}
	p, err := he.ParametersFromPreset(he.PresetTestN12)
	if err != nil {
		return nil, nil, err
	}
	pc, err := circuit.Plan(c, p, circuit.PlanOptions{})
	if err != nil {
		return nil, nil, err
	}
	return pc, p, nil
}
