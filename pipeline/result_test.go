package pipeline_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/pipeline"
)

// TestResultCheck: NaN or infinite logits, and errors beyond the predicted
// bound (+6 bits; 1 without a prediction), fail the check with a one-line
// error.
func TestResultCheck(t *testing.T) {
	c := &circuit.Circuit{Task: model.TaskMNIST, Layout: circuit.Layout{Outputs: 2}}
	run := func(got, want float64, pred float64) *pipeline.Result {
		return pipeline.NewResult(c, &circuit.Report{PredictedLog2Err: pred}, [][]float64{{1, got}}, [][]float64{{1, want}}, nil)
	}
	require.NoError(t, run(2+1e-5, 2, -13).Check())
	for _, r := range []*pipeline.Result{
		run(math.NaN(), 2, -13), run(math.Inf(1), 2, -13), run(2, math.NaN(), -13),
		run(2.01, 2, -13),       // 2^-6.6 > 2^(-13+6)
		run(3.5, 2, math.NaN()), // no prediction: bound 1
		run(math.NaN(), math.NaN(), math.NaN()),
	} {
		err := r.Check()
		require.Error(t, err)
		require.NotContains(t, err.Error(), "\n")
	}
	require.NoError(t, run(2.5, 2, math.NaN()).Check())
}

// TestResultPerPosition: byte-LM logits (positions × outputs per input) are
// compared position by position; image logits per image, with labels.
func TestResultPerPosition(t *testing.T) {
	text := &circuit.Circuit{Task: model.TaskText, Layout: circuit.Layout{Tokens: 2, Outputs: 3}}
	r := pipeline.NewResult(text, &circuit.Report{}, [][]float64{{0, 5, 1, 9, 0, 1}}, [][]float64{{0, 4, 1, 0, 0, 1}}, nil)
	// position 0: argmax 1 = 1; position 1: 0 vs 2 disagree.
	agree, total := r.Agreement()
	require.Equal(t, [2]int{1, 2}, [2]int{agree, total})
	require.Equal(t, []pipeline.Prediction{{Encrypted: 1, Plaintext: 1, MaxError: 1}, {Encrypted: 0, Plaintext: 2, MaxError: 9}}, r.Predictions())
	require.Equal(t, 9.0, r.MaxError())
	pa, pt := r.PolyAgreement()
	require.Zero(t, pa+pt, "no poly-mode logits: nothing compared")

	img := &circuit.Circuit{Task: model.TaskMNIST, Layout: circuit.Layout{Outputs: 3}}
	r = pipeline.NewResult(img, &circuit.Report{}, [][]float64{{0, 5, 1}, {3, 0, 1}}, [][]float64{{0, 4, 1}, {0, 0, 1}}, []int{1, 1})
	r.Poly = [][]float64{{0, 5.5, 1}, {3, 0, 1}}
	agree, total = r.Agreement()
	require.Equal(t, [2]int{1, 2}, [2]int{agree, total})
	pa, pt = r.PolyAgreement()
	require.Equal(t, [2]int{2, 2}, [2]int{pa, pt})
	require.Equal(t, 0.5, r.MaxPolyError())
	require.Equal(t, 1, r.Correct())
}

func TestArgmax(t *testing.T) {
	require.Equal(t, 0, pipeline.Argmax(nil))
	require.Equal(t, 1, pipeline.Argmax([]float64{1, 3, 3, -1}), "the first of equals")
	require.Equal(t, [][]float64{{1, 2}, {3, 4}, {5, 6}}, pipeline.PerPosition([][]float64{{1, 2, 3, 4}, {5, 6, 7}}, 2), "a partial position is dropped")
}
