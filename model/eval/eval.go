// Package eval evaluates a checkpoint directory on its task's held-out data
// in exact mode and, when the checkpoint carries calibrated polynomials, in
// poly mode (the plaintext twin of encrypted inference), side by side.
package eval

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/checkpoint"
	"github.com/polyformer/polyformer/model/dataset"
	"github.com/polyformer/polyformer/model/nn"
)

// BatchSize is the evaluation batch size.
const BatchSize = 64

// Report is the evaluation of one checkpoint. Accuracy is the argmax
// accuracy (classification, or next-byte for text); bits-per-byte fields are
// set for text; Poly* fields only when the checkpoint has calibrated
// polynomials (HasPoly).
type Report struct {
	Task     string `json:"task"`
	Examples int    `json:"examples"`
	Params   int    `json:"params"`
	HasPoly  bool   `json:"has_poly"`

	Loss     float64 `json:"loss"`
	PolyLoss float64 `json:"poly_loss,omitempty"`

	Accuracy     float64 `json:"accuracy,omitempty"`
	PolyAccuracy float64 `json:"poly_accuracy,omitempty"`

	BitsPerByte     float64 `json:"bits_per_byte,omitempty"`
	PolyBitsPerByte float64 `json:"poly_bits_per_byte,omitempty"`

	// PolyError says why poly-mode evaluation failed (then the Poly*
	// values are unset), e.g. non-finite outputs from out-of-range inputs.
	PolyError string `json:"poly_error,omitempty"`
	// Outside counts poly-mode inputs that fell outside their calibrated interval.
	Outside   int64             `json:"outside"`
	PolyStats []model.SiteStats `json:"poly_stats,omitempty"`
}

// MarshalJSON writes task, examples, params, has_poly, loss and outside,
// then accuracy and poly_accuracy (images) or bits_per_byte and
// poly_bits_per_byte (text, plus next-byte accuracy); poly fields are null
// when the checkpoint has no calibrated polynomials.
func (r Report) MarshalJSON() ([]byte, error) {
	poly := func(v float64) any {
		if !r.HasPoly || r.PolyError != "" {
			return nil
		}
		return v
	}
	m := map[string]any{"task": r.Task, "examples": r.Examples, "params": r.Params, "has_poly": r.HasPoly,
		"loss": r.Loss, "poly_loss": poly(r.PolyLoss), "outside": r.Outside, "poly_stats": r.PolyStats}
	if r.PolyError != "" {
		m["poly_error"] = r.PolyError
	}
	if r.Task == model.TaskText {
		m["bits_per_byte"], m["poly_bits_per_byte"] = r.BitsPerByte, poly(r.PolyBitsPerByte)
		m["accuracy"], m["poly_accuracy"] = r.Accuracy, poly(r.PolyAccuracy)
	} else {
		m["accuracy"], m["poly_accuracy"] = r.Accuracy, poly(r.PolyAccuracy)
	}
	return json.Marshal(m)
}

// String formats the report as a small table, exact and poly mode side by side.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "task %s, %d examples, %d parameters\n", r.Task, r.Examples, r.Params)
	fmt.Fprintf(&b, "%-14s %12s %12s\n", "", "exact", "poly")
	row := func(name string, e, p float64) {
		ps := "-"
		if r.HasPoly && r.PolyError == "" {
			ps = fmt.Sprintf("%.4f", p)
		}
		fmt.Fprintf(&b, "%-14s %12.4f %12s\n", name, e, ps)
	}
	row("loss", r.Loss, r.PolyLoss)
	row("accuracy", r.Accuracy, r.PolyAccuracy)
	if r.Task == model.TaskText {
		row("bits/byte", r.BitsPerByte, r.PolyBitsPerByte)
	}
	switch {
	case !r.HasPoly:
		b.WriteString("no calibrated polynomials in this checkpoint\n")
	case r.PolyError != "":
		fmt.Fprintf(&b, "poly mode failed: %s\n", r.PolyError)
	default:
		fmt.Fprintf(&b, "%d poly-mode inputs outside their calibrated interval\n", r.Outside)
	}
	if len(r.PolyStats) > 0 {
		fmt.Fprintf(&b, "%-36s %-12s %25s %5s %12s\n", "site", "method", "interval", "depth", "outside")
		for _, s := range r.PolyStats {
			fmt.Fprintf(&b, "%-36s %-12s %25s %5d %12s\n", s.Site, s.Method,
				fmt.Sprintf("[%.4g, %.4g]", s.Interval[0], s.Interval[1]), s.Depth, fmt.Sprintf("%d/%d", s.Outside, s.Total))
		}
	}
	return b.String()
}

// Evaluate loads the checkpoint in dir, loads the data named by its config,
// and evaluates at most limit held-out examples (all when limit <= 0).
func Evaluate(dir string, limit int) (Report, error) {
	m, err := checkpoint.Load(dir)
	if err != nil {
		return Report{}, fmt.Errorf("eval: %w", err)
	}
	ds, err := dataset.Load(m.Cfg)
	if err != nil {
		return Report{}, fmt.Errorf("eval: %w", err)
	}
	return EvaluateWith(m, ds, limit)
}

// EvaluateWith evaluates a loaded model on a dataset.
func EvaluateWith(m *model.Model, ds dataset.Dataset, limit int) (Report, error) {
	if ds.Task() != m.Cfg.Task {
		return Report{}, fmt.Errorf("eval: dataset is for task %s, model for %s", ds.Task(), m.Cfg.Task)
	}
	batches, err := ds.EvalBatches(limit, BatchSize)
	if err != nil {
		return Report{}, fmt.Errorf("eval: %w", err)
	}
	if err := m.SetMode(nn.ModeExact); err != nil {
		return Report{}, err
	}
	ex, err := m.Evaluate(batches)
	if err != nil {
		return Report{}, fmt.Errorf("eval: %w", err)
	}
	r := Report{Task: m.Cfg.Task, Examples: ex.Examples, Params: m.Reg.Count(), Loss: ex.Loss}
	r.Accuracy = ex.Accuracy
	if m.Cfg.Task == model.TaskText {
		r.BitsPerByte = ex.BitsPerByte
	}
	if m.Cfg.Poly == nil {
		return r, nil
	}
	r.HasPoly = true
	m.ResetPolyStats()
	if err := m.SetMode(nn.ModePoly); err != nil {
		return Report{}, fmt.Errorf("eval: %w", err)
	}
	defer func() { _ = m.SetMode(nn.ModeExact) }()
	pe, err := m.Evaluate(batches)
	r.PolyStats = m.PolyStats()
	for _, s := range r.PolyStats {
		r.Outside += s.Outside
	}
	if err != nil {
		// not fatal: report why the polynomial form failed
		r.PolyError = err.Error()
		return r, nil
	}
	r.PolyLoss = pe.Loss
	r.PolyAccuracy = pe.Accuracy
	if m.Cfg.Task == model.TaskText {
		r.PolyBitsPerByte = pe.BitsPerByte
	}
	return r, nil
}
