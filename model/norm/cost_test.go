package norm

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCostTable(t *testing.T) {
	costs, err := CostTable(64, 16)
	require.NoError(t, err)
	by := map[string]Cost{}
	for _, c := range costs {
		by[c.Method+"/"+c.Placement] = c
	}
	dinv, minv, err := InvSqrtCost([2]float64{0.1, 10})
	require.NoError(t, err)
	require.Positive(t, dinv)
	ln, rms := by["layernorm/pre"], by["rmsnorm/pre"]
	// RMSNorm: one row sum (log2 64 = 6 rotations), LayerNorm two
	require.Equal(t, 6, rms.Rotations)
	require.Equal(t, 12, ln.Rotations)
	require.Equal(t, minv+2, rms.CtMults)
	require.Equal(t, dinv+2, rms.Depth)
	require.Equal(t, 2*rms.Depth, rms.BlockDepth)
	require.Equal(t, dinv+3, ln.Depth, "the centring is one more level")
	require.Equal(t, minv+2, ln.CtMults)
	require.Greater(t, by["crmsnorm/pre"].Rotations, rms.Rotations)
	for _, k := range []string{MethodBatchNorm, MethodRepBN, MethodPRepBN, MethodPowerNorm, MethodUnified, MethodFixedScale, MethodSigmaReparam, MethodWeightNorm, MethodScaledWS, MethodNone} {
		c := by[k+"/pre"]
		require.True(t, c.FoldsToZero, k)
		require.Zero(t, c.BlockDepth+c.BlockCtMults+c.BlockRotations+c.BlockPtMults, k)
	}
	g := by["powernorm (groups 4)/pre"]
	require.False(t, g.FoldsToZero)
	require.Equal(t, 4, g.Rotations) // log2(64/4)
	require.Equal(t, 4, by["layernorm/peri"].NormsPerBlock)
	require.False(t, by["layernorm/post"].FinalNorm)
	require.False(t, by["batchnorm/post"].FoldsToZero)
	require.Equal(t, 1, by["batchnorm/post"].PtMults)
	// more tokens than one ciphertext holds multiply the block counts
	big, err := CostOf(MethodRMSNorm, Options{}, CostOptions{Width: 64, Tokens: 512})
	require.NoError(t, err)
	require.Equal(t, 2, big.Ciphertexts)
	require.Equal(t, 2*rms.BlockRotations, big.BlockRotations)

	b, err := json.Marshal(costs[0])
	require.NoError(t, err)
	require.Contains(t, string(b), `"folds_to_zero"`)
	var buf bytes.Buffer
	require.NoError(t, FormatCostTable(&buf, costs))
	require.Contains(t, buf.String(), "rmsnorm")

	_, err = CostTable(0, 16)
	require.Error(t, err)
	_, err = CostOf("groupnorm", Options{}, CostOptions{Width: 8, Tokens: 4})
	require.ErrorContains(t, err, "unknown normalization")
	_, err = CostOf(MethodRMSNorm, Options{}, CostOptions{Width: 8, Tokens: 4, VarRange: [2]float64{-1, 1}})
	require.Error(t, err)
}
