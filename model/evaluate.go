package model

import (
	"errors"
	"fmt"
	"math"

	"github.com/polyformer/polyformer/model/nn"
)

// EvalResult is the quality of a model on a held-out set.
type EvalResult struct {
	// Examples is the number of images or text windows evaluated.
	Examples int `json:"examples"`
	// Loss is the mean cross-entropy per prediction (nats).
	Loss float64 `json:"loss"`
	// Accuracy is the fraction of correct argmax predictions.
	Accuracy float64 `json:"accuracy"`
	// BitsPerByte is Loss / ln 2 (text only).
	BitsPerByte float64 `json:"bits_per_byte,omitempty"`
}

// Evaluate runs the model (in its current mode) on the batches and returns
// the mean cross-entropy per prediction and the argmax accuracy. In poly
// mode, a failed batch's error names the sites whose inputs left their
// interval or whose outputs were not finite so far (PolyDiagnosis).
func (m *Model) Evaluate(batches []Batch) (EvalResult, error) {
	var r EvalResult
	var loss float64
	var correct, targets int
	for i, b := range batches {
		res, err := m.Forward(b)
		if err != nil {
			if m.Mode() == nn.ModePoly {
				d := PolyDiagnosis(m.PolyStats())
				if d == "" {
					d = "every site input was inside its interval and every site output finite"
				}
				err = fmt.Errorf("%w; poly mode: %s", err, d)
			}
			return EvalResult{}, fmt.Errorf("evaluate batch %d: %w", i, err)
		}
		loss += res.CE * float64(res.Targets)
		correct += res.Correct
		targets += res.Targets
		r.Examples += b.B
	}
	if targets == 0 {
		return EvalResult{}, errors.New("evaluate: no examples")
	}
	r.Loss = loss / float64(targets)
	r.Accuracy = float64(correct) / float64(targets)
	if m.Cfg.Task == TaskText {
		r.BitsPerByte = r.Loss / math.Ln2
	}
	return r, nil
}
