package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/data"
)

// Inputs are encoded inputs of a circuit with their plaintext references.
// The encoders need only the circuit's layout: a client encodes with the
// weightless skeleton it verified.
type Inputs struct {
	// Vecs are the circuit's input slot vectors, one per ciphertext.
	Vecs [][]float64
	// N is the number of inputs encoded (images, or byte sequences).
	N int
	// Labels are the MNIST labels of the images (nil for text and for
	// images given without labels).
	Labels []int
	// Batch holds the same inputs for the plaintext model (pixels, or byte
	// ids with themselves as targets).
	Batch model.Batch
}

// LoadMNIST loads the MNIST training and test sets from dir ("": the
// default directory, data.MNISTDir).
func LoadMNIST(dir string) (train, test *data.Images, err error) {
	if dir == "" {
		if dir, err = data.MNISTDir(); err != nil {
			return nil, nil, err
		}
	}
	return data.LoadMNIST(dir)
}

// EncodeMNIST encodes the n test images from offset (n <= 0: one
// ciphertext's worth) with their labels; images outside the set are an
// error.
func EncodeMNIST(c *circuit.Circuit, test *data.Images, offset, n int) (*Inputs, error) {
	if n <= 0 {
		n = c.Layout.Batch
	}
	if offset < 0 || offset+n > test.N {
		return nil, fmt.Errorf("images %d..%d outside the %d test images", offset, offset+n-1, test.N)
	}
	size := test.Rows * test.Cols
	pixels, labels := test.Pixels[offset*size:(offset+n)*size], test.Labels[offset:offset+n]
	in, err := encodePixels(c, pixels, n, test.Rows, test.Cols)
	if err != nil {
		return nil, err
	}
	in.Labels, in.Batch.Targets = labels, labels
	return in, nil
}

// EncodeImages encodes unlabeled images of rows×cols pixel values each.
func EncodeImages(c *circuit.Circuit, images [][]float64, rows, cols int) (*Inputs, error) {
	if len(images) == 0 {
		return nil, errors.New("no images")
	}
	px := make([]float64, 0, len(images)*rows*cols)
	for i, img := range images {
		if len(img) != rows*cols {
			return nil, fmt.Errorf("image %d has %d values, rows*cols = %d", i, len(img), rows*cols)
		}
		px = append(px, img...)
	}
	return encodePixels(c, px, len(images), rows, cols)
}

func encodePixels(c *circuit.Circuit, pixels []float64, n, rows, cols int) (*Inputs, error) {
	vecs, err := c.EncodeImages(pixels, n, rows, cols)
	if err != nil {
		return nil, err
	}
	return &Inputs{Vecs: vecs, N: n, Batch: model.Batch{B: n, Pixels: pixels}}, nil
}

// EncodeText encodes the last Tokens bytes of text (left-padded with
// spaces) for a byte-LM circuit: one input. It is the one text encoding of
// the toolkit (`polyformer infer --text`, `client --text` and
// `client --input` all use it).
func EncodeText(c *circuit.Circuit, text string) (*Inputs, error) {
	if text == "" {
		return nil, errors.New("empty text")
	}
	T := c.Layout.Tokens
	b := []byte(text)
	if len(b) > T {
		b = b[len(b)-T:]
	}
	ids := make([]int, T)
	for i := range ids {
		ids[i] = ' '
	}
	for i, x := range b {
		ids[T-len(b)+i] = int(x)
	}
	return EncodeBytes(c, ids, 1)
}

// EncodeBytes encodes n byte sequences of the circuit's Tokens bytes each
// (ids holds them one after the other).
func EncodeBytes(c *circuit.Circuit, ids []int, n int) (*Inputs, error) {
	T := c.Layout.Tokens
	vecs, err := c.EncodeBytes(ids, n, T)
	if err != nil {
		return nil, err
	}
	return &Inputs{Vecs: vecs, N: n, Batch: model.Batch{B: n, T: T, Inputs: ids, Targets: ids}}, nil
}

// InputFile is the JSON input file of `polyformer client --input`: images
// ({"images": [[pixels...]], "rows": R, "cols": C}) or text ({"text": "..."}).
type InputFile struct {
	Images [][]float64 `json:"images"`
	Rows   int         `json:"rows"`
	Cols   int         `json:"cols"`
	Text   string      `json:"text"`
}

// ReadInputFile reads an InputFile and encodes its text (EncodeText) or
// its images (EncodeImages) for the circuit.
func ReadInputFile(path string, c *circuit.Circuit) (*Inputs, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f InputFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if f.Text != "" {
		return EncodeText(c, f.Text)
	}
	if len(f.Images) == 0 {
		return nil, fmt.Errorf("%s: no images and no text", path)
	}
	in, err := EncodeImages(c, f.Images, f.Rows, f.Cols)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return in, nil
}
