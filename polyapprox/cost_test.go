package polyapprox

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// lattigoCtMults[d-1] is the number of ciphertext-ciphertext products that
// Lattigo v5.0.7 hefloat.PolynomialEvaluator.Evaluate performed on a
// Chebyshev polynomial of degree d (hefloat.NewPolynomial, IsOdd = IsEven =
// true), counted with an he.Evaluator wrapper around a real
// hefloat.Evaluator (logN = 10, 10 levels) for d = 1..127; the decrypted
// results matched Clenshaw to 1e-8.
var lattigoCtMults = []int{
	0, 2, 2, 4, 4, 4, 5, 6, 6, 6, 6, 7, 7, 7, 8, 10, 10, 10, 10, 10, 10, 10, 10, 11, 11, 11, 11, 11, 12, 12, 13,
	13, 13, 13, 13, 13, 13, 13, 13, 14, 14, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15, 15, 16, 16, 16, 16, 16, 17, 17, 18,
	21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22,
	23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 24, 24, 24, 24, 24, 24, 24, 24, 24, 26, 26, 26, 27, 27, 27, 28,
}

func TestCtMultsOfDegreeMatchesLattigoCount(t *testing.T) {
	require.Len(t, lattigoCtMults, 127)
	for d := 1; d <= 127; d++ {
		require.Equal(t, lattigoCtMults[d-1], CtMultsOfDegree(d), "degree %d", d)
	}
	require.Equal(t, 0, CtMultsOfDegree(0))
	require.Equal(t, 0, CtMultsOfDegree(-3))
}

func TestCtMultsOfDegreeHandCounts(t *testing.T) {
	// d = 3: L = 2, s = OptimalSplit(2) = 1. Powers: GenPower(2) -> T2 (1).
	// PS: split at 2 -> q = c2,c3 part (deg 1), r (deg 1): 2 baby steps, 1
	// giant product. Total 2.
	require.Equal(t, []int{2}, PowerBasisOfDegree(3))
	require.Equal(t, 2, CtMultsOfDegree(3))
	// d = 7: L = 3, s = 2. Powers: T2, T4 (GenPower(4)), T3 (loop i = 3): 3.
	// PS at 4: q (deg 3, leading, MaxDeg 7 > 8-2) is re-split at 2 into 2
	// baby steps, r (deg 3) is one: 3 baby steps, 2 giant products. Total 5.
	require.Equal(t, []int{2, 3, 4}, PowerBasisOfDegree(7))
	require.Equal(t, 5, CtMultsOfDegree(7))
	// d = 63: L = 6, s = 3. Powers T2,T4,T8,T16,T32 and T3,T5,T6,T7: 9.
	// PS at 8: 8 baby steps of degree 7, the leading one re-split into 3:
	// 10 baby steps, 9 giant products. Total 18.
	require.Equal(t, []int{2, 3, 4, 5, 6, 7, 8, 16, 32}, PowerBasisOfDegree(63))
	require.Equal(t, 18, CtMultsOfDegree(63))
	// degree 2^k costs a level and products more than 2^k - 1
	require.Greater(t, CtMultsOfDegree(64), CtMultsOfDegree(63))
	require.Nil(t, PowerBasisOfDegree(1))
}
