package polyapprox

import (
	"math"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFunctionsAndLookup(t *testing.T) {
	names := Functions()
	require.True(t, sort.StringsAreSorted(names))
	for _, n := range []string{"recip", "invsqrt", "exp", "gelu", "sigmoid", "tanh", "pow2", "pow3", "pow4", "pow6", "pow8"} {
		require.Contains(t, names, n)
	}
	for _, n := range names {
		f, err := LookupFunction(n)
		require.NoError(t, err, n)
		require.NotNil(t, f)
	}
	cases := []struct {
		name string
		x, y float64
	}{
		{"recip", 4, 0.25}, {"invsqrt", 4, 0.5}, {"exp", 1, math.E},
		{"gelu", 1, 0.8413447460685429}, {"gelu", -1, -0.15865525393145707}, {"gelu", 0, 0},
		{"sigmoid", 0, 0.5}, {"sigmoid", -800, 0}, {"sigmoid", 800, 1}, {"sigmoid", 2, 1 / (1 + math.Exp(-2))},
		{"tanh", 0.5, math.Tanh(0.5)}, {"pow2", -3, 9}, {"pow3", -2, -8}, {"pow8", 2, 256}, {"pow1", 7, 7}, {"pow13", 2, 8192},
	}
	for _, c := range cases {
		f, err := LookupFunction(c.name)
		require.NoError(t, err)
		require.InDelta(t, c.y, f(c.x), 1e-15*math.Max(1, math.Abs(c.y)), "%s(%g)", c.name, c.x)
	}
	for _, bad := range []string{"", "foo", "pow", "pow0", "pow65", "powx", "pow-2", "pow+2", "pow2.5", "Inv", "relu"} {
		_, err := LookupFunction(bad)
		require.Error(t, err, bad)
	}
}

func TestApproximateAllFunctions(t *testing.T) {
	intervals := map[string]Interval{
		"exp": {-8, 1}, "gelu": {-6, 6}, "recip": {0.1, 2}, "invsqrt": {0.05, 4},
		"sigmoid": {-8, 8}, "tanh": {-4, 4},
	}
	for _, name := range Functions() {
		iv, ok := intervals[name]
		if !ok {
			iv = Interval{-1.5, 1.5} // powers
		}
		f, err := LookupFunction(name)
		require.NoError(t, err)
		for _, method := range []string{MethodChebyshev, MethodRemez} {
			for _, d := range []int{0, 3, 7, 15, 31} {
				a, err := Approximate(name, iv, d, method)
				require.NoError(t, err, "%s %s %d", name, method, d)
				require.Equal(t, name, a.Function)
				require.Equal(t, method, a.Method)
				require.Equal(t, iv, a.Interval)
				require.Equal(t, d, a.Degree)
				require.Len(t, a.Poly.Coeffs, d+1)
				require.Equal(t, a.Poly.Depth(), a.Depth)
				require.Equal(t, 1+DepthOfDegree(d), a.Depth) // change of basis + body
				require.Equal(t, CtMultsOfDegree(d), a.CtMults)
				// reported errors are the real ones, checked at fresh points
				for i := 0; i <= 997; i++ {
					x := iv.A + (iv.B-iv.A)*float64(i)/997
					e := math.Abs(a.Evaluate(x) - f(x))
					require.LessOrEqual(t, e, a.MaxAbsError*(1+1e-6)+1e-15, "%s %s d=%d x=%g", name, method, d, x)
					if f(x) != 0 {
						require.LessOrEqual(t, e/math.Abs(f(x)), a.MaxRelError*(1+1e-6)+1e-15)
					}
				}
				require.Equal(t, a.Poly.Evaluate(0.3), a.Evaluate(0.3))
			}
		}
	}
	// powers are exact once the degree reaches p
	a, err := Approximate("pow6", Interval{-2, 2}, 7, MethodChebyshev)
	require.NoError(t, err)
	require.Less(t, a.MaxAbsError, 1e-12)
}

func TestApproximateAccuracyTargets(t *testing.T) {
	// the workhorses reach useful CKKS precision at depth-optimal degrees
	a, err := Approximate("invsqrt", Interval{0.1, 10}, 63, MethodRemezRelative)
	require.NoError(t, err)
	require.Less(t, a.MaxRelError, 1e-6)
	require.Equal(t, 7, a.Depth)
	require.Equal(t, 18, a.CtMults)
	a, err = Approximate("gelu", Interval{-8, 8}, 31, MethodRemez)
	require.NoError(t, err)
	require.Less(t, a.MaxAbsError, 1e-4)
	a, err = Approximate("exp", Interval{-8, 0}, 15, MethodRemezRelative)
	require.NoError(t, err)
	require.Less(t, a.MaxRelError, 1e-3)
	// relative minimax beats absolute minimax in relative error and vice versa
	ar, err := Approximate("recip", Interval{0.05, 1}, 15, MethodRemezRelative)
	require.NoError(t, err)
	aa, err := Approximate("recip", Interval{0.05, 1}, 15, MethodRemez)
	require.NoError(t, err)
	require.Less(t, ar.MaxRelError, aa.MaxRelError)
	require.Less(t, aa.MaxAbsError, ar.MaxAbsError)
}

func TestApproximateZerosOfF(t *testing.T) {
	// tanh vanishes at 0, a grid point: relative error is measured elsewhere
	a, err := Approximate("tanh", Interval{-1, 1}, 7, MethodRemez)
	require.NoError(t, err)
	require.False(t, math.IsNaN(a.MaxRelError) || math.IsInf(a.MaxRelError, 0))
	st, err := MeasureChebyshev(math.Tanh, a.Poly)
	require.NoError(t, err)
	require.Less(t, st.RelPoints, st.Points)
	require.Equal(t, a.MaxRelError, st.MaxRel)
	// but relative minimax is refused
	_, err = Approximate("tanh", Interval{-1, 1}, 7, MethodRemezRelative)
	require.ErrorContains(t, err, "relative error undefined")
}

func TestApproximateInvalidInput(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	bad := []struct {
		fn     string
		iv     Interval
		degree int
		method string
		msg    string
	}{
		{"recip", Interval{0, 1}, 7, MethodChebyshev, "x > 0"},
		{"recip", Interval{-1, 1}, 7, MethodRemez, "x > 0"},
		{"recip", Interval{-2, -1}, 7, MethodRemez, "x > 0"},
		{"invsqrt", Interval{-1, 2}, 7, MethodRemezRelative, "x > 0"},
		{"invsqrt", Interval{0, 2}, 7, MethodChebyshev, "x > 0"},
		{"exp", Interval{0, 800}, 7, MethodChebyshev, "overflow"},
		{"exp", Interval{-1, 1}, -1, MethodChebyshev, "degree -1"},
		{"exp", Interval{-1, 1}, 128, MethodRemez, "degree 128"},
		{"exp", Interval{-1, 1}, 7, "", "method"},
		{"exp", Interval{-1, 1}, 7, "taylor", "unknown method"},
		{"cosh", Interval{-1, 1}, 7, MethodChebyshev, "unknown function"},
		{"exp", Interval{nan, 1}, 7, MethodChebyshev, "finite"},
		{"exp", Interval{-1, inf}, 7, MethodChebyshev, "finite"},
		{"exp", Interval{-inf, 1}, 7, MethodChebyshev, "finite"},
		{"exp", Interval{1, 1}, 7, MethodChebyshev, "a < b"},
		{"exp", Interval{2, 1}, 7, MethodChebyshev, "a < b"},
		{"gelu", Interval{-1, 1}, 7, MethodRemezRelative, "relative error undefined"},
	}
	for _, b := range bad {
		_, err := Approximate(b.fn, b.iv, b.degree, b.method)
		require.ErrorContains(t, err, b.msg, "%+v", b)
	}
}
