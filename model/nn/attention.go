package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// EntropyEps is the constant inside the attention-entropy logarithm:
// E = -sum_j a_ij log(a_ij + EntropyEps).
const EntropyEps = 1e-9

// MultiHeadAttention is multi-head self-attention on [B, T, Dim] inputs:
// Q, K, V = x Wqkv (one fused [Dim, 3 Dim] linear), per head
// S = Q_h K_h^T / sqrt(Dim/Heads), optionally multiplied row-wise by a
// learnable inverse temperature (the entropy-guided attention temperature;
// initialized to 1): per head and position, Temp[h, i] ([Heads, MaxLen],
// scope TempPosition), or per head, Temp[h, 0] ([Heads, 1], scope TempHead);
// read it with Temperature(h, i). A = Kernel(S),
// O_h = A V_h, output = concat(O_h) Wo.
//
// Every forward records the per-head attention entropy
// E_h = mean over batch items and query rows of -sum_j p_ij log(p_ij + 1e-9),
// where p_ij = a_ij / sum_k a_ik is the row of attention weights normalized
// to a distribution (see attentionEntropy).
// SetEntropyGrad supplies dL/dE_h for the next Backward (entropy
// regularization), which then flows into the attention weights.
type MultiHeadAttention struct {
	Dim, Heads, MaxLen int
	Causal             bool
	QKV, Out           *Linear
	Kernel             AttentionKernel
	Temp               *Param

	b, t      int
	qkv       *Tensor
	raw, s, a []float64
	entropy   []float64
	entGrad   []float64
	wGrad     []float64
	small     []*Param
}

// Temperature scopes of MultiHeadAttention.
const (
	// TempNone: no learnable temperature.
	TempNone = ""
	// TempPosition: a [Heads, MaxLen] inverse temperature, per head and query position.
	TempPosition = "position"
	// TempHead: a [Heads, 1] inverse temperature, per head, shared by all positions.
	TempHead = "head"
)

// NewMultiHeadAttention returns an attention layer; temperature adds the
// learnable [Heads, MaxLen] inverse temperature (scope TempPosition).
func NewMultiHeadAttention(name string, dim, heads, maxLen int, causal bool, kernel AttentionKernel, temperature bool, rng *rand.Rand) (*MultiHeadAttention, error) {
	scope := TempNone
	if temperature {
		scope = TempPosition
	}
	return NewMultiHeadAttentionScoped(name, dim, heads, maxLen, causal, kernel, scope, rng)
}

// NewMultiHeadAttentionScoped returns an attention layer with the learnable
// inverse temperature of the given scope: TempNone, TempPosition
// ([Heads, MaxLen]) or TempHead ([Heads, 1], broadcast over positions).
func NewMultiHeadAttentionScoped(name string, dim, heads, maxLen int, causal bool, kernel AttentionKernel, scope string, rng *rand.Rand) (*MultiHeadAttention, error) {
	if heads <= 0 || dim%heads != 0 {
		return nil, fmt.Errorf("attention %s: width %d is not divisible by %d heads", name, dim, heads)
	}
	cols := 0
	switch scope {
	case TempNone:
	case TempPosition:
		cols = maxLen
	case TempHead:
		cols = 1
	default:
		return nil, fmt.Errorf("attention %s: temperature scope %q (want %q, %q or none)", name, scope, TempPosition, TempHead)
	}
	m := &MultiHeadAttention{Dim: dim, Heads: heads, MaxLen: maxLen, Causal: causal, Kernel: kernel,
		QKV: NewLinear(name+".qkv", dim, 3*dim, rng), Out: NewLinear(name+".out", dim, dim, rng)}
	if cols > 0 {
		m.Temp = NewParam(name+".temperature", heads, cols)
		for i := range m.Temp.Value.Data {
			m.Temp.Value.Data[i] = 1
		}
		m.Temp.NoDecay = true
	}
	m.small = append([]*Param(nil), kernel.Params()...)
	if m.Temp != nil {
		m.small = append(m.small, m.Temp)
	}
	return m, nil
}

// TemperatureScope returns TempNone, TempPosition or TempHead.
func (m *MultiHeadAttention) TemperatureScope() string {
	switch {
	case m.Temp == nil:
		return TempNone
	case m.tempCols() == 1 && m.MaxLen != 1:
		return TempHead
	}
	return TempPosition
}

func (m *MultiHeadAttention) tempCols() int { return m.Temp.Value.Len() / m.Heads }

// tempIndex is the index of head h, query position t in Temp.
func (m *MultiHeadAttention) tempIndex(h, t int) int {
	if c := m.tempCols(); c != m.MaxLen {
		return h * c // per head: one column
	}
	return h*m.MaxLen + t
}

