package compiler

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/he/circuit"
)

func TestLogitMarginsAndCheck(t *testing.T) {
	lg := [][]float64{{1, 3, 2}, {0, 0.5, 0.49}, {5, -1, 4.999}}
	m, err := circuit.LogitMargins(lg, 3)
	require.NoError(t, err)
	require.InDeltaSlice(t, []float64{1, 0.01, 0.001}, m, 1e-12)
	// a token-major LM row: two tokens of 2 outputs
	m2, err := circuit.LogitMargins([][]float64{{1, 0, -2, 2}}, 2)
	require.NoError(t, err)
	require.Equal(t, []float64{1, 4}, m2)
	_, err = circuit.LogitMargins([][]float64{{1, 2, 3}}, 2)
	require.Error(t, err)

	ok, err := circuit.CheckMargins(m, math.Log2(1e-4))
	require.NoError(t, err)
	require.False(t, ok.Warn())
	require.Contains(t, ok.String(), "ok")
	bad, err := circuit.CheckMargins(m, math.Log2(0.004)) // 2e = 0.008: flips 0.001 only
	require.NoError(t, err)
	require.True(t, bad.Warn())
	require.Equal(t, 1, bad.AtRisk)
	require.InDelta(t, 1.0/3, bad.Fraction, 1e-12)
	require.Contains(t, bad.String(), "1 of 3")
	_, err = circuit.CheckMargins(nil, 0)
	require.Error(t, err)
}

// The margin check on a compiled tiny model: its poly-mode logits give the
// margins; a precision prediction of the circuit's own magnitude warns.
func TestMarginCheckOnModel(t *testing.T) {
	m, b := tinyMNIST(t, nil, shallowFit())
	lg := polyLogits(t, m, b)
	margins, err := circuit.LogitMargins(lg, m.Cfg.Classes)
	require.NoError(t, err)
	require.Len(t, margins, b.B)
	big := 0.0
	for _, x := range margins {
		big = math.Max(big, x)
	}
	mc, err := circuit.CheckMargins(margins, math.Log2(big))
	require.NoError(t, err)
	require.True(t, mc.Warn())
	require.Equal(t, b.B, mc.AtRisk)
	mc, err = circuit.CheckMargins(margins, -40)
	require.NoError(t, err)
	require.False(t, mc.Warn() && mc.MinMargin > 2*math.Exp2(-40))
}

func TestPolyMarginsRestoresMode(t *testing.T) {
	m, b := tinyMNIST(t, nil, shallowFit())
	mode := m.Mode()
	got, err := PolyMargins(m, b)
	require.NoError(t, err)
	require.Equal(t, mode, m.Mode())
	want, err := circuit.LogitMargins(polyLogits(t, m, b), m.Cfg.Classes)
	require.NoError(t, err)
	require.Equal(t, want, got)
	c, p := plannedTiny(t)
	rep, err := circuit.NewReport(c, p)
	require.NoError(t, err)
	mc, err := circuit.CheckMargins(got, 0)
	require.NoError(t, err)
	rep.Margin = &mc
	var sb strings.Builder
	require.NoError(t, rep.WriteTable(&sb))
	require.Contains(t, sb.String(), "predictions can flip")
}
