package polyapprox

import "math/bits"

// CtMultsOfDegree returns the number of ciphertext-ciphertext multiplications
// (each followed, at once or lazily, by one relinearization, i.e. one key
// switch) that Lattigo v5.0.7 hefloat.PolynomialEvaluator.Evaluate performs on
// a polynomial with d+1 stored coefficients in the Chebyshev basis, built with
// hefloat.NewPolynomial (IsOdd = IsEven = true, Lazy = false, so no power and
// no coefficient is skipped). Plaintext-constant products (the baby-step
// inner products and the change of basis) are not counted.
//
// Derivation (he/polynomial_evaluator.go, he/power_basis.go, he/polynomial.go):
//
//  1. Power basis. With L = bits.Len(d) and s = bignum.OptimalSplit(L),
//     the evaluator calls GenPower(2^(L-1)) and then GenPower(i) for
//     i = 2^s-1 down to 3. GenPower(n) computes T_n = 2*T_a*T_b - T_c with
//     (a, b) = SplitDegree(n) (a = b = n/2 for powers of two, else
//     a = 2^k-1, b = n+1-2^k with k = bits.Len(n-1)-1) and c = |a-b|,
//     recursively generating T_a, T_b and T_c first. Every power that is
//     not yet in the basis costs exactly one MulRelinNew; T_1 is the input.
//  2. Paterson–Stockmeyer. recursePS splits the polynomial at the
//     smallest power of two 2^m >= max(2^s, deg/2+1) into q*T_{2^m} + r
//     until the parts have degree < 2^s; the leading part is split again
//     with a smaller s when its MaxDeg is within 2^(s-1) of the next power
//     of two. The baby steps (leaves) are evaluated with plaintext
//     coefficients only; the giant steps merge two baby steps with one
//     ciphertext product by a power T_{2^j} (EvaluateMonomial), so they cost
//     (number of leaves - 1) multiplications.
//
// CtMultsOfDegree(d) is the sum of both. Lattigo panics (negative shift)
// on a degree-0 polynomial, so he/ must evaluate constants without the
// polynomial evaluator; CtMultsOfDegree returns 0 for d <= 1.
//
// This simulation was checked against Lattigo v5.0.7 itself, with an
// he.Evaluator wrapper counting Mul/MulNew/MulRelin/MulRelinNew/MulThenAdd
// calls whose second operand is a ciphertext, for every d in 1..127 (all
// equal; cost_test.go keeps the counted values as a regression table), e.g.
// d = 3: 2, d = 7: 5, d = 15: 8, d = 31: 13, d = 63: 18, d = 127: 28, and
// d = 64: 21 (one level and three products more than d = 63).
func CtMultsOfDegree(d int) int {
	if d <= 1 {
		return 0
	}
	powers, leaves := psStructure(d)
	return (len(powers) - 1) + (leaves - 1)
}

// PowerBasisOfDegree returns the indices n of the Chebyshev powers T_n
// (n >= 2, ascending) that Lattigo v5.0.7 generates with ciphertext
// products to evaluate a polynomial of degree d (see CtMultsOfDegree).
func PowerBasisOfDegree(d int) []int {
	if d <= 1 {
		return nil
	}
	powers, _ := psStructure(d)
	out := make([]int, 0, len(powers))
	for n := 2; n <= 2*d+2; n++ {
		if powers[n] {
			out = append(out, n)
		}
	}
	return out
}

// psStructure mirrors he.EvaluatePolynomial: the set of generated powers
// (including T_1) and the number of Paterson–Stockmeyer baby steps.
func psStructure(d int) (map[int]bool, int) {
	logDegree := bits.Len(uint(d))
	logSplit := optimalSplit(logDegree)
	powers := map[int]bool{1: true}
	genPower(1<<(logDegree-1), powers)
	for i := (1 << logSplit) - 1; i > 2; i-- {
		genPower(i, powers)
	}
	leaves := psLeaves(logSplit, d, d, true)
	return powers, leaves
}

// optimalSplit is bignum.OptimalSplit of Lattigo v5.0.7.
func optimalSplit(logDegree int) int {
	logSplit := logDegree >> 1
	if logDegree-logSplit-1 < 0 {
		// Lattigo would shift by a negative amount (panic); only reachable for
		// logDegree = 0, i.e. degree 0, which never reaches here.
		return logSplit
	}
	a := (1 << logSplit) + (1 << (logDegree - logSplit)) + logDegree - logSplit - 3
	b := (1 << (logSplit + 1)) + (1 << (logDegree - logSplit - 1)) + logDegree - logSplit - 4
	if a > b {
		logSplit++
	}
	return logSplit
}

// splitDegree is he.SplitDegree of Lattigo v5.0.7.
func splitDegree(n int) (a, b int) {
	if n&(n-1) == 0 {
		return n / 2, n / 2
	}
	k := bits.Len(uint(n-1)) - 1
	return (1 << k) - 1, n + 1 - (1 << k)
}

// genPower mirrors he.PowerBasis.genPower in the Chebyshev basis: it marks n
// and every power it recursively needs.
func genPower(n int, powers map[int]bool) {
	if powers[n] {
		return
	}
	a, b := splitDegree(n)
	genPower(a, powers)
	genPower(b, powers)
	powers[n] = true
	c := a - b
	if c < 0 {
		c = -c
	}
	if c != 0 {
		genPower(c, powers)
	}
}

// psLeaves mirrors he.recursePS and returns the number of baby steps.
func psLeaves(logSplit, degree, maxDeg int, lead bool) int {
	if degree < (1 << logSplit) {
		if degree > 0 && lead && logSplit > 1 && maxDeg > (1<<bits.Len(uint(maxDeg)))-(1<<(logSplit-1)) {
			if ls := optimalSplit(bits.Len(uint(degree))); ls < logSplit {
				return psLeaves(ls, degree, maxDeg, lead)
			}
		}
		return 1
	}
	nextPower := 1 << logSplit
	for nextPower < (degree>>1)+1 {
		nextPower <<= 1
	}
	rMax := nextPower - 1
	if maxDeg != degree {
		rMax = maxDeg - (degree - nextPower + 1)
	}
	return psLeaves(logSplit, degree-nextPower, maxDeg, lead) + psLeaves(logSplit, nextPower-1, rMax, false)
}
