package model

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// PolyDiagnosis names the sites that went wrong, in the order given (the
// forward order of PolyStats), with their interval and input extremes.
func TestPolyDiagnosis(t *testing.T) {
	ok := SiteStats{Site: "blocks.0.ffn.gelu", Kind: "gelu", Interval: [2]float64{-5, 5}, Total: 10, Inputs: [2]float64{-1, 1}}
	require.Empty(t, PolyDiagnosis([]SiteStats{ok}))
	recip := SiteStats{Site: "blocks.1.attn.shifted.recip", Kind: "recip", Interval: [2]float64{0.9, 2200}, Outside: 3, Total: 64, Inputs: [2]float64{1.5, 9000}, NonFinite: 2}
	gelu := SiteStats{Site: "blocks.1.ffn.gelu", Kind: "gelu", Interval: [2]float64{-5, 5}, Outside: 7, Total: 100, Inputs: [2]float64{-1e300, 3}}
	d := PolyDiagnosis([]SiteStats{ok, recip, gelu})
	require.Equal(t, "site blocks.1.attn.shifted.recip (recip): 3 of 64 inputs outside [0.9, 2200], inputs in [1.5, 9000], 2 non-finite outputs; "+
		"site blocks.1.ffn.gelu (gelu): 7 of 100 inputs outside [-5, 5], inputs in [-1e+300, 3]", d)
}
