package pipeline

import (
	"github.com/polyformer/polyformer/compiler"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/checkpoint"
)

// LoadForCompile loads a checkpoint for compilation: its normalization is
// folded into the weights where that is exact (compiler.FoldNorms), so
// that BatchNorm, RepBN or weight-normalized checkpoints compile and cost
// nothing for their norms.
func LoadForCompile(dir string) (*model.Model, error) {
	m, err := checkpoint.Load(dir)
	if err != nil {
		return nil, err
	}
	return compiler.FoldNorms(m)
}
