package model

import (
	"github.com/polyformer/polyformer/model/nn"
)

// repetitionBounds returns, for the reciprocal site of every sum-normalized
// power-shifted kernel, the largest normalizer a row of the longest length
// (m.Cfg.Tokens()) can have with every term inside the calibrated term range:
// eps + T * MaxTerm. Calibration fits the reciprocal up to at least this
// bound: a row normalizer sums up to T terms (x + c)^p, and a window that
// repeats one token (a run of one rune, a line of '=') makes them all about
// the largest, a sum that a few calibration batches of ordinary text do not
// show (the byte LM's block-0 normalizer reached 3.3x the largest of 16
// calibration batches on such a held-out window, above the plan's interval,
// where Goldschmidt's 1/x overflows). Length-normalized kernels (the mean
// of the terms) are already bounded by the largest term and are left alone.
func repetitionBounds(m *Model) map[string]float64 {
	out := map[string]float64{}
	for _, blk := range m.Blocks {
		sp, ok := nn.AsShiftedPower(blk.Attn.Kernel)
		if !ok || sp.LengthNorm {
			continue
		}
		out[sp.Sites()[0].Name] = sp.Eps + float64(m.Cfg.Tokens())*sp.MaxTerm()
	}
	return out
}
