package norm

import (
	"fmt"
	"math"

	"github.com/polyformer/polyformer/model/nn"
)

// AffineForm is the inference form of a foldable norm on a row x of width D:
//
//	y = (Center ? x - mean(x) : x) * Scale + Shift
//
// with per-channel Scale and Shift. Row centring is the linear map
// C = I - 11^T/D, so the whole form is affine and folds exactly into the
// linear layer that consumes y (see FoldIntoLinear).
type AffineForm struct {
	Center bool      `json:"center"`
	Scale  []float64 `json:"scale"`
	Shift  []float64 `json:"shift"`
}

// Foldable is implemented by norms whose inference form is an AffineForm.
// Affine returns an error when the current state does not fold (e.g. PRepBN
// before lambda reaches 0, PowerNorm with group scaling).
type Foldable interface {
	Affine() (AffineForm, error)
}

// Apply evaluates the affine form on a [.., D] tensor (the reference the fold is tested against).
func (f AffineForm) Apply(x *nn.Tensor) (*nn.Tensor, error) {
	d := x.Cols()
	if len(f.Scale) != d || len(f.Shift) != d {
		return nil, fmt.Errorf("affine form of width %d applied to rows of width %d", len(f.Scale), d)
	}
	y := nn.New(x.Shape...)
	for i := 0; i < x.Rows(); i++ {
		row := x.Data[i*d : (i+1)*d]
		var m float64
		if f.Center {
			for _, v := range row {
				m += v
			}
			m /= float64(d)
		}
		for j, v := range row {
			y.Data[i*d+j] = (v-m)*f.Scale[j] + f.Shift[j]
		}
	}
	return y, nil
}

// Scaled returns the form multiplied by s (e.g. the 1/sqrt(l) of LayerNorm Scaling).
func (f AffineForm) Scaled(s float64) AffineForm {
	out := AffineForm{Center: f.Center, Scale: make([]float64, len(f.Scale)), Shift: make([]float64, len(f.Shift))}
	for j := range f.Scale {
		out.Scale[j] = f.Scale[j] * s
		out.Shift[j] = f.Shift[j] * s
	}
	return out
}

// FoldIntoLinear rewrites lin in place so that lin'(x) = lin(f(x)) for every
// x: with y = x C diag(Scale) + Shift and lin(y) = y W + b,
// W' = C diag(Scale) W and b' = Shift W + b (C = I - 11^T/D when Center,
// else I). Because centring and per-channel scaling commute with averaging
// over tokens, it is also exact through a mean pool between norm and linear.
func FoldIntoLinear(f AffineForm, lin *nn.Linear) error {
	d, out := lin.In, lin.Out
	if len(f.Scale) != d || len(f.Shift) != d {
		return fmt.Errorf("fold: affine form of width %d into a linear with %d inputs", len(f.Scale), d)
	}
	w, b := lin.W.Value.Data, lin.B.Value.Data
	for k := 0; k < out; k++ {
		var s float64
		for j := 0; j < d; j++ {
			s += f.Shift[j] * w[j*out+k]
		}
		b[k] += s
	}
	for j := 0; j < d; j++ {
		for k := 0; k < out; k++ {
			w[j*out+k] *= f.Scale[j]
		}
	}
	if f.Center {
		for k := 0; k < out; k++ {
			var m float64
			for j := 0; j < d; j++ {
				m += w[j*out+k]
			}
			m /= float64(d)
			for j := 0; j < d; j++ {
				w[j*out+k] -= m
			}
		}
	}
	for _, v := range w {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("fold into %s: non-finite weight", lin.W.Name)
		}
	}
	return nil
}

// CenterOutputs rewrites lin in place so that every output row has zero
// mean: W' = W C, b' = b - mean(b) (C = I - 11^T/Out). Used to make a
// residual stream zero-mean (Pre-LN to Pre-RMSNorm conversion).
func CenterOutputs(lin *nn.Linear) {
	centerRows(lin.W.Value.Data, lin.In, lin.Out)
	centerRows(lin.B.Value.Data, 1, lin.Out)
}

// centerRows subtracts from each of the rows rows of a [rows, cols] matrix its mean.
func centerRows(a []float64, rows, cols int) {
	for i := 0; i < rows; i++ {
		r := a[i*cols : (i+1)*cols]
		var m float64
		for _, v := range r {
			m += v
		}
		m /= float64(cols)
		for j := range r {
			r[j] -= m
		}
	}
}

// CenterTable subtracts its mean from every row of a [rows, cols] parameter
// (embedding and positional tables).
func CenterTable(p *nn.Param) {
	cols := p.Value.Cols()
	centerRows(p.Value.Data, p.Value.Rows(), cols)
}
