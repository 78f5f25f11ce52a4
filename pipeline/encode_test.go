package pipeline_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/pipeline"
)

// EncodeText keeps the last Tokens bytes, left-padded with spaces.
func TestEncodeText(t *testing.T) {
	c := &circuit.Circuit{Task: model.TaskText, Layout: circuit.Layout{Tokens: 4, Batch: 1, Block: 256, InputWidth: 256, Outputs: 256, OutputTokens: 4}}
	hot := func(vec []float64) []int { // the byte of each position
		out := make([]int, c.Layout.Tokens)
		for tok := range out {
			out[tok] = -1
			for id := 0; id < c.Layout.InputWidth; id++ {
				if vec[c.Layout.Slot(tok, 0, id)] == 1 {
					require.Equal(t, -1, out[tok], "one byte per position")
					out[tok] = id
				}
			}
		}
		return out
	}
	for text, want := range map[string][]int{
		"ab":        {' ', ' ', 'a', 'b'},
		"abcd":      {'a', 'b', 'c', 'd'},
		"xyzabcdef": {'c', 'd', 'e', 'f'},
	} {
		in, err := pipeline.EncodeText(c, text)
		require.NoError(t, err, text)
		require.Len(t, in.Vecs, 1)
		require.Equal(t, 1, in.N)
		require.Equal(t, want, hot(in.Vecs[0]), text)
		require.Equal(t, want, in.Batch.Inputs, "the plaintext model sees the same bytes")
	}
	_, err := pipeline.EncodeText(c, "")
	require.ErrorContains(t, err, "empty")
	c.Task = model.TaskMNIST
	_, err = pipeline.EncodeText(c, "ab")
	require.Error(t, err)
}
