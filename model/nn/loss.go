package nn

import (
	"fmt"
	"math"
)

// CrossEntropy returns the mean over rows of -log softmax(logits)[target]
// for logits [N, C] and N targets, and the gradient with respect to the
// logits. Targets outside [0, C) are an error.
func CrossEntropy(logits *Tensor, targets []int) (float64, *Tensor, error) {
	n, c := logits.Rows(), logits.Cols()
	if len(targets) != n {
		return 0, nil, fmt.Errorf("cross-entropy: %d targets for %d rows", len(targets), n)
	}
	grad := New(logits.Shape...)
	var loss float64
	for i := 0; i < n; i++ {
		y := targets[i]
		if y < 0 || y >= c {
			return 0, nil, fmt.Errorf("cross-entropy: target %d outside [0, %d)", y, c)
		}
		row := logits.Data[i*c : (i+1)*c]
		g := grad.Data[i*c : (i+1)*c]
		m := math.Inf(-1)
		for _, v := range row {
			m = math.Max(m, v)
		}
		var z float64
		for j, v := range row {
			g[j] = math.Exp(v - m)
			z += g[j]
		}
		loss += math.Log(z) + m - row[y]
		for j := range g {
			g[j] /= z * float64(n)
		}
		g[y] -= 1 / float64(n)
	}
	return loss / float64(n), grad, nil
}

// Argmax returns the index of the largest value of each row.
func Argmax(t *Tensor) []int {
	n, c := t.Rows(), t.Cols()
	out := make([]int, n)
	for i := 0; i < n; i++ {
		row := t.Data[i*c : (i+1)*c]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		out[i] = best
	}
	return out
}

// EntropyRegularizer is the entropy penalty of entropy-guided attention.
// For layer l and head h, with E(l,h) the attention entropy (see
// MultiHeadAttention), E_max = log T, tolerance = Gamma * E_max and the
// learnable threshold Theta[l, h]:
//
//	delta = E(l,h) - Theta[l,h] * E_max
//	penalty(l,h) = delta^2 if |delta| > tolerance, else 0
//	L_ent = mean over layers of (mean over heads of penalty)
//
// and the total loss is CE + Lambda * L_ent. Gradients flow into Theta and,
// through SetEntropyGrad, into the attention weights.
type EntropyRegularizer struct {
	Layers, Heads int
	Gamma, Lambda float64
	Theta         *Param
}

// NewEntropyRegularizer returns a regularizer with Theta initialized to theta0.
func NewEntropyRegularizer(name string, layers, heads int, gamma, lambda, theta0 float64) *EntropyRegularizer {
	r := &EntropyRegularizer{Layers: layers, Heads: heads, Gamma: gamma, Lambda: lambda, Theta: NewParam(name+".theta", layers, heads)}
	for i := range r.Theta.Value.Data {
		r.Theta.Value.Data[i] = theta0
	}
	r.Theta.NoDecay = true
	return r
}

// Loss returns Lambda * L_ent for entropies e[l][h] of sequences of length t,
// accumulates dTheta into Theta.Grad, and returns dLoss/dE[l][h].
func (r *EntropyRegularizer) Loss(e [][]float64, t int) (float64, [][]float64) {
	emax := math.Log(float64(t))
	tol := r.Gamma * emax
	w := r.Lambda / float64(r.Layers*r.Heads)
	var loss float64
	de := make([][]float64, len(e))
	for l := range e {
		de[l] = make([]float64, len(e[l]))
		for h, v := range e[l] {
			delta := v - r.Theta.Value.Data[l*r.Heads+h]*emax
			if math.Abs(delta) <= tol {
				continue
			}
			loss += w * delta * delta
			de[l][h] = 2 * w * delta
			r.Theta.Grad.Data[l*r.Heads+h] -= 2 * w * delta * emax
		}
	}
	return loss, de
}

// Value returns Lambda * L_ent without touching gradients.
func (r *EntropyRegularizer) Value(e [][]float64, t int) float64 {
	emax := math.Log(float64(t))
	tol := r.Gamma * emax
	var loss float64
	for l := range e {
		for h, v := range e[l] {
			delta := v - r.Theta.Value.Data[l*r.Heads+h]*emax
			if math.Abs(delta) > tol {
				loss += delta * delta
			}
		}
	}
	return loss * r.Lambda / float64(r.Layers*r.Heads)
}

// Params returns Theta.
func (r *EntropyRegularizer) Params() []*Param { return []*Param{r.Theta} }
