package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// GradCheckResult compares an analytic gradient with central finite
// differences for one tensor.
//
// Per element the relative error is |a-b| / max(|a|, |b|, 1e-8). MaxRelErr is
// the largest of these; AggRelErr is the aggregated form
// ||a-b||_2 / max(||a||_2, ||b||_2, 1e-8) over the checked elements, which is
// what the tests bound (by 1e-6): an element whose gradient is tiny compared to
// the others cannot be resolved by finite differences to a relative 1e-6,
// while the aggregate measures the error relative to the gradient's scale.
type GradCheckResult struct {
	Name      string
	Checked   int
	MaxRelErr float64
	AggRelErr float64
}

// String formats the result for test messages.
func (r GradCheckResult) String() string {
	return fmt.Sprintf("%s: %d checked, aggregated rel err %.3g, max elementwise %.3g", r.Name, r.Checked, r.AggRelErr, r.MaxRelErr)
}

// GradCheck compares analytic[i] with (loss(x_i + h) - loss(x_i - h)) / (2h)
// for up to maxChecks indices of x (all when maxChecks <= 0 or >= len(x),
// otherwise a sample drawn from rng). loss must recompute the loss reading the
// current values of x; x is restored after each perturbation.
func GradCheck(name string, loss func() float64, x, analytic []float64, h float64, maxChecks int, rng *rand.Rand) GradCheckResult {
	idx := make([]int, len(x))
	for i := range idx {
		idx[i] = i
	}
	if maxChecks > 0 && maxChecks < len(x) {
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		idx = idx[:maxChecks]
	}
	res := GradCheckResult{Name: name, Checked: len(idx)}
	var diff2, a2, n2 float64
	for _, i := range idx {
		orig := x[i]
		x[i] = orig + h
		lp := loss()
		x[i] = orig - h
		lm := loss()
		x[i] = orig
		num := (lp - lm) / (2 * h)
		a := analytic[i]
		d := math.Abs(a - num)
		rel := d / math.Max(math.Max(math.Abs(a), math.Abs(num)), 1e-8)
		if rel > res.MaxRelErr || math.IsNaN(rel) {
			res.MaxRelErr = rel
		}
		diff2 += d * d
		a2 += a * a
		n2 += num * num
	}
	res.AggRelErr = math.Sqrt(diff2) / math.Max(math.Max(math.Sqrt(a2), math.Sqrt(n2)), 1e-8)
	if math.IsNaN(diff2) {
		res.AggRelErr = math.NaN()
	}
	return res
}

// CheckModule gradient-checks a module on input x: with a fixed random
// projection r, the loss is sum(r * Forward(x)) + extra(), where extra (may be
// nil) adds terms that depend on the forward pass (e.g. a regularizer) and
// must also have put their gradients in place before Backward is called
// (backwardHook, may be nil, runs between Forward and Backward). It checks
// the input gradient (unless skipInput) and every parameter that is not
// frozen, with at most maxChecks elements per tensor.
func CheckModule(m Module, x *Tensor, skipInput bool, extra func() float64, backwardHook func(), h float64, maxChecks int, seed uint64) []GradCheckResult {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	y := m.Forward(x)
	r := New(y.Shape...)
	r.FillNormal(rng, 1)
	loss := func() float64 {
		out := m.Forward(x)
		var s float64
		for i, v := range out.Data {
			s += v * r.Data[i]
		}
		if extra != nil {
			s += extra()
		}
		return s
	}
	params := m.Params()
	for _, p := range params {
		p.Grad.Zero()
	}
	_ = loss()
	if backwardHook != nil {
		backwardHook()
	}
	dx := m.Backward(r.Clone())
	analyticX := append([]float64(nil), dx.Data...)
	grads := make([][]float64, len(params))
	for i, p := range params {
		grads[i] = append([]float64(nil), p.Grad.Data...)
	}
	var out []GradCheckResult
	if !skipInput {
		out = append(out, GradCheck("input", loss, x.Data, analyticX, h, maxChecks, rng))
	}
	for i, p := range params {
		if p.Frozen {
			continue
		}
		out = append(out, GradCheck(p.Name, loss, p.Value.Data, grads[i], h, maxChecks, rng))
	}
	return out
}
