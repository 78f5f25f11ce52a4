package model

import (
	"fmt"

	"github.com/polyformer/polyformer/model/nn"
)

// newKernel builds the attention kernel the config selects.
func newKernel(cfg Config, prefix string) (nn.AttentionKernel, error) {
	a := cfg.Attention
	switch a.Kind {
	case AttnSoftmax:
		return nn.NewSoftmax(prefix), nil
	case AttnPowerSoftmax:
		return nn.NewPowerSoftmax(prefix, a.P, a.Eps, a.Delta, a.Scaled, a.StopGradMax, a.LengthNorm)
	case AttnPowerFixed:
		return nn.NewPowerFixed(prefix, a.P, cfg.Heads, a.Learned)
	}
	return nil, fmt.Errorf("unknown attention %q", a.Kind)
}
