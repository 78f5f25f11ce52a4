package model

import (
	"errors"
	"fmt"
	"math"

	"github.com/polyformer/polyformer/model/nn"
)

// Target is the interval a site's polynomial is fitted on (hulled with the
// observed range, then widened by the fit options). Floor says Lo is a hard
// lower bound of the inputs (the Power-Softmax normalizer z = eps + ... is
// never below eps), so the interval starts exactly at Lo, without margin.
type Target struct {
	Lo, Hi float64
	Floor  bool
}

// Calibrate runs the batches in calibration mode and fits the polynomial
// form of every site on its observed range, or, for sites with a target
// (range regularization; nil targets: none), on the hull of the target and
// the observed range; for a target with a hard floor the interval starts at
// the floor. The fit options then widen the interval (fit.Margin). It
// installs the forms, stores them in Cfg.Poly and returns to exact mode.
// Spec.Observed is always the observed range.
func (m *Model) Calibrate(batches []Batch, fit nn.FitOptions, targets map[string]Target) error {
	return m.CalibrateFunc(len(batches), func(i int) (Batch, error) { return batches[i], nil }, fit, targets)
}

// CalibrateFunc is Calibrate on the n batches batch(0), ..., batch(n-1),
// fetched one at a time (a whole training epoch need not be in memory).
func (m *Model) CalibrateFunc(n int, batch func(i int) (Batch, error), fit nn.FitOptions, targets map[string]Target) error {
	if n <= 0 {
		return errors.New("calibrate: no batches")
	}
	for _, s := range m.Sites() {
		s.ResetStats()
	}
	for _, blk := range m.Blocks {
		if sp, ok := nn.AsShiftedPower(blk.Attn.Kernel); ok {
			sp.ResetMaxTerm()
		}
	}
	if err := m.SetMode(nn.ModeCalibrate); err != nil {
		return err
	}
	defer func() { _ = m.SetMode(nn.ModeExact) }()
	for i := 0; i < n; i++ {
		b, err := batch(i)
		if err != nil {
			return fmt.Errorf("calibrate batch %d: %w", i, err)
		}
		if _, err := m.Logits(b); err != nil {
			return fmt.Errorf("calibrate batch %d: %w", i, err)
		}
	}
	bounds := repetitionBounds(m)
	pc := &PolyConfig{Fit: fit}
	for _, s := range m.Sites() {
		lo, hi, ok := s.Range()
		if !ok {
			return fmt.Errorf("calibrate: site %s never evaluated", s.Name)
		}
		flo, fhi := lo, hi
		t, hasTarget := targets[s.Name]
		if hasTarget {
			flo, fhi = math.Min(lo, t.Lo), math.Max(hi, t.Hi)
		}
		if b, ok := bounds[s.Name]; ok {
			fhi = math.Max(fhi, b)
		}
		spec, err := nn.FitSpec(s.Name, s.Kind, flo, fhi, fit)
		if err != nil {
			return fmt.Errorf("calibrate: %w", err)
		}
		if hasTarget && t.Floor && lo >= t.Lo && spec.Interval[0] < t.Lo {
			// refit from the floor itself (only the interval's lower end moves)
			spec.Interval[0] = t.Lo
			if spec, err = nn.RefitSpec(spec, fit); err != nil {
				return fmt.Errorf("calibrate: %w", err)
			}
		}
		spec.Observed = [2]float64{lo, hi}
		if err := s.Install(spec); err != nil {
			return fmt.Errorf("calibrate: %w", err)
		}
		pc.Specs = append(pc.Specs, spec)
	}
	m.Cfg.Poly = pc
	return nil
}
