package pipeline

import (
	"fmt"
	"math"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
)

// Result is one encrypted evaluation compared with its plaintext
// references. Logit rows are per input: classes for an image classifier,
// positions × Outputs for a byte LM (whose predictions are per position).
type Result struct {
	// Task is the circuit's task (model.TaskMNIST or model.TaskText).
	Task string
	// Outputs is the number of logits of one prediction.
	Outputs int
	// Encrypted are the decrypted logits.
	Encrypted [][]float64
	// Plaintext are the logits of the float64 simulation of the same
	// circuit (poly mode, the same arithmetic without noise).
	Plaintext [][]float64
	// Poly are the plaintext model's poly-mode logits (nil unless Run was
	// given the model).
	Poly [][]float64
	// Labels are the MNIST labels (nil for text and unlabeled images).
	Labels []int
	// Report is the measured report (per-layer time, levels, key switches,
	// error against the simulator; WallNs and PerInputNs), with the
	// predicted log2 error Check bounds the error with.
	Report *circuit.Report
	// Trace is the per-kind op statistics (nil unless RunOptions.Trace).
	Trace []he.OpStats
}

// NewResult compares decrypted logits with the simulator's for circuit c.
func NewResult(c *circuit.Circuit, rep *circuit.Report, encrypted, plaintext [][]float64, labels []int) *Result {
	return &Result{Task: c.Task, Outputs: c.Layout.Outputs, Encrypted: encrypted, Plaintext: plaintext, Labels: labels, Report: rep}
}

// Prediction is one predicted class (image) or next byte (position).
type Prediction struct {
	// Encrypted and Plaintext are the argmax of the decrypted and the
	// simulator's logits.
	Encrypted, Plaintext int
	// MaxError is the largest |encrypted - plaintext| logit.
	MaxError float64
}

// Rows splits logit rows into one row per prediction: per position for a
// byte LM, unchanged for an image classifier.
func (r *Result) Rows(logits [][]float64) [][]float64 {
	if r.Task == model.TaskMNIST {
		return logits
	}
	return PerPosition(logits, r.Outputs)
}

// Predictions are the encrypted and plaintext predictions, one per image
// or per position.
func (r *Result) Predictions() []Prediction {
	got, want := r.Rows(r.Encrypted), r.Rows(r.Plaintext)
	out := make([]Prediction, len(got))
	for i := range got {
		out[i] = Prediction{Encrypted: Argmax(got[i]), Plaintext: Argmax(want[i]), MaxError: MaxAbsDiff(got[i:i+1], want[i:i+1])}
	}
	return out
}

// Agreement counts the predictions on which the decrypted and the
// simulator's logits pick the same class, of total.
func (r *Result) Agreement() (agree, total int) {
	got := r.Rows(r.Encrypted)
	return Agree(got, r.Rows(r.Plaintext)), len(got)
}

// MaxError is the largest |encrypted - plaintext| logit.
func (r *Result) MaxError() float64 { return MaxAbsDiff(r.Encrypted, r.Plaintext) }

// PolyAgreement counts the predictions on which the decrypted logits and
// the model's poly-mode ones agree (0 of 0 without Poly).
func (r *Result) PolyAgreement() (agree, total int) {
	if r.Poly == nil {
		return 0, 0
	}
	got := r.Rows(r.Encrypted)
	return Agree(got, r.Rows(r.Poly)), len(got)
}

// MaxPolyError is the largest |encrypted - poly-mode model| logit (0
// without Poly).
func (r *Result) MaxPolyError() float64 { return MaxAbsDiff(r.Encrypted, r.Poly) }

// Correct counts the images whose encrypted prediction is their label.
func (r *Result) Correct() int { return CountCorrect(r.Encrypted, r.Labels) }

// OutputErrorMarginBits is how far (in bits) the measured logit error may
// exceed the dry run's predicted error before Check fails (the recorded
// runs are within one bit of the prediction).
const OutputErrorMarginBits = 6

// Check reports a failure when a decrypted or plaintext logit is NaN or
// infinite, or when the largest |encrypted - plaintext| logit error is
// beyond the predicted error bound (2^(Report.PredictedLog2Err + 6); 1
// when the dry run made no prediction): such a run never counts as
// agreement.
func (r *Result) Check() error {
	bad, where := 0, ""
	maxErr := 0.0
	for i := range r.Encrypted {
		for j := range r.Encrypted[i] {
			g, w := r.Encrypted[i][j], r.Plaintext[i][j]
			if math.IsNaN(g) || math.IsInf(g, 0) || math.IsNaN(w) || math.IsInf(w, 0) {
				if bad == 0 {
					where = fmt.Sprintf("input %d logit %d: encrypted %g, plaintext %g", i, j, g, w)
				}
				bad++
				continue
			}
			maxErr = math.Max(maxErr, math.Abs(g-w))
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d decrypted or plaintext logits are NaN or infinite (first: %s): the encrypted result is invalid", bad, where)
	}
	pred := math.NaN()
	if r.Report != nil {
		pred = r.Report.PredictedLog2Err
	}
	bound, what := 1.0, "1 (no predicted error)"
	if !math.IsNaN(pred) && !math.IsInf(pred, 0) {
		bound = math.Exp2(pred + OutputErrorMarginBits)
		what = fmt.Sprintf("2^%.1f (predicted 2^%.1f + %d bits)", pred+OutputErrorMarginBits, pred, OutputErrorMarginBits)
	}
	if maxErr > bound {
		return fmt.Errorf("max |encrypted - plaintext logit| %.3e exceeds the error bound %s: the encrypted result is wrong", maxErr, what)
	}
	return nil
}

// Argmax is the index of the largest value (the first of equals; 0 for an
// empty row).
func Argmax(v []float64) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// PerPosition splits each input's logits (positions × outputs) into one
// row per position.
func PerPosition(rows [][]float64, outputs int) [][]float64 {
	var out [][]float64
	for _, r := range rows {
		for i := 0; i+outputs <= len(r); i += outputs {
			out = append(out, r[i:i+outputs])
		}
	}
	return out
}

// Agree counts the rows of a and b (paired) whose argmax is the same.
func Agree(a, b [][]float64) int {
	n := 0
	for i := range min(len(a), len(b)) {
		if Argmax(a[i]) == Argmax(b[i]) {
			n++
		}
	}
	return n
}

// CountCorrect counts the rows whose argmax is their label.
func CountCorrect(rows [][]float64, labels []int) int {
	n := 0
	for i := range min(len(rows), len(labels)) {
		if Argmax(rows[i]) == labels[i] {
			n++
		}
	}
	return n
}

// MaxAbsDiff is the largest |a - b| over paired values (0 when either is
// empty).
func MaxAbsDiff(a, b [][]float64) float64 {
	m := 0.0
	for i := range min(len(a), len(b)) {
		for j := range min(len(a[i]), len(b[i])) {
			m = math.Max(m, math.Abs(a[i][j]-b[i][j]))
		}
	}
	return m
}
