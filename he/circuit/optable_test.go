package circuit

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/polyapprox"
)

// Every op kind has a row, and the rows say what the ops do to levels.
func TestOpTable(t *testing.T) {
	kinds := []Kind{KindInput, KindLinear, KindAdd, KindSub, KindAddPlain, KindAddConst, KindMulPlain, KindMulConst,
		KindMul, KindRotate, KindRotSum, KindPoly, KindBootstrap, KindMatchScale, KindDropLevel, KindOutput}
	require.Len(t, opTable, len(kinds), "a kind without a row, or a row without a kind")
	for _, k := range kinds {
		_, ok := k.Info()
		require.True(t, ok, "%s has no row", k)
	}
	_, ok := Kind("nonsense").Info()
	require.False(t, ok)

	poly := polyapprox.Chebyshev{Interval: polyapprox.Interval{A: -1, B: 1}, Coeffs: make([]float64, 8)}
	cases := []struct {
		op   Op
		in   []int
		want int
		ok   bool
	}{
		{Op{Kind: KindLinear}, []int{9}, 8, true},
		{Op{Kind: KindMul}, []int{9, 7}, 6, true},
		{Op{Kind: KindAdd}, []int{9, 7}, 7, true},
		{Op{Kind: KindRotSum, Rot: []int{1, 2}}, []int{9}, 9, true},
		{Op{Kind: KindPoly, Poly: &poly}, []int{9}, 9 - poly.Depth(), true},
		{Op{Kind: KindMatchScale}, []int{9, 5}, 8, true},
		{Op{Kind: KindInput}, nil, 0, false},
		{Op{Kind: KindBootstrap}, []int{0}, 0, false},
		{Op{Kind: KindDropLevel}, []int{9}, 0, false},
		{Op{Kind: "nonsense"}, []int{9}, 0, false},
	}
	for _, tc := range cases {
		got, ok := tc.op.OutLevel(tc.in)
		require.Equal(t, tc.ok, ok, "%s", tc.op.Kind)
		if ok {
			require.Equal(t, tc.want, got, "%s", tc.op.Kind)
		}
	}
	rots, relins := Op{Kind: KindRotSum, Rot: []int{1, 2, 4}}.KeySwitches(nil)
	require.Equal(t, [2]int{3, 0}, [2]int{rots, relins})
	require.Equal(t, []int{15, 2}, Op{Kind: KindRotSum, Rot: []int{-1, 0, 2}}.Rotations(nil, 16))
	require.True(t, Op{Kind: KindMul}.Relinearizes())
	require.False(t, Op{Kind: KindMulPlain}.Relinearizes())
}
