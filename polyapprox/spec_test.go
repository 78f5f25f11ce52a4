package polyapprox

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSpecJSONUsesRecordedStrings(t *testing.T) {
	s := Spec{Method: PlanNewton, Interval: [2]float64{0.5, 2}, Degree: 1, Iterations: 3, Coeffs: []float64{1, -0.25}}
	b, err := json.Marshal(s)
	require.NoError(t, err)
	require.JSONEq(t, `{"method":"newton","interval":[0.5,2],"degree":1,"iterations":3,"coeffs":[1,-0.25]}`, string(b))
	var back Spec
	require.NoError(t, json.Unmarshal([]byte(`{"method":"goldschmidt","interval":[0.1,9],"iterations":4}`), &back))
	require.Equal(t, Spec{Method: PlanGoldschmidt, Interval: [2]float64{0.1, 9}, Iterations: 4}, back)
	g, err := back.Goldschmidt()
	require.NoError(t, err)
	require.Equal(t, GoldschmidtInv{Interval: Interval{A: 0.1, B: 9}, Iterations: 4}, g)
}

func TestSpecValidate(t *testing.T) {
	require.NoError(t, Spec{Method: PlanChebyshev, Interval: [2]float64{-1, 1}, Coeffs: []float64{0, 1}}.Validate())
	require.ErrorContains(t, Spec{Method: "taylor"}.Validate(), `unknown polynomial method "taylor"`)
	require.ErrorContains(t, Spec{Method: PlanGoldschmidt, Interval: [2]float64{-1, 1}}.Validate(), "must be positive")
	require.ErrorContains(t, Spec{Method: PlanNewton, Interval: [2]float64{1, 2}, Iterations: -1, Coeffs: []float64{1}}.Validate(), "-1 iterations")
	_, err := Spec{Method: PlanChebyshev}.Newton()
	require.ErrorContains(t, err, `spec method "chebyshev" is not "newton"`)
	_, _, err = Spec{Method: "taylor"}.Twin()
	require.Error(t, err)
	_, err = Spec{Method: "taylor"}.Derivative()
	require.Error(t, err)
	_, err = EvalSpec[float64](Float{}, Spec{Method: "taylor"}, 1)
	require.Error(t, err)
}

// EvalSpec on Float is the twin of each method.
func TestEvalSpecIsTheTwin(t *testing.T) {
	init, err := Interpolate(invSqrt, Interval{A: 0.5, B: 4}, 3)
	require.NoError(t, err)
	for _, s := range []Spec{
		{Method: PlanNewton, Interval: [2]float64{0.5, 4}, Coeffs: init.Coeffs, Iterations: 2},
		{Method: PlanGoldschmidt, Interval: [2]float64{0.5, 4}, Iterations: 3},
		{Method: PlanChebyshev, Interval: [2]float64{0.5, 4}, Coeffs: init.Coeffs},
	} {
		f, depth, err := s.Twin()
		require.NoError(t, err)
		require.Positive(t, depth)
		for _, x := range []float64{0.5, 1, 3.3, 4} {
			y, err := EvalSpec[float64](Float{}, s, x)
			require.NoError(t, err)
			require.Equal(t, f(x), y, "%s at %g", s.Method, x)
		}
	}
}
