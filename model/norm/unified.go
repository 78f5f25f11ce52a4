package norm

import (
	"math"

	"github.com/polyformer/polyformer/model/nn"
)

// Unified is Unified Normalization (Yang et al., 2022) in the quadratic-mean
// form: each channel is divided by the square root of a smoothed statistic
//
//	s = geometric mean of (q_t, q_{t-1}, ..., q_{t-k}),  q = mean_B(x^2) + Eps
//
// over the current batch and the last k <= Window-1 accepted batches
// (fluctuation smoothing), y = x / sqrt(s) * Gain + Bias. Outlier
// filtration: a channel whose current q differs from the geometric mean of
// its history by more than OutlierRatio (either way) uses the history alone
// (no gradient through the batch) and its history records the smoothed value
// instead of the outlier. Inference uses a running average of s (Momentum),
// a per-channel affine map that folds. The gradient in training is exact
// (through q_t, with weight 1/(k+1)); the history is a constant.
type Unified struct {
	Dim, Window            int
	Eps, Momentum, Outlier float64
	Gain, Bias             *nn.Param
	// Hist holds the log statistics of the last Window-1 accepted batches
	// (row 0 newest), HistLen how many rows are filled, RunS the inference
	// statistic; all frozen.
	Hist, HistLen, RunS *nn.Param

	training, pending bool
	n                 int
	x                 *nn.Tensor
	q, s, rstd        []float64
	outlier           []bool
	k                 int
}

// NewUnified returns a Unified Normalization with empty history and RunS = 1.
func NewUnified(name string, dim int, o Options) *Unified {
	o = o.Defaults()
	w := o.Window
	if w < 1 {
		w = 1
	}
	u := &Unified{Dim: dim, Window: w, Eps: o.Eps, Momentum: o.Momentum, Outlier: o.OutlierRatio,
		Gain: nn.NewParam(name+".gain", dim), Bias: nn.NewParam(name+".bias", dim),
		Hist: nn.NewParam(name+".history", max(w-1, 1), dim), HistLen: nn.NewParam(name+".history_len", 1),
		RunS: nn.NewParam(name+".running_stat", dim)}
	fill(u.Gain.Value.Data, 1)
	fill(u.RunS.Value.Data, 1)
	u.Gain.NoDecay, u.Bias.NoDecay = true, true
	for _, p := range []*nn.Param{u.Hist, u.HistLen, u.RunS} {
		p.Frozen, p.NoDecay = true, true
	}
	return u
}

// Method returns "unified".
func (u *Unified) Method() string { return MethodUnified }

// SetTraining selects smoothed batch statistics (true) or the running statistic.
func (u *Unified) SetTraining(on bool) { u.training = on }

// Forward normalizes each channel.
func (u *Unified) Forward(x *nn.Tensor) *nn.Tensor {
	n, d := x.Rows(), x.Cols()
	u.n, u.x = n, x
	u.s, u.rstd = make([]float64, d), make([]float64, d)
	if u.training {
		u.q = make([]float64, d)
		u.outlier = make([]bool, d)
		for i := 0; i < n; i++ {
			for j, v := range x.Data[i*d : (i+1)*d] {
				u.q[j] += v * v / float64(n)
			}
		}
		u.k = int(u.HistLen.Value.Data[0])
		logRatio := math.Log(u.Outlier)
		for j := 0; j < d; j++ {
			u.q[j] += u.Eps
			lq := math.Log(u.q[j])
			var hs float64
			for r := 0; r < u.k; r++ {
				hs += u.Hist.Value.Data[r*d+j]
			}
			if u.k > 0 && math.Abs(lq-hs/float64(u.k)) > logRatio {
				u.outlier[j] = true
				u.s[j] = math.Exp(hs / float64(u.k))
			} else {
				u.s[j] = math.Exp((hs + lq) / float64(u.k+1))
			}
		}
		u.pending = true
	} else {
		copy(u.s, u.RunS.Value.Data)
	}
	for j, s := range u.s {
		u.rstd[j] = 1 / math.Sqrt(s)
	}
	y := nn.New(x.Shape...)
	for i := 0; i < n; i++ {
		for j := 0; j < d; j++ {
			k := i*d + j
			y.Data[k] = x.Data[k]*u.rstd[j]*u.Gain.Value.Data[j] + u.Bias.Value.Data[j]
		}
	}
	return y
}

// Backward differentiates the last Forward.
func (u *Unified) Backward(dy *nn.Tensor) *nn.Tensor {
	n, d := u.n, u.Dim
	dx := nn.New(dy.Shape...)
	dq := make([]float64, d)
	if u.training {
		for i := 0; i < n; i++ {
			for j := 0; j < d; j++ {
				k := i*d + j
				dq[j] += dy.Data[k] * u.Gain.Value.Data[j] * u.x.Data[k]
			}
		}
		for j := range dq {
			if u.outlier[j] {
				dq[j] = 0
				continue
			}
			// d rstd / ds = -rstd^3 / 2; ds / dq = s / ((k+1) q)
			dq[j] *= -0.5 * u.rstd[j] * u.rstd[j] * u.rstd[j] * u.s[j] / (float64(u.k+1) * u.q[j])
		}
	}
	for i := 0; i < n; i++ {
		for j := 0; j < d; j++ {
			k := i*d + j
			xh := u.x.Data[k] * u.rstd[j]
			u.Gain.Grad.Data[j] += dy.Data[k] * xh
			u.Bias.Grad.Data[j] += dy.Data[k]
			dx.Data[k] = dy.Data[k]*u.Gain.Value.Data[j]*u.rstd[j] + dq[j]*2*u.x.Data[k]/float64(n)
		}
	}
	return dx
}

// EndStep pushes the last training batch's statistic into the history and
// moves the running statistic.
func (u *Unified) EndStep() {
	if !u.pending {
		return
	}
	u.pending = false
	d := u.Dim
	if u.Window > 1 {
		h := u.Hist.Value.Data
		copy(h[d:], h[:len(h)-d])
		for j := 0; j < d; j++ {
			if u.outlier[j] {
				h[j] = math.Log(u.s[j])
			} else {
				h[j] = math.Log(u.q[j])
			}
		}
		if int(u.HistLen.Value.Data[0]) < u.Window-1 {
			u.HistLen.Value.Data[0]++
		}
	}
	m := u.Momentum
	for j, s := range u.s {
		u.RunS.Value.Data[j] = (1-m)*u.RunS.Value.Data[j] + m*s
	}
}

// Params returns gain, bias and the frozen statistics.
func (u *Unified) Params() []*nn.Param {
	return []*nn.Param{u.Gain, u.Bias, u.Hist, u.HistLen, u.RunS}
}

// Sites returns nothing: the inference form is affine.
func (u *Unified) Sites() []*nn.Site { return nil }

// Affine returns the folded inference form.
func (u *Unified) Affine() (AffineForm, error) {
	f := AffineForm{Scale: make([]float64, u.Dim), Shift: append([]float64(nil), u.Bias.Value.Data...)}
	for j := range f.Scale {
		f.Scale[j] = u.Gain.Value.Data[j] / math.Sqrt(u.RunS.Value.Data[j])
	}
	return f, nil
}
