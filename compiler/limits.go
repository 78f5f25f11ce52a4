package compiler

import (
	"fmt"
	"math"

	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
)

// checkModelWeights refuses a model whose weights are not finite or exceed
// MaxMagnitude, naming the tensor and the index, before lowering.
func checkModelWeights(m *model.Model) error {
	for _, p := range m.Params() {
		for i, v := range p.Value.Data {
			if !(math.Abs(v) <= circuit.MaxMagnitude) {
				return fmt.Errorf("compile: tensor %s: entry %d is %g: weights must be finite and at most %g in magnitude", p.Name, i, v, float64(circuit.MaxMagnitude))
			}
		}
	}
	return nil
}
