package compiler

import (
	"errors"
	"fmt"

	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/nn"
)

// PolyMargins returns the poly-mode logit margins of m on b: one per row
// of the logits (an image, or a token of an LM). The model's mode is
// restored.
func PolyMargins(m *model.Model, b model.Batch) ([]float64, error) {
	if m == nil {
		return nil, errors.New("poly margins: nil model")
	}
	prev := m.Mode()
	if err := m.SetMode(nn.ModePoly); err != nil {
		return nil, fmt.Errorf("poly margins: %w", err)
	}
	lg, err := m.Logits(b)
	if rerr := m.SetMode(prev); err == nil && rerr != nil {
		err = rerr
	}
	if err != nil {
		return nil, fmt.Errorf("poly margins: %w", err)
	}
	k := lg.Cols()
	rows := make([][]float64, len(lg.Data)/k)
	for i := range rows {
		rows[i] = lg.Data[i*k : (i+1)*k]
	}
	return circuit.LogitMargins(rows, k)
}
