package compiler

import (
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/polyapprox"
)

// opBuilder is the op-graph polyapprox.Builder: each primitive appends one
// op (ScaleSub two: the constant product, then the subtraction) labelled
// Label, so the plans' steps are lowered exactly as polyapprox defines
// them. Values are op ids. Appending cannot fail.
type opBuilder struct {
	b     *builder
	Label string
}

func (o opBuilder) emit(op circuit.Op) int {
	op.Label = o.Label
	return o.b.op(op)
}

// Mul appends a KindMul.
func (o opBuilder) Mul(x, y int) int {
	return o.emit(circuit.Op{Kind: circuit.KindMul, In: []int{x, y}})
}

// MulConst appends a KindMulConst.
func (o opBuilder) MulConst(x int, c float64) int {
	return o.emit(circuit.Op{Kind: circuit.KindMulConst, In: []int{x}, Const: c})
}

// AddConst appends a KindAddConst.
func (o opBuilder) AddConst(x int, c float64) int {
	return o.emit(circuit.Op{Kind: circuit.KindAddConst, In: []int{x}, Const: c})
}

// ScaleSub appends c·x as a KindMulConst, then the KindSub of y from it.
func (o opBuilder) ScaleSub(x int, c float64, y int) int {
	return o.emit(circuit.Op{Kind: circuit.KindSub, In: []int{o.MulConst(x, c), y}})
}

// Poly appends a KindPoly of a copy of p.
func (o opBuilder) Poly(x int, p polyapprox.Chebyshev) int {
	q := polyapprox.Chebyshev{Interval: p.Interval, Coeffs: append([]float64(nil), p.Coeffs...)}
	return o.emit(circuit.Op{Kind: circuit.KindPoly, In: []int{x}, Poly: &q})
}
