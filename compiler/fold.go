package compiler

import (
	"fmt"

	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/convert"
	"github.com/polyformer/polyformer/model/norm"
)

// FoldNorms is the first step of compilation: it folds the model's
// normalization into the adjacent linear layers when that is exact
// (BatchNorm, RepBN, fixed scale, weight-side reparametrizations...), so
// the circuit pays nothing for it, and returns the folded copy. A model
// without norms, or with norms that do not fold (LayerNorm, RMSNorm, whose
// inverse square root the circuit evaluates), is returned as it is.
func FoldNorms(m *model.Model) (*model.Model, error) {
	switch m.Cfg.Norm {
	case norm.MethodNone, norm.MethodLayerNorm, norm.MethodRMSNorm:
		return m, nil
	}
	folded, err := convert.Fold(m)
	if err != nil {
		return nil, fmt.Errorf("fold normalization %q into the weights: %w", m.Cfg.Norm, err)
	}
	return folded, nil
}
