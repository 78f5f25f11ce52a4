package nn

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// Tensor is a dense row-major float64 array with a shape. The last dimension
// is the feature dimension; layers that act per row view a tensor as a
// Rows() x Cols() matrix.
type Tensor struct {
	Shape []int
	Data  []float64
}

// New returns a zero tensor of the given shape.
func New(shape ...int) *Tensor {
	n := 1
	for _, s := range shape {
		n *= s
	}
	return &Tensor{Shape: append([]int(nil), shape...), Data: make([]float64, n)}
}

// FromData wraps data (not copied) in a tensor of the given shape. It returns
// an error when the sizes disagree.
func FromData(data []float64, shape ...int) (*Tensor, error) {
	n := 1
	for _, s := range shape {
		if s < 0 {
			return nil, fmt.Errorf("tensor shape %v: negative dimension", shape)
		}
		n *= s
	}
	if n != len(data) {
		return nil, fmt.Errorf("tensor shape %v needs %d values, got %d", shape, n, len(data))
	}
	return &Tensor{Shape: append([]int(nil), shape...), Data: data}, nil
}

// Len is the number of elements.
func (t *Tensor) Len() int { return len(t.Data) }

// Cols is the size of the last dimension.
func (t *Tensor) Cols() int {
	if len(t.Shape) == 0 {
		return 1
	}
	return t.Shape[len(t.Shape)-1]
}

// Rows is the product of all dimensions but the last.
func (t *Tensor) Rows() int {
	c := t.Cols()
	if c == 0 {
		return 0
	}
	return len(t.Data) / c
}

// Clone returns a deep copy.
func (t *Tensor) Clone() *Tensor {
	return &Tensor{Shape: append([]int(nil), t.Shape...), Data: append([]float64(nil), t.Data...)}
}

// Zero sets every element to 0.
func (t *Tensor) Zero() {
	for i := range t.Data {
		t.Data[i] = 0
	}
}

// SameShape reports whether t and u have identical shapes.
func (t *Tensor) SameShape(u *Tensor) bool {
	if len(t.Shape) != len(u.Shape) {
		return false
	}
	for i := range t.Shape {
		if t.Shape[i] != u.Shape[i] {
			return false
		}
	}
	return true
}

// WithShape returns a tensor sharing t's data with another shape of the same size.
func (t *Tensor) WithShape(shape ...int) *Tensor {
	u, err := FromData(t.Data, shape...)
	if err != nil {
		panic(fmt.Sprintf("nn: reshape %v to %v: %v", t.Shape, shape, err))
	}
	return u
}

// Norm2 returns the Euclidean norm of the data.
func (t *Tensor) Norm2() float64 {
	var s float64
	for _, v := range t.Data {
		s += v * v
	}
	return math.Sqrt(s)
}

// FillNormal fills t with N(0, std^2) samples from rng.
func (t *Tensor) FillNormal(rng *rand.Rand, std float64) {
	for i := range t.Data {
		t.Data[i] = rng.NormFloat64() * std
	}
}

// Gemm computes c = alpha * op(a) * op(b) + beta * c for row-major matrices:
// op(a) is m x k, op(b) is k x n, c is m x n, with leading dimensions lda,
// ldb, ldc (the row strides of the stored matrices). It is gonum's BLAS
// Dgemm, the only matrix product the engine uses.
func Gemm(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	ta, tb := blas.NoTrans, blas.NoTrans
	ar, ac := m, k
	if transA {
		ta = blas.Trans
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		tb = blas.Trans
		br, bc = n, k
	}
	blas64.Gemm(ta, tb, alpha,
		blas64.General{Rows: ar, Cols: ac, Stride: lda, Data: a[:(ar-1)*lda+ac]},
		blas64.General{Rows: br, Cols: bc, Stride: ldb, Data: b[:(br-1)*ldb+bc]},
		beta,
		blas64.General{Rows: m, Cols: n, Stride: ldc, Data: c[:(m-1)*ldc+n]})
}
