package model

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEvaluate: the loss is the target-weighted mean of the batches'
// cross-entropies, examples count images or windows, bits per byte are
// reported for text only, and no batches is an error.
func TestEvaluate(t *testing.T) {
	for _, task := range []string{TaskMNIST, TaskText} {
		c := tinyConfig(t, task)
		m, err := New(c)
		require.NoError(t, err)
		bs := []Batch{synthBatch(c, 3, 1), synthBatch(c, 5, 2)}
		var loss float64
		var correct, targets int
		for _, b := range bs {
			r, err := m.Forward(b)
			require.NoError(t, err)
			loss += r.CE * float64(r.Targets)
			correct += r.Correct
			targets += r.Targets
		}
		got, err := m.Evaluate(bs)
		require.NoError(t, err)
		require.Equal(t, 8, got.Examples, task)
		require.InDelta(t, loss/float64(targets), got.Loss, 1e-12, task)
		require.Equal(t, float64(correct)/float64(targets), got.Accuracy, task)
		if task == TaskText {
			require.InDelta(t, got.Loss/math.Ln2, got.BitsPerByte, 1e-12)
		} else {
			require.Zero(t, got.BitsPerByte)
		}
		_, err = m.Evaluate(nil)
		require.ErrorContains(t, err, "no examples")
	}
}
