package circuit

import (
	"fmt"
	"math"
)

// imageDims returns the patch size of the image task the circuit was compiled for.
func imageDims(c *Circuit) (patch int, err error) {
	p := int(math.Round(math.Sqrt(float64(c.Layout.InputWidth))))
	if p*p != c.Layout.InputWidth {
		return 0, fmt.Errorf("input width %d is not a square patch", c.Layout.InputWidth)
	}
	return p, nil
}

// EncodeImages packs n images (rows×cols pixels each, row-major, n*rows*cols
// values) into ceil(n/Batch) slot vectors of Layout.InputSlots() values
// (with a token-block split, token t is in block t/Tb): token t of
// image b gets the pixels of patch t (row-major patch order, row-major
// pixels in a patch) in channels 0..patch²-1. Missing images of the last
// ciphertext are zero. This is all the client computes: the embedding is
// applied by the server.
func (c *Circuit) EncodeImages(pixels []float64, n, rows, cols int) ([][]float64, error) {
	if c.Task != "mnist" {
		return nil, fmt.Errorf("encode images: circuit is for task %q", c.Task)
	}
	P, err := imageDims(c)
	if err != nil {
		return nil, err
	}
	L := c.Layout
	if n < 1 || rows <= 0 || cols <= 0 || rows%P != 0 || cols%P != 0 || (rows/P)*(cols/P) != L.Tokens {
		return nil, fmt.Errorf("encode images: %d images of %dx%d do not make %d patches of %dx%d", n, rows, cols, L.Tokens, P, P)
	}
	if len(pixels) != n*rows*cols {
		return nil, fmt.Errorf("encode images: %d pixels for %d images of %dx%d", len(pixels), n, rows, cols)
	}
	for i, v := range pixels {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("encode images: pixel %d is %g", i, v)
		}
	}
	pw := cols / P
	nct := (n + L.Batch - 1) / L.Batch
	out := make([][]float64, nct)
	for k := range out {
		out[k] = make([]float64, L.InputSlots())
	}
	for i := 0; i < n; i++ {
		v := out[i/L.Batch]
		b := i % L.Batch
		img := pixels[i*rows*cols:]
		for t := 0; t < L.Tokens; t++ {
			ty, tx := t/pw, t%pw
			for dy := 0; dy < P; dy++ {
				for dx := 0; dx < P; dx++ {
					v[L.Slot(t, b, dy*P+dx)] = img[(ty*P+dy)*cols+tx*P+dx]
				}
			}
		}
	}
	return out, nil
}

// EncodeBytes packs n byte sequences of length seqLen (ids row-major, each
// in [0, 256)) as one-hot vectors into ceil(n/Batch) slot vectors of
// Layout.InputSlots() values: token t of sequence b has a 1 in channel ids[b*seqLen+t].
// Sequences shorter than the context are padded with zero vectors at the
// end; causal attention makes the results of the real tokens exact.
func (c *Circuit) EncodeBytes(ids []int, n, seqLen int) ([][]float64, error) {
	if c.Task != "text" {
		return nil, fmt.Errorf("encode bytes: circuit is for task %q", c.Task)
	}
	L := c.Layout
	if n < 1 || seqLen < 1 || seqLen > L.Tokens {
		return nil, fmt.Errorf("encode bytes: %d sequences of length %d (context %d)", n, seqLen, L.Tokens)
	}
	if len(ids) != n*seqLen {
		return nil, fmt.Errorf("encode bytes: %d ids for %d sequences of length %d", len(ids), n, seqLen)
	}
	out := make([][]float64, (n+L.Batch-1)/L.Batch)
	for k := range out {
		out[k] = make([]float64, L.InputSlots())
	}
	for i := 0; i < n; i++ {
		for t := 0; t < seqLen; t++ {
			id := ids[i*seqLen+t]
			if id < 0 || id >= L.InputWidth {
				return nil, fmt.Errorf("encode bytes: id %d outside [0, %d)", id, L.InputWidth)
			}
			out[i/L.Batch][L.Slot(t, i%L.Batch, id)] = 1
		}
	}
	return out, nil
}

// DecodeLogits extracts the per-input results from result slot vectors (as
// simulated, or decrypted: only the first Layout.OutputSlots() values are read):
// for each of n inputs, OutputTokens×Outputs values, token-major
// (classifier: the logits of token 0; LM: the next-byte logits of every
// token).
func (c *Circuit) DecodeLogits(outs [][]float64, n int) ([][]float64, error) {
	L := c.Layout
	if n < 0 || n > len(outs)*L.Batch {
		return nil, fmt.Errorf("decode: %d inputs from %d ciphertexts of %d", n, len(outs), L.Batch)
	}
	res := make([][]float64, n)
	for i := range res {
		v := outs[i/L.Batch]
		if len(v) < L.OutputSlots() {
			return nil, fmt.Errorf("decode: output %d has %d slots, want >= %d", i/L.Batch, len(v), L.OutputSlots())
		}
		res[i] = make([]float64, L.OutputTokens*L.Outputs)
		for t := 0; t < L.OutputTokens; t++ {
			for j := 0; j < L.Outputs; j++ {
				res[i][t*L.Outputs+j] = v[L.Slot(t, i%L.Batch, j)]
			}
		}
	}
	return res, nil
}