// Temperature returns the inverse temperature multiplying the scores of
// head h at query position t (1 without a temperature), whatever the scope.
func (m *MultiHeadAttention) Temperature(h, t int) float64 {
	if m.Temp == nil {
		return 1
	}
	return m.Temp.Value.Data[m.tempIndex(h, t)]
}

// Entropy returns the per-head entropy of the last Forward (a fresh slice).
func (m *MultiHeadAttention) Entropy() []float64 { return append([]float64(nil), m.entropy...) }

// Weights returns the attention weights of the last Forward, laid out
// [B, Heads, T, T] (shared, do not modify).
func (m *MultiHeadAttention) Weights() []float64 { return m.a }

// SetEntropyGrad sets dL/dE_h, added in the next Backward; nil clears it.
func (m *MultiHeadAttention) SetEntropyGrad(g []float64) {
	if g == nil {
		m.entGrad = nil
		return
	}
	m.entGrad = append(m.entGrad[:0], g...)
}

// SetWeightsGrad supplies dL/da for the attention weights of the last
// Forward (laid out like Weights: [B, Heads, T, T]), added in the next
// Backward to the gradient that flows back from the output (e.g. an
// attention-map distillation loss); nil clears it.
func (m *MultiHeadAttention) SetWeightsGrad(g []float64) error {
	if g == nil {
		m.wGrad = nil
		return nil
	}
	if len(g) != len(m.a) {
		return fmt.Errorf("attention %s: weights gradient has %d values, want %d", m.QKV.W.Name, len(g), len(m.a))
	}
	m.wGrad = append(m.wGrad[:0], g...)
	return nil
}

// Forward computes self-attention.
func (m *MultiHeadAttention) Forward(x *Tensor) *Tensor {
	if len(x.Shape) != 3 || x.Shape[2] != m.Dim || x.Shape[1] > m.MaxLen {
		panic(fmt.Sprintf("nn: attention %s: input %v, want [B, T<=%d, %d]", m.QKV.W.Name, x.Shape, m.MaxLen, m.Dim))
	}
	b, t, d, hN := x.Shape[0], x.Shape[1], m.Dim, m.Heads
	dh := d / hN
	m.b, m.t = b, t
	m.qkv = m.QKV.Forward(x)
	tt := t * t
	if len(m.s) != b*hN*tt {
		m.raw, m.s, m.a = make([]float64, b*hN*tt), make([]float64, b*hN*tt), make([]float64, b*hN*tt)
	}
	scale := 1 / math.Sqrt(float64(dh))
	q := m.qkv.Data
	ParallelFor(b*hN, func(_, p int) {
		bi, h := p/hN, p%hN
		base := bi * t * 3 * d
		raw := m.raw[p*tt : (p+1)*tt]
		Gemm(false, true, t, t, dh, scale, q[base+h*dh:], 3*d, q[base+d+h*dh:], 3*d, 0, raw, t)
		s := m.s[p*tt : (p+1)*tt]
		copy(s, raw)
		if m.Temp != nil {
			for i := 0; i < t; i++ {
				tau := m.Temp.Value.Data[m.tempIndex(h, i)]
				for j := 0; j < t; j++ {
					s[i*t+j] *= tau
				}
			}
		}
	})
	if bp, ok := m.Kernel.(batchPreparer); ok {
		bp.prepare(m.s, b, hN, t, m.Causal)
	}
	concat := New(b, t, d)
	ent := make([]float64, b*hN)
	ParallelFor(b*hN, func(_, p int) {
		bi, h := p/hN, p%hN
		s, a := m.s[p*tt:(p+1)*tt], m.a[p*tt:(p+1)*tt]
		m.Kernel.Forward(h, t, m.Causal, s, a)
		ent[p] = attentionEntropy(a, t)
		base := bi * t * 3 * d
		Gemm(false, false, t, dh, t, 1, a, t, q[base+2*d+h*dh:], 3*d, 0, concat.Data[bi*t*d+h*dh:], d)
	})
	m.entropy = make([]float64, hN)
	for p, e := range ent {
		m.entropy[p%hN] += e
	}
	for h := range m.entropy {
		m.entropy[h] /= float64(b * t)
	}
	return m.Out.Forward(concat)
}

