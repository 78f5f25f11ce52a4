package model

import (
	"fmt"
	"math/rand/v2"

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
	case AttnPowerShifted:
		return nn.NewShiftedPower(prefix, a.P, cfg.Heads, a.Eps, a.LengthNorm, a.ShiftModeOrDefault(), a.Shift(), a.ShiftMargin)
	}
	return nil, fmt.Errorf("unknown attention %q", a.Kind)
}

// newAttention builds the attention layer of one block with the config's
// temperature scope.
func newAttention(cfg Config, name string, tokens int, causal bool, k nn.AttentionKernel, rng *rand.Rand) (*nn.MultiHeadAttention, error) {
	return nn.NewMultiHeadAttentionScoped(name, cfg.Width, cfg.Heads, tokens, causal, k, cfg.Attention.TempScope(), rng)
}
