package circuit

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// MarginCheck compares a circuit's predicted logit error with the logit
// margins (top-1 minus top-2 logit, in poly mode) of calibration inputs: an
// input whose margin is at most twice the predicted error (each of the two
// logits may move by it) can have its prediction flipped by the encrypted
// evaluation. Bootstrapping lowers the precision, so deep circuits are the
// ones to check.
type MarginCheck struct {
	// PredictedLog2Err is the dry run's predicted log2 logit error.
	PredictedLog2Err float64 `json:"predicted_log2_err"`
	// Inputs is the number of margins checked (inputs, or tokens for an LM).
	Inputs int `json:"inputs"`
	// AtRisk is the number of them with margin <= 2·2^PredictedLog2Err.
	AtRisk int `json:"at_risk"`
	// Fraction is AtRisk / Inputs.
	Fraction float64 `json:"fraction_at_risk"`
	// MinMargin and MedianMargin summarize the margins.
	MinMargin    float64 `json:"min_margin"`
	MedianMargin float64 `json:"median_margin"`
}

// Warn reports whether predictions can flip.
func (m MarginCheck) Warn() bool { return m.AtRisk > 0 }

// String is the one-line verdict.
func (m MarginCheck) String() string {
	e := math.Exp2(m.PredictedLog2Err)
	if !m.Warn() {
		return fmt.Sprintf("precision margin ok: predicted logit error %.3g (2^%.1f) is below half of every logit margin of %d calibration inputs (smallest %.3g)",
			e, m.PredictedLog2Err, m.Inputs, m.MinMargin)
	}
	return fmt.Sprintf("warning: predictions can flip: predicted logit error %.3g (2^%.1f) reaches half the logit margin of %d of %d calibration inputs (%.2f%%; smallest margin %.3g, median %.3g)",
		e, m.PredictedLog2Err, m.AtRisk, m.Inputs, 100*m.Fraction, m.MinMargin, m.MedianMargin)
}

// LogitMargins returns top-1 minus top-2 of every consecutive run of
// outputs values in each row of logits (one run per classifier input, one
// per token for an LM).
func LogitMargins(logits [][]float64, outputs int) ([]float64, error) {
	if outputs < 2 {
		return nil, fmt.Errorf("logit margins: %d outputs, need >= 2", outputs)
	}
	var out []float64
	for i, row := range logits {
		if len(row)%outputs != 0 {
			return nil, fmt.Errorf("logit margins: row %d has %d values, not a multiple of %d", i, len(row), outputs)
		}
		for k := 0; k < len(row); k += outputs {
			a, b := math.Inf(-1), math.Inf(-1)
			for _, v := range row[k : k+outputs] {
				if math.IsNaN(v) {
					return nil, fmt.Errorf("logit margins: row %d has NaN", i)
				}
				if v > a {
					a, b = v, a
				} else if v > b {
					b = v
				}
			}
			out = append(out, a-b)
		}
	}
	return out, nil
}

// CheckMargins compares the predicted log2 logit error with the margins.
func CheckMargins(margins []float64, predictedLog2Err float64) (MarginCheck, error) {
	if len(margins) == 0 {
		return MarginCheck{}, errors.New("check margins: no margins")
	}
	if math.IsNaN(predictedLog2Err) {
		return MarginCheck{}, errors.New("check margins: no precision prediction")
	}
	e := math.Exp2(predictedLog2Err)
	s := append([]float64(nil), margins...)
	sort.Float64s(s)
	m := MarginCheck{PredictedLog2Err: predictedLog2Err, Inputs: len(s), MinMargin: s[0], MedianMargin: s[len(s)/2]}
	for _, x := range s {
		if x <= 2*e {
			m.AtRisk++
		}
	}
	m.Fraction = float64(m.AtRisk) / float64(m.Inputs)
	return m, nil
}