// Backward back-propagates through attention, adding the entropy gradient
// set by SetEntropyGrad.
func (m *MultiHeadAttention) Backward(dy *Tensor) *Tensor {
	b, t, d, hN := m.b, m.t, m.Dim, m.Heads
	dh, tt := d/hN, t*t
	scale := 1 / math.Sqrt(float64(dh))
	dconcat := m.Out.Backward(dy)
	dqkv := New(b, t, 3*d)
	q := m.qkv.Data
	nw := Workers(b * hN)
	pg := make([][][]float64, nw)
	da := make([][]float64, nw)
	ds := make([][]float64, nw)
	for w := range pg {
		pg[w] = make([][]float64, len(m.small))
		for i, p := range m.small {
			pg[w][i] = make([]float64, p.Value.Len())
		}
		da[w], ds[w] = make([]float64, tt), make([]float64, tt)
	}
	nk := len(m.Kernel.Params())
	ParallelFor(b*hN, func(w, p int) {
		bi, h := p/hN, p%hN
		base := bi * t * 3 * d
		dout := dconcat.Data[bi*t*d+h*dh:]
		a, s := m.a[p*tt:(p+1)*tt], m.s[p*tt:(p+1)*tt]
		daw, dsw := da[w], ds[w]
		Gemm(false, true, t, t, dh, 1, dout, d, q[base+2*d+h*dh:], 3*d, 0, daw, t)
		if m.wGrad != nil {
			for i, g := range m.wGrad[p*tt : (p+1)*tt] {
				daw[i] += g
			}
		}
		if m.entGrad != nil && m.entGrad[h] != 0 {
			attentionEntropyBackward(a, t, m.entGrad[h]/float64(b*t), daw)
		}
		Gemm(true, false, t, dh, t, 1, a, t, dout, d, 0, dqkv.Data[base+2*d+h*dh:], 3*d)
		m.Kernel.Backward(h, t, m.Causal, s, a, daw, dsw, pg[w][:nk])
		if m.Temp != nil {
			raw := m.raw[p*tt : (p+1)*tt]
			gt := pg[w][nk]
			for i := 0; i < t; i++ {
				ti := m.tempIndex(h, i)
				tau := m.Temp.Value.Data[ti]
				var g float64
				for j := 0; j < t; j++ {
					g += dsw[i*t+j] * raw[i*t+j]
					dsw[i*t+j] *= tau
				}
				gt[ti] += g
			}
		}
		Gemm(false, false, t, dh, t, scale, dsw, t, q[base+d+h*dh:], 3*d, 0, dqkv.Data[base+h*dh:], 3*d)
		Gemm(true, false, t, dh, t, scale, dsw, t, q[base+h*dh:], 3*d, 0, dqkv.Data[base+d+h*dh:], 3*d)
	})
	for w := range pg {
		for i, p := range m.small {
			for j, v := range pg[w][i] {
				p.Grad.Data[j] += v
			}
		}
	}
	return m.QKV.Backward(dqkv)
}

// Params returns the projections, kernel parameters and temperature.
func (m *MultiHeadAttention) Params() []*Param {
	return append(append(m.QKV.Params(), m.Out.Params()...), m.small...)
}

// Sites returns the kernel's sites.
func (m *MultiHeadAttention) Sites() []*Site { return m.Kernel.Sites() }

// attentionEntropy returns the sum over the t rows of a (t×t attention
// weights) of the row entropy -sum_j p_j log(p_j + EntropyEps), with
// p = row / sum(row). Softmax rows already sum to 1, so p = a there; the
// normalization matters for kernels whose rows do not sum to 1
// (length-normalized Power-Softmax sums to about T, eps > 0 or a fixed
// normalizer to anything), where the raw formula is not an entropy (it can
// be negative). Only positive weights count (p = max(a, 0) / sum of the
// positive entries): shifted power attention with an odd power gives
// negative weights when x + c < 0, where the entropy is otherwise undefined.
// Rows without a positive entry (fully masked) contribute 0.
func attentionEntropy(a []float64, t int) float64 {
	var e float64
	for i := 0; i < t; i++ {
		row := a[i*t : (i+1)*t]
		sum := positiveSum(row)
		if sum == 0 {
			continue
		}
		for _, v := range row {
			if v > 0 {
				p := v / sum
				e -= p * math.Log(p+EntropyEps)
			}
		}
	}
	return e
}

// positiveSum is the sum of the positive entries of row.
func positiveSum(row []float64) float64 {
	var sum float64
	for _, v := range row {
		if v > 0 {
			sum += v
		}
	}
	return sum
}

// attentionEntropyBackward adds scale * dE/da to da for E = attentionEntropy(a, t):
// with g_j = dE/dp_j = -(log(p_j + eps) + p_j/(p_j + eps)) and S the row's
// positive sum, dE/da_j = (g_j - sum_k p_k g_k) / S for a_j > 0 (the sum
// over k runs over the positive entries) and 0 for a_j <= 0.
func attentionEntropyBackward(a []float64, t int, scale float64, da []float64) {
	g := make([]float64, t)
	for i := 0; i < t; i++ {
		row := a[i*t : (i+1)*t]
		sum := positiveSum(row)
		if sum == 0 {
			continue
		}
		var mean float64
		for j, v := range row {
			if v > 0 {
				p := v / sum
				g[j] = -(math.Log(p+EntropyEps) + p/(p+EntropyEps))
				mean += p * g[j]
			}
		}
		for j, v := range row {
			if v > 0 {
				da[i*t+j] += scale * (g[j] - mean) / sum
			}
		}
	}
}
