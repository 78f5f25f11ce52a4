// Package optim holds the optimizer (AdamW), the learning-rate schedule
// (linear warmup then cosine decay) and global-norm gradient clipping.
package optim

import (
	"fmt"
	"math"

	"github.com/polyformer/polyformer/model/nn"
)

// AdamW is Adam with decoupled weight decay (Loshchilov and Hutter). Frozen
// parameters are skipped; NoDecay parameters get no weight decay.
type AdamW struct {
	Beta1, Beta2, Eps, WeightDecay float64
	// T is the number of updates done (for bias correction).
	T int
	// M and V are the first and second moment estimates, by parameter name.
	M, V map[string][]float64
}

// NewAdamW returns an optimizer with zero moments for the given parameters.
func NewAdamW(params []*nn.Param, beta1, beta2, eps, weightDecay float64) *AdamW {
	o := &AdamW{Beta1: beta1, Beta2: beta2, Eps: eps, WeightDecay: weightDecay, M: map[string][]float64{}, V: map[string][]float64{}}
	for _, p := range params {
		o.M[p.Name] = make([]float64, p.Value.Len())
		o.V[p.Name] = make([]float64, p.Value.Len())
	}
	return o
}

// Update applies one step with learning rate lr using the parameters' Grad.
func (o *AdamW) Update(params []*nn.Param, lr float64) error {
	o.T++
	bc1 := 1 - math.Pow(o.Beta1, float64(o.T))
	bc2 := 1 - math.Pow(o.Beta2, float64(o.T))
	for _, p := range params {
		if p.Frozen {
			continue
		}
		m, v := o.M[p.Name], o.V[p.Name]
		if len(m) != p.Value.Len() || len(v) != p.Value.Len() {
			return fmt.Errorf("adamw: no state of the right size for parameter %s", p.Name)
		}
		wd := o.WeightDecay
		if p.NoDecay {
			wd = 0
		}
		w, g := p.Value.Data, p.Grad.Data
		for i := range w {
			m[i] = o.Beta1*m[i] + (1-o.Beta1)*g[i]
			v[i] = o.Beta2*v[i] + (1-o.Beta2)*g[i]*g[i]
			w[i] -= lr * (m[i]/bc1/(math.Sqrt(v[i]/bc2)+o.Eps) + wd*w[i])
		}
	}
	return nil
}

// ClipGradNorm scales all gradients so that their global L2 norm is at most
// maxNorm (no-op when maxNorm <= 0) and returns the norm before clipping.
func ClipGradNorm(params []*nn.Param, maxNorm float64) float64 {
	var s float64
	for _, p := range params {
		if p.Frozen {
			continue
		}
		for _, g := range p.Grad.Data {
			s += g * g
		}
	}
	norm := math.Sqrt(s)
	if maxNorm > 0 && norm > maxNorm {
		f := maxNorm / norm
		for _, p := range params {
			for i := range p.Grad.Data {
				p.Grad.Data[i] *= f
			}
		}
	}
	return norm
}

// Schedule is linear warmup from 0 to Base over Warmup steps, then cosine
// decay from Base to Min at step Total.
type Schedule struct {
	Base, Min     float64
	Warmup, Total int
}

// LR returns the learning rate for step (0-based).
func (s Schedule) LR(step int) float64 {
	if s.Warmup > 0 && step < s.Warmup {
		return s.Base * float64(step+1) / float64(s.Warmup)
	}
	if s.Total <= s.Warmup {
		return s.Base
	}
	p := float64(step-s.Warmup) / float64(s.Total-s.Warmup)
	if p > 1 {
		p = 1
	}
	return s.Min + 0.5*(s.Base-s.Min)*(1+math.Cos(math.Pi*p))
}
